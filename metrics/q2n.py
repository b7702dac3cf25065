"""Cayley-Dickson hypercomplex algebra and the Q2n index (Q4 for 4 bands, Q8 for 8 bands).

A pixel of a 2^n-band image is read as a hypercomplex number (complex for 2 bands, quaternion
for 4, octonion for 8, ...). The product follows the toolbox's ``onion_mult`` recursion: split
x = (a, b) and y = (c, d) into halves, then

    x y = (a c - conj(d) b,  conj(a) conj(d) + c conj(b)),

down to real numbers, where conj negates every component but the first. This is a
Cayley-Dickson product followed by a fixed sign flip of some components (so e_0 e_j = +-e_j:
e_0 is a unit only up to those signs). The flip is orthogonal and commutes with conj, so the
properties Q2n needs hold: |x y| = |x| |y| up to octonions, conj(x y) = conj(y) conj(x) and
x conj(x) = |x|^2.

Q2n (Garzelli & Nencini 2009) follows ``q2n.m`` / ``onions_quality.m`` of the MATLAB toolbox.
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch
from torch import Tensor

from metrics.reference import block_moments, check_pair
from utils.errors import UserInputError

UINT16_MAX = 65535.0
EPS = torch.finfo(torch.float64).eps
"""MATLAB ``eps``: the std used for a block band with zero std (``norm_blocco``)."""


def cd_conjugate(x: Tensor, dim: int = -1) -> Tensor:
    """Hypercomplex conjugate: negate every component along ``dim`` but the first."""
    sign = torch.ones(x.shape[dim], dtype=x.dtype, device=x.device)
    sign[1:] = -1
    shape = [1] * x.dim()
    shape[dim] = -1
    return x * sign.view(shape)


def cd_multiply(x: Tensor, y: Tensor, dim: int = -1) -> Tensor:
    """Hypercomplex product (the toolbox's ``onion_mult``) of numbers stored along ``dim``
    (length 2^n); broadcasts like ``x * y`` over the other dimensions. Bilinear, not
    commutative for 2^n >= 4; see the module docstring for its algebraic properties.
    """
    size = x.shape[dim]
    if size != y.shape[dim] or size & (size - 1):
        raise UserInputError(
            f"hypercomplex operands need the same power-of-two length, got {size} and {y.shape[dim]}"
        )
    if size == 1:
        return x * y
    a, b = x.chunk(2, dim)
    c, d = y.chunk(2, dim)
    first = cd_multiply(a, c, dim) - cd_multiply(cd_conjugate(d, dim), b, dim)
    second = cd_multiply(cd_conjugate(a, dim), cd_conjugate(d, dim), dim)
    second = second + cd_multiply(c, cd_conjugate(b, dim), dim)
    return torch.cat([first, second], dim)


@lru_cache(maxsize=8)
def _structure_constants_cpu(size: int) -> Tensor:
    """Cached CPU multiplication table of :func:`cd_multiply` (see structure_constants)."""
    eye = torch.eye(size, dtype=torch.float64)
    return cd_multiply(eye[:, None, :], eye[None, :, :]).permute(2, 0, 1).contiguous()


def structure_constants(size: int, device: torch.device | str = "cpu") -> Tensor:
    """Multiplication table T (size x size x size, float64): (x y)_k = sum_ij T[k, i, j] x_i y_j."""
    return _structure_constants_cpu(size).to(device)


def to_uint16_(x: Tensor) -> Tensor:
    """MATLAB ``uint16(x)`` in place, kept in float64: round half away from zero, clamp to
    [0, 65535], NaN to 0."""
    return x.clamp_(0.0, UINT16_MAX).add_(0.5).floor_().nan_to_num_(0.0)


def mirror_extend(x: Tensor, height: int, width: int) -> Tensor:
    """Extend N x C x H x W to height x width by half-sample symmetric mirroring of the last
    rows and columns (edge pixel repeated), as ``q2n.m`` does; needs height - H <= H."""
    h, w = x.shape[-2:]
    if height > h:
        x = torch.cat([x, x[..., 2 * h - height :, :].flip(-2)], -2)
    if width > w:
        x = torch.cat([x, x[..., 2 * w - width :].flip(-1)], -1)
    return x


def _padded_size(size: int, block_size: int, shift: int) -> int:
    """Image size after ``q2n.m``'s extension: (ceil(size / shift) - 1) * shift + block_size."""
    padded = (math.ceil(size / shift) - 1) * shift + block_size
    if padded - size > size:
        raise UserInputError(
            f"Q2n needs images of at least {padded - size} pixels per side for block size "
            f"{block_size} (got {size}); use a smaller block_size or a larger image"
        )
    return padded


def _block_quality(sums: Tensor, squares: Tensor, cross: Tensor, pixels: int, size: int) -> Tensor:
    """Hypercomplex Q of every block (``onions_quality.m``) from its moments: N x B -> [0, 1].

    ``sums``, ``squares`` (N x B x 2C) and ``cross`` (N x B x C x C) are the block sums, sums
    of squares and sums of products (:func:`block_moments`) of the uint16 bands of the
    reference then of the test block, over ``pixels`` pixels; ``size`` = 2^n >= C, the missing
    bands being zero bands of both images. Each band of both blocks is normalised with the mean
    a and std s of the reference band, (v - a) / s + 1, with s = eps when the reference band is
    flat and no scaling (v + 1) when its mean is 0. Then Q = |4 sigma_xy| |mx| |my| /
    ((sigma_x^2 + sigma_y^2)(|mx|^2 + |my|^2)) with the hypercomplex covariance sigma_xy =
    E[(x - mx) conj(y - my)] (N - 1 normalisation); blocks whose bands are all flat in both
    images get 2 |mx| |my| / (|mx|^2 + |my|^2). Sums of integers, exact for blocks up to
    32 x 32.
    """
    bands = sums.shape[-1] // 2
    norm = pixels * (pixels - 1)
    s_x, s_y = sums[..., :bands], sums[..., bands:]
    var_x = (pixels * squares[..., :bands] - s_x**2) / norm
    var_y = (pixels * squares[..., bands:] - s_y**2) / norm
    cov = (pixels * cross - s_x[..., :, None] * s_y[..., None, :]) / norm
    scale = torch.where(s_x == 0, 1.0, torch.where(var_x == 0, EPS, var_x.sqrt()))
    cov = cov / (scale[..., :, None] * scale[..., None, :])
    var_sum = ((var_x + var_y) / scale**2).sum(-1)
    # means of the normalised blocks: 1 for every band of ref (and the zero bands of both)
    mean_test = (s_y - s_x) / (pixels * scale) + 1
    sq_x = float(size)
    sq_y = (mean_test**2).sum(-1) + (size - bands)
    mean_bias = 2 * math.sqrt(sq_x) * sq_y.sqrt() / (sq_x + sq_y)
    # the conjugate of the normalised test block is folded into the table: T[k, i, j] sign_j
    sign = cd_conjugate(torch.ones(bands, dtype=sums.dtype, device=sums.device))
    table = structure_constants(size, sums.device)[:, :bands, :bands] * sign
    product = torch.einsum("kij,nbij->nbk", table, cov)
    flat = var_sum == 0
    general = 2 * product.norm(dim=-1) * mean_bias / torch.where(flat, 1.0, var_sum)
    return torch.where(flat, mean_bias, general)


def q2n(fused: Tensor, gt: Tensor, block_size: int = 32, shift: int = 32) -> Tensor:
    """Q2n index (``q2n(GT, F, block_size, shift)`` of the toolbox), shape (N,), range [0, 1].

    ``gt`` is the reference whose block statistics normalise both images. Steps, as the
    toolbox: mirror-extend both images so that blocks at stride ``shift`` cover them; cast to
    uint16 (inputs must be at digital-number scale, not [0, 1]); append zero bands up to 2^n;
    Q of every block (:func:`_block_quality`); mean over blocks. ``shift`` <= ``block_size``.
    """
    f, g = check_pair(fused, gt)
    if block_size < 2 or not 0 < shift <= block_size:
        raise UserInputError(
            f"Q2n needs block_size >= 2 and 0 < shift <= block_size, got {block_size} and {shift}"
        )
    height = _padded_size(f.shape[-2], block_size, shift)
    width = _padded_size(f.shape[-1], block_size, shift)
    images = [mirror_extend(x, height, width) for x in (g, f)]
    moments = block_moments(images, block_size, shift, transform=to_uint16_)
    size = 1 << (f.shape[1] - 1).bit_length()
    return _block_quality(*moments, block_size * block_size, size).mean(-1)
