"""Full-resolution consistencies of a fused image (Z-PNN), the measures behind the
``SpectralConsistency`` and ``SpatialConsistency`` training losses (docs/fullres.md).

- spectral: the fused image, filtered with the sensor's MTF-matched kernels and decimated exactly
  as Wald's protocol does (:func:`protocols.degrade.mtf_decimate`), against the low-resolution
  image ``lr``;
- spatial: the local correlation coefficient of each fused band with the guide on small windows,
  counted only where it is lower than the correlation of the interpolated MS ``up`` with the
  guide filtered to the MS resolution (the threshold of Ciotola et al., 2022).

Shapes: fused and up N x C x H x W, lr N x C x H/r x W/r, guide N x G x H x W (a multi-band guide
is compared through its band mean, as the full-resolution indices do). Differentiable, batched,
on any device; the correlations are computed in float64 (local variances of [0, 1] data are small).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from engine.evaluation import as_pan
from protocols.degrade import mtf_decimate, mtf_filter
from protocols.mtf import sensor_kernel
from utils.errors import UserInputError

VARIANCE_FLOOR = 1e-12
"""Local variances (data divided by the scale, so about [0, 1]) are floored here: a flat window
has correlation 0 with anything, and the gradient stays finite (1 DN at 15 bits is 1e-9)."""


def infer_ratio(fused: Tensor, lr: Tensor) -> int:
    """The integer ratio between the fused image's and ``lr``'s sizes (raises UserInputError)."""
    height, width = fused.shape[-2:]
    h, w = lr.shape[-2:]
    if h == 0 or w == 0 or height % h or width % w or height // h != width // w:
        raise UserInputError(
            f"the fused image is {height}x{width} and lr {h}x{w}: a full-resolution loss needs one "
            "integer ratio on both axes"
        )
    return height // h


def spatial_window(ratio: int) -> int:
    """Z-PNN's correlation window: 2 * ceil(ratio / 2) pixels (the ratio itself when even)."""
    return 2 * math.ceil(ratio / 2)


def box_mean(x: Tensor, window: int, clip: bool) -> Tensor:
    """Means over ``window`` x ``window`` boxes: the box of pixel i covers i - (k-1)//2 .. i + k//2.

    clip=False: only boxes inside the image, N x C x (H-k+1) x (W-k+1) (pixel (k-1)//2 first);
    clip=True: every pixel, N x C x H x W, boxes cut at the image border (mean of the pixels inside).
    """
    if not clip:
        return separable_mean(x, window)
    before, after = (window - 1) // 2, window // 2
    pads = (before, after, before, after)
    ones = torch.ones((1, 1, *x.shape[-2:]), dtype=x.dtype, device=x.device)
    return separable_mean(F.pad(x, pads), window) / separable_mean(F.pad(ones, pads), window)


def separable_mean(x: Tensor, window: int) -> Tensor:
    """Means over every window x window box inside ``x``, as a column then a row mean (2k, not
    k^2, additions a pixel): N x C x (H-k+1) x (W-k+1)."""
    return F.avg_pool2d(F.avg_pool2d(x, (window, 1), stride=1), (1, window), stride=1)


def local_correlation(x: Tensor, y: Tensor, window: int, clip: bool = False) -> Tensor:
    """Pearson correlation of ``x`` (N x C x H x W) with ``y`` (N x 1 or C x H x W) on every
    ``window`` x ``window`` box (see :func:`box_mean`), float64, in [-1, 1]."""
    if not clip and min(x.shape[-2:]) < window:
        raise UserInputError(
            f"images of {x.shape[-2]}x{x.shape[-1]} pixels are smaller than the {window}-pixel "
            "correlation window of the spatial consistency: use larger patches or a smaller window"
        )
    x, y = x.double(), y.double()
    mean_x, mean_y = box_mean(x, window, clip), box_mean(y, window, clip)
    cov = box_mean(x * y, window, clip) - mean_x * mean_y
    var_x = (box_mean(x * x, window, clip) - mean_x**2).clamp_min(VARIANCE_FLOOR)
    var_y = (box_mean(y * y, window, clip) - mean_y**2).clamp_min(VARIANCE_FLOOR)
    return (cov / torch.sqrt(var_x * var_y)).clamp(-1.0, 1.0)


def spectral_distance(
    fused: Tensor, lr: Tensor, sensor: str = "none", gains: Sequence[float] | None = None
) -> Tensor:
    """Mean |MTF-filter-and-decimate(fused) - lr| over pixels and bands (a 0-d tensor)."""
    degraded = mtf_decimate(fused, infer_ratio(fused, lr), sensor, gains)
    return (degraded - lr.to(degraded.dtype)).abs().mean()


@torch.no_grad()
def correlation_threshold(
    up: Tensor,
    guide: Tensor,
    ratio: int,
    window: int,
    sensor: str = "none",
    gains: Sequence[float] | None = None,
) -> Tensor:
    """1 - local correlation (``window`` boxes cut at the border) of each band of ``up`` with the
    guide low-passed by that band's MTF kernel: N x C x H x W, float64, no gradient."""
    bands = up.shape[1]
    pan = as_pan(guide)
    low = mtf_filter(pan.expand(-1, bands, -1, -1), sensor_kernel(sensor, ratio, bands, gains))
    return 1.0 - local_correlation(up, low, window, clip=True)


def spatial_distance(
    fused: Tensor,
    up: Tensor,
    guide: Tensor,
    ratio: int,
    window: int,
    threshold_window: int | None,
    sensor: str = "none",
    gains: Sequence[float] | None = None,
) -> Tensor:
    """Mean over bands and inner pixels of 1 - rho(fused_b, guide) on ``window`` boxes, counting
    a pixel only where it exceeds :func:`correlation_threshold` (``threshold_window`` None: everywhere)."""
    distance = 1.0 - local_correlation(fused, as_pan(guide), window)
    if threshold_window is not None:
        before, after = (window - 1) // 2, window // 2
        height, width = fused.shape[-2:]
        limit = correlation_threshold(up, guide, ratio, threshold_window, sensor, gains)
        distance = distance * (distance > limit[..., before : height - after, before : width - after])
    return distance.mean()
