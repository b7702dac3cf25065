"""Border artefacts: how much larger the error is on the image frame than in the interior.

``edge_error_ratios(fused, gt)`` gives, for each edge (top, bottom, left, right), the mean absolute
error over that edge's outermost row or column (all bands) divided by the mean absolute error of
the interior (the image without its outer ``margin`` pixels on every side), one value per image.
A ratio near 1 means no frame; the 23-tap interpolated input itself is about 2 at the top/left
of the Landsat-8 demo crops.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor

EDGES = ("top", "bottom", "left", "right")


def edge_lines(x: Tensor, depth: int = 0) -> dict[str, Tensor]:
    """The row/column ``depth`` pixels in from each edge of N x C x H x W ``x``: top and bottom
    N x C x W, left and right N x C x H."""
    return {
        "top": x[..., depth, :],
        "bottom": x[..., -1 - depth, :],
        "left": x[..., :, depth],
        "right": x[..., :, -1 - depth],
    }


def edge_error_ratios(fused: Tensor, gt: Tensor, margin: int = 4, depth: int = 0) -> dict[str, Tensor]:
    """Per-image ratio of the edge's mean |fused - gt| to the interior's, for each edge.

    fused, gt: N x C x H x W (any scale, the same for both; computed in float64). margin: pixels
    left out on every side for the interior (H, W > 2 margin). depth: which line to score, 0 the
    outermost row/column, 1 the next one in, ... Returns {edge: tensor (N,) float64} for the
    edges of ``EDGES``; an image with a zero interior error gets inf (or nan for 0 / 0).
    """
    if fused.shape != gt.shape or fused.dim() != 4:
        raise ValueError(f"fused {tuple(fused.shape)} and gt {tuple(gt.shape)} must be equal N x C x H x W")
    height, width = fused.shape[-2:]
    if min(height, width) <= 2 * margin or not 0 <= depth < min(height, width):
        raise ValueError(f"margin {margin} / depth {depth} do not fit a {height} x {width} image")
    error = (fused.double() - gt.double()).abs()
    interior = error[..., margin : height - margin, margin : width - margin].mean(dim=(1, 2, 3))
    return {edge: line.mean(dim=(1, 2)) / interior for edge, line in edge_lines(error, depth).items()}


def mean_edge_ratios(
    batches: Iterable[tuple[Tensor, Tensor]], margin: int = 4, depth: int = 0
) -> dict[str, Tensor]:
    """``edge_error_ratios`` of several (fused, gt) pairs, concatenated per edge (one value per image)."""
    parts = [edge_error_ratios(f, g, margin, depth) for f, g in batches]
    return {edge: torch.cat([p[edge] for p in parts]) for edge in EDGES}
