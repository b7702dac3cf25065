"""Cayley-Dickson hypercomplex algebra and the Q2n index (Q4 for 4 bands, Q8 for 8 bands).

A pixel of a 2^n-band image is read as a hypercomplex number (complex for 2 bands, quaternion
for 4, octonion for 8, ...). The product follows the toolbox's ``onion_mult`` recursion: split
x = (a, b) and y = (c, d) into halves, then

    x y = (a c - conj(d) b,  conj(a) conj(d) + c conj(b)),

down to real numbers, where conj negates every component but the first. It is a
Cayley-Dickson doubling (the second half stored conjugated), so norms are multiplicative up to
octonions and conj(x y) = conj(y) conj(x) for every 2^n.

Q2n (Garzelli & Nencini 2009) follows ``q2n.m`` / ``onions_quality.m`` of the MATLAB toolbox.
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch
from torch import Tensor

from metrics.reference import block_view, check_pair
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
    """Cayley-Dickson product of hypercomplex numbers stored along ``dim`` (length 2^n).

    Broadcasts like ``x * y`` over the other dimensions; bilinear, not commutative for 2^n >= 4
    and not associative for 2^n >= 8.
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


def _raw_moments(x: Tensor, y: Tensor) -> tuple[Tensor, ...]:
    """Block sums of N x B x C x P blocks: sum x, sum y, sum x^2, sum y^2 (N x B x C) and the
    cross sums sum_p x_i y_j (N x B x C x C). Exact for uint16 data and blocks up to 32 x 32."""
    ones = x.new_ones(x.shape[-1], 1)
    squares = (x.unsqueeze(-2) @ x.unsqueeze(-1), y.unsqueeze(-2) @ y.unsqueeze(-1))
    return (
        (x @ ones)[..., 0],
        (y @ ones)[..., 0],
        squares[0][..., 0, 0],
        squares[1][..., 0, 0],
        x @ y.transpose(-1, -2),
    )


def _block_quality(ref: Tensor, test: Tensor, size: int) -> Tensor:
    """Hypercomplex Q of every block (``onions_quality.m``): N x B x C x P -> N x B, in [0, 1].

    ``size`` = 2^n >= C: the missing bands are zero bands of both images. Each band of both
    blocks is normalised with the mean a and std s of the reference band, (v - a) / s + 1, with
    s = eps when the reference band is flat and no scaling (v + 1) when its mean is 0. Then
    Q = |4 sigma_xy| |mx| |my| / ((sigma_x^2 + sigma_y^2)(|mx|^2 + |my|^2)) with the
    hypercomplex covariance sigma_xy = E[(x - mx) conj(y - my)] (N - 1 normalisation); blocks
    whose bands are all flat in both images get 2 |mx| |my| / (|mx|^2 + |my|^2).
    """
    pixels = ref.shape[-1]
    s_x, s_y, s_xx, s_yy, s_xy = _raw_moments(ref, test)
    norm = pixels * (pixels - 1)
    var_x, var_y = (pixels * s_xx - s_x**2) / norm, (pixels * s_yy - s_y**2) / norm
    scale = torch.where(s_x == 0, 1.0, torch.where(var_x == 0, EPS, var_x.sqrt()))
    cov = (pixels * s_xy - s_x[..., :, None] * s_y[..., None, :]) / norm
    cov = cov / (scale[..., :, None] * scale[..., None, :])
    var_sum = ((var_x + var_y) / scale**2).sum(-1)
    pad = size - ref.shape[-2]
    mean_y = torch.nn.functional.pad((s_y - s_x) / (pixels * scale) + 1, (0, pad), value=1.0)
    sign = cd_conjugate(torch.ones(size, dtype=ref.dtype, device=ref.device))
    constants = structure_constants(size, ref.device)[:, : ref.shape[-2], : ref.shape[-2]]
    product = torch.einsum("kij,nbij->nbk", constants * sign[: ref.shape[-2]], cov)
    sq_x, sq_y = float(size), (mean_y**2).sum(-1)
    mean_bias = 2 * math.sqrt(sq_x) * sq_y.sqrt() / (sq_x + sq_y)
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
    ref, test = (to_uint16_(block_view(mirror_extend(x, height, width), block_size, shift)) for x in (g, f))
    size = 1 << (f.shape[1] - 1).bit_length()
    return _block_quality(ref, test, size).mean(-1)
