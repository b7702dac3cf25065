"""Whole-scene fusion in overlapping tiles with bounded memory, equal to one pass over the scene.

The scene is extended by ``margin`` low-resolution pixels of half-sample symmetric reflection on
every side (the MS and the guide alike: low-resolution pixel -1 mirrors pixel 0, and its r x r
guide block mirrors block 0). It is cut into cores of ``tile`` x ``tile`` low-resolution pixels;
each core is fused with ``margin`` pixels of context around it and only the core is kept. A
model whose receptive field (with the 23-tap upsampling's) is within the margin gives exactly
what one pass over the reflected scene gives: tiles have no seams. Core origins are multiples of
``tile`` (a multiple of 8) so that the Haar transform and max pooling inside a model see the
same pixel phases in every tile.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import torch
from torch import nn

from protocols.resize import upsample
from utils.errors import UserInputError

TILE_MULTIPLE = 8
UPSAMPLING_MARGIN = 12
"""Low-resolution pixels of context the 23-tap upsampling of a tile needs (its taps reach about
10 low-resolution pixels for ratios 2 to 8), added to the model's margin."""


def symmetric_index(start: int, stop: int, size: int) -> np.ndarray:
    """Indices ``start..stop-1`` folded into ``0..size-1`` by half-sample symmetric reflection
    (-1 -> 0, -2 -> 1, size -> size - 1), repeating for ranges longer than the axis."""
    k = np.arange(start, stop) % (2 * size)
    return np.where(k < size, k, 2 * size - 1 - k)


def tile_starts(size: int, tile: int) -> list[int]:
    """Core origins 0, tile, 2 tile, ... covering ``size`` low-resolution pixels."""
    return list(range(0, size, tile))


def plan(height: int, width: int, tile: int) -> Iterator[tuple[int, int, int, int]]:
    """(row, col, rows, cols) of every core, in low-resolution pixels, row-major."""
    for r in tile_starts(height, tile):
        for c in tile_starts(width, tile):
            yield r, c, min(tile, height - r), min(tile, width - c)


def check_tiling(tile: int, margin: int) -> None:
    """Refuse, in one line, a tile (low-resolution pixels) or margin the tiler cannot use."""
    if tile < TILE_MULTIPLE or tile % TILE_MULTIPLE:
        raise UserInputError(
            f"the tile is {tile} low-resolution pixels: use a positive multiple of {TILE_MULTIPLE}"
        )
    if margin < 0:
        raise UserInputError(f"the margin must be 0 or more low-resolution pixels, got {margin}")


@torch.no_grad()
def fuse_tiled(
    model: nn.Module,
    lr: np.ndarray,
    guide: np.ndarray,
    ratio: int,
    tile: int,
    margin: int,
    out: np.ndarray,
    device: torch.device,
    scale: float = 1.0,
    dtype: torch.dtype = torch.float32,
    progress: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Fuse ``lr`` (C x h x w) with ``guide`` (G x rh x rw) into ``out`` (C x rh x rw, e.g. a
    memory-mapped GeoTIFF), tile by tile. Inputs and output are in digital numbers; the model
    sees them divided by ``scale`` (the ``data.scale`` it was trained with).

    ``up`` is :func:`protocols.resize.upsample` (23-tap for powers of two) of each reflected tile.
    ``progress(n)`` is called with the number of low-resolution pixels finished per tile.
    """
    check_tiling(tile, margin)
    _, h, w = lr.shape
    for r, c, rows, cols in plan(h, w, tile):
        row_idx = symmetric_index(r - margin, r + rows + margin, h)
        col_idx = symmetric_index(c - margin, c + cols + margin, w)
        lr_tile = torch.from_numpy(np.ascontiguousarray(lr[:, row_idx][:, :, col_idx]))
        guide_rows = symmetric_index((r - margin) * ratio, (r + rows + margin) * ratio, h * ratio)
        guide_cols = symmetric_index((c - margin) * ratio, (c + cols + margin) * ratio, w * ratio)
        guide_tile = guide[:, guide_rows][:, :, guide_cols]
        lr_tile = lr_tile[None].to(device, dtype) / scale
        guide_tile = torch.from_numpy(np.ascontiguousarray(guide_tile))[None].to(device, dtype) / scale
        up_tile = upsample(lr_tile, ratio)
        fused = model(lr_tile, up_tile, guide_tile)[0]
        core = fused[:, margin * ratio : (margin + rows) * ratio, margin * ratio : (margin + cols) * ratio]
        out[:, r * ratio : (r + rows) * ratio, c * ratio : (c + cols) * ratio] = (core * scale).cpu().numpy()
        if progress is not None:
            progress(rows * cols)
    return out
