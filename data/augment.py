"""Geometric augmentation applied identically to all fields of a sample.

Two groups of transforms: 'dihedral', all eight flips and quarter turns, and 'transpose', the
identity and the transpose only. A flip moves the low-resolution sampling grid: the Wald
protocol keeps gt rows ``ratio * i + ratio // 2`` (the toolbox's decimation phase), a flipped
patch has its samples at ``ratio * i + ratio - 1 - ratio // 2``, a different phase for every even
ratio, so the network is also trained on a geometry that no real file has. The transpose swaps
rows and columns and keeps the phase on both axes. ``python -m data.prepare --augment dihedral``
makes all eight exactly instead: each full-resolution patch is transformed, then degraded.
"""

from __future__ import annotations

import torch

from utils.errors import UserInputError

Dihedral = tuple[int, bool, bool]
GROUPS = ("dihedral", "transpose")
TRANSPOSE: Dihedral = (1, True, False)
"""A quarter turn then a row flip: the transpose of a square image."""


def all_dihedral() -> list[Dihedral]:
    """The eight transforms of a square, identity first: quarter turns 0..3, without and with a
    row flip (the column flips are these up to a half turn)."""
    return [(turns, flip, False) for flip in (False, True) for turns in range(4)]


def draw_dihedral(square: bool, generator: torch.Generator | None = None) -> Dihedral:
    """Draw ``(quarter_turns, flip_rows, flip_cols)`` from torch's RNG.

    ``quarter_turns`` is uniform in 0..3 for square images and 0 otherwise (a rotation would
    swap H and W); each flip has probability 1/2. Seeding torch makes the draw reproducible.
    """
    turns = int(torch.randint(4, (1,), generator=generator)) if square else 0
    flips = torch.randint(2, (2,), generator=generator)
    return turns, bool(flips[0]), bool(flips[1])


def apply_dihedral(image: torch.Tensor, transform: Dihedral) -> torch.Tensor:
    """Rotate ``image`` (... x H x W) by ``turns`` quarter turns, then flip rows and/or columns.

    The same transform commutes with nearest-neighbour upsampling, so a low-resolution field and
    its upsampled copy stay aligned when both get it.
    """
    turns, flip_rows, flip_cols = transform
    out = torch.rot90(image, turns, dims=(-2, -1)) if turns else image
    dims = [d for d, on in ((-2, flip_rows), (-1, flip_cols)) if on]
    return (torch.flip(out, dims) if dims else out).contiguous()


def draw_transform(group: str, square: bool, generator: torch.Generator | None = None) -> Dihedral:
    """A transform of ``group`` ('dihedral': :func:`draw_dihedral`; 'transpose': the identity
    or, for square images, the transpose, each with probability 1/2; non-square images are left
    as they are, the transpose would swap their H and W)."""
    if group not in GROUPS:
        raise UserInputError(f"augmentation group must be one of {', '.join(GROUPS)}, got '{group}'")
    if group == "dihedral":
        return draw_dihedral(square, generator)
    transpose = bool(torch.randint(2, (1,), generator=generator)) and square
    return TRANSPOSE if transpose else (0, False, False)
