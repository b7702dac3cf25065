"""Single-level 2-D Haar wavelet pair (no parameters), orthonormal and exactly invertible.

For each 2 x 2 block with samples ``a = x[2i, 2j]``, ``b = x[2i+1, 2j]``, ``c = x[2i, 2j+1]``,
``e = x[2i+1, 2j+1]`` (each halved first)::

    LL = a + b + c + e      HL = -a - b + c + e   (horizontal difference)
    LH = -a + b - c + e     HH = a - b - c + e

Odd heights or widths are reflect-padded by one row/column before the transform; the inverse
crops back to the size it is given.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def pad_to_even(x: Tensor) -> Tensor:
    """Reflect-pad one row/column at the bottom/right where H or W is odd.

    x: N x C x H x W (H, W >= 2 where odd). Returns N x C x H' x W' with H', W' even.
    """
    pad_h, pad_w = x.shape[-2] % 2, x.shape[-1] % 2
    if pad_h == 0 and pad_w == 0:
        return x
    return F.pad(x, (0, pad_w, 0, pad_h), mode="reflect")


def haar_analysis(x: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Haar transform of every channel.

    x: N x K x H x W (any real values). Returns (LL, HL, LH, HH), each N x K x ceil(H/2) x ceil(W/2).
    """
    x = pad_to_even(x)
    a = x[..., 0::2, 0::2] / 2
    b = x[..., 1::2, 0::2] / 2
    c = x[..., 0::2, 1::2] / 2
    e = x[..., 1::2, 1::2] / 2
    return a + b + c + e, -a - b + c + e, -a + b - c + e, a - b - c + e


def haar_synthesis(bands: Tensor, size: tuple[int, int] | None = None) -> Tensor:
    """Inverse Haar transform.

    bands: N x 4K x h x w, the groups LL, HL, LH, HH stacked in that order (K channels each).
    size: (H, W) to crop the N x K x 2h x 2w result to (default: no crop; H <= 2h, W <= 2w).
    Returns N x K x H x W.
    """
    ll, hl, lh, hh = bands.chunk(4, dim=1)
    a = (ll - hl - lh + hh) / 2
    b = (ll - hl + lh - hh) / 2
    c = (ll + hl - lh - hh) / 2
    e = (ll + hl + lh + hh) / 2
    n, k, h, w = ll.shape
    even_rows = torch.stack((a, c), dim=-1)
    odd_rows = torch.stack((b, e), dim=-1)
    x = torch.stack((even_rows, odd_rows), dim=-3).reshape(n, k, 2 * h, 2 * w)
    if size is None:
        return x
    return x[..., : size[0], : size[1]]
