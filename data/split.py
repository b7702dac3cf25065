"""Splitting an aligned scene by region: test region, validation region, training regions.

All coordinates are MS pixels of the aligned scene (row, col, height, width). The test region
is held out; the rest of the scene is cut into at most four rectangles around it (above, below,
left, right), and the validation region is a slab taken from the end of the largest of them.
Regions never overlap, and each one is degraded on its own, so no training pixel, not even
through a filter's support, comes from the validation or test regions.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import torch

from utils.errors import UserInputError


class Rect(NamedTuple):
    """A rectangle of MS pixels: rows row .. row+height-1, columns col .. col+width-1."""

    row: int
    col: int
    height: int
    width: int

    def overlaps(self, other: Rect) -> bool:
        """True when the two rectangles share at least one pixel."""
        return (
            self.row < other.row + other.height
            and other.row < self.row + self.height
            and self.col < other.col + other.width
            and other.col < self.col + self.width
        )

    def text(self) -> str:
        """Human-readable 'rows a-b, cols c-d' (end exclusive)."""
        return f"rows {self.row}-{self.row + self.height}, cols {self.col}-{self.col + self.width}"


Regions = tuple[Rect, list[Rect], Rect]
"""A scene's split: (test region, training regions, validation region)."""


def parse_rect(text: str) -> Rect:
    """'ROW,COL,H,W' -> Rect (non-negative integers, positive size)."""
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        values = []
    if len(values) != 4 or min(values) < 0 or min(values[2:]) < 1:
        raise UserInputError(f"bad region '{text}': give ROW,COL,HEIGHT,WIDTH in MS pixels, e.g. 0,0,128,128")
    return Rect(*values)


def check_inside(rect: Rect, height: int, width: int, what: str) -> None:
    """Refuse a rectangle that leaves the height x width scene."""
    if rect.row + rect.height > height or rect.col + rect.width > width:
        raise UserInputError(
            f"the {what} ({rect.text()}) leaves the aligned scene of {height}x{width} MS pixels: "
            "choose a region inside it"
        )


def default_test_region(height: int, width: int, size: int) -> Rect:
    """The last ``size`` rows of the scene, full width."""
    if size > min(height, width):
        raise UserInputError(
            f"--test-size {size} does not fit the aligned scene of {height}x{width} MS pixels: "
            "use a smaller --test-size"
        )
    return Rect(height - size, 0, size, width)


def complement(height: int, width: int, hole: Rect) -> list[Rect]:
    """The scene minus ``hole`` as up to four rectangles: above, below (full width), left, right."""
    bottom, right = hole.row + hole.height, hole.col + hole.width
    parts = [
        Rect(0, 0, hole.row, width),
        Rect(bottom, 0, height - bottom, width),
        Rect(hole.row, 0, hole.height, hole.col),
        Rect(hole.row, right, hole.height, width - right),
    ]
    return [p for p in parts if p.height > 0 and p.width > 0]


def count_patches(rect: Rect, patch: int, stride: int) -> int:
    """Number of patch x patch windows at the given stride inside ``rect``."""
    if rect.height < patch or rect.width < patch:
        return 0
    return ((rect.height - patch) // stride + 1) * ((rect.width - patch) // stride + 1)


def carve_validation(rects: list[Rect], fraction: float, patch: int, stride: int) -> tuple[list[Rect], Rect]:
    """Split off a validation slab holding about ``fraction`` of the patches.

    The slab is the end (bottom or right, along the longer side) of the rectangle with the most
    patches; it is at least one patch thick. Returns (training rectangles, validation rectangle).
    """
    if not 0.0 < fraction < 1.0:
        raise UserInputError(f"--val-fraction must be between 0 and 1, got {fraction}")
    counts = [count_patches(r, patch, stride) for r in rects]
    if not counts or max(counts) == 0:
        raise UserInputError(
            f"no {patch}x{patch} patch fits outside the test region: use a smaller --patch or "
            "--test-size, or a larger scene"
        )
    area = sum(r.height * r.width for r, n in zip(rects, counts, strict=True) if n)
    source = rects[int(np.argmax(counts))]
    tall = source.height > source.width
    side, across = (source.height, source.width) if tall else (source.width, source.height)
    thick = max(patch, stride * math.ceil(fraction * area / across / stride))
    if side - thick < patch:
        raise UserInputError(
            f"the training area {source.text()} is too small to hold out a validation slab of "
            f"{thick} pixels: lower --val-fraction or --patch"
        )
    if tall:
        train = Rect(source.row, source.col, side - thick, across)
        valid = Rect(source.row + side - thick, source.col, thick, across)
    else:
        train = Rect(source.row, source.col, across, side - thick)
        valid = Rect(source.row, source.col + side - thick, across, thick)
    return [train if r is source else r for r in rects], valid


def used_extent(rect: Rect, patch: int, stride: int) -> Rect:
    """The top-left part of ``rect`` that the patch grid covers (a multiple of the stride)."""
    rows = (rect.height - patch) // stride * stride + patch
    cols = (rect.width - patch) // stride * stride + patch
    return Rect(rect.row, rect.col, rows, cols)


def grid_origins(rect: Rect, patch: int, stride: int) -> np.ndarray:
    """Scene coordinates (N x 2, int64, row-major) of the patch grid's top-left corners."""
    rows = rect.row + np.arange(0, rect.height - patch + 1, stride)
    cols = rect.col + np.arange(0, rect.width - patch + 1, stride)
    return np.stack(np.meshgrid(rows, cols, indexing="ij"), axis=-1).reshape(-1, 2)


def extract_patches(x: torch.Tensor, patch: int, stride: int) -> torch.Tensor:
    """All patch x patch windows of a 1 x C x H x W tensor at ``stride``, row-major: N x C x p x p."""
    windows = x[0].unfold(1, patch, stride).unfold(2, patch, stride)
    return windows.permute(1, 2, 0, 3, 4).reshape(-1, x.shape[1], patch, patch)
