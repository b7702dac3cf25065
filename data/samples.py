"""Samples of an aligned scene: training patches and test images by Wald's protocol (reduced
resolution, with ground truth) and at native resolution, and their HDF5 files.

Used by :mod:`data.prepare`; arrays are N x C x H x W float64 tensors at digital-number scale.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import torch

from data.augment import all_dihedral, apply_dihedral
from data.split import Rect, extract_patches, grid_origins, used_extent
from protocols.degrade import wald_protocol
from protocols.resize import imresize_matlab, upsample
from utils.errors import UserInputError

Fields = dict[str, torch.Tensor]


@dataclass
class Scene:
    """An aligned scene: ms C x h x w, guide G x rh x rw (real) or None (synthesised)."""

    ms: torch.Tensor
    guide: torch.Tensor | None
    ratio: int
    attrs: dict


@dataclass
class Protocol:
    """How samples are simulated: ratio, MTF preset or gains, synthetic guide weights (G x C)."""

    ratio: int
    sensor: str
    gains: list[float] | None
    weights: torch.Tensor | None

    def guide_of(self, gt: torch.Tensor) -> torch.Tensor:
        """Synthetic guide N x G x H x W of N x C x H x W images."""
        return torch.einsum("gc,nchw->nghw", self.weights.to(gt), gt)

    def reduced(self, gt: torch.Tensor, guide: torch.Tensor | None) -> Fields:
        """Wald protocol: gt N x C x H x W, guide N x G x rH x rW (None: synthesised)."""
        synthetic = guide is None
        if synthetic:
            guide = self.guide_of(gt)
        ms, pan = wald_protocol(gt, guide[:, :1], self.ratio, self.sensor, self.gains)
        if synthetic:
            pan = guide
        elif guide.shape[1] > 1:
            pan = imresize_matlab(guide, 1.0 / self.ratio)
        return {"gt": gt, "lr": ms, "up": upsample(ms, self.ratio), "guide": pan}

    def full(self, ms: torch.Tensor, guide: torch.Tensor) -> Fields:
        """Native resolution: ms N x C x h x w, guide N x G x rh x rw; no ground truth."""
        return {"lr": ms, "up": upsample(ms, self.ratio), "guide": guide}


def crop_scene(scene: Scene, rect: Rect) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The MS (1 x C x h x w) and guide (1 x G x rh x rw, or None) of a scene rectangle."""
    r = scene.ratio
    ms = scene.ms[None, :, rect.row : rect.row + rect.height, rect.col : rect.col + rect.width]
    if scene.guide is None:
        return ms, None
    rows = slice(r * rect.row, r * (rect.row + rect.height))
    return ms, scene.guide[None, :, rows, r * rect.col : r * (rect.col + rect.width)]


DEGRADE_MODES = ("patch", "region")
"""How training and validation patches are degraded: 'patch', each patch on its own (as every
test tile; default), or 'region', each region as a whole before it is cut into patches."""


def check_degrade(degrade: str) -> str:
    """``degrade`` if it is one of DEGRADE_MODES, else a one-line UserInputError naming the option."""
    if degrade not in DEGRADE_MODES:
        raise UserInputError(
            f"--degrade (PrepareConfig.degrade) must be one of {', '.join(DEGRADE_MODES)}, got '{degrade}'"
        )
    return degrade


AUGMENT_MODES = ("none", "dihedral")
"""Training patches as cut ('none'), or each in all eight flips and quarter turns ('dihedral')."""


def check_augment(augment: str, degrade: str, full_train: bool = False) -> str:
    """``augment`` if it is one of AUGMENT_MODES and fits ``degrade`` and ``full_train``, else a
    one-line UserInputError."""
    if augment not in AUGMENT_MODES:
        raise UserInputError(f"--augment must be one of {', '.join(AUGMENT_MODES)}, got '{augment}'")
    if augment == "dihedral" and degrade != "patch":
        raise UserInputError("--augment dihedral needs --degrade patch (each copy is degraded on its own)")
    if augment == "dihedral" and full_train:
        raise UserInputError(
            "--augment dihedral and --full-train: the native-resolution files pair with the "
            "reduced ones patch for patch; add --augment none"
        )
    return augment


def region_samples(
    scene: Scene,
    protocol: Protocol,
    rect: Rect,
    patch: int,
    stride: int,
    degrade: str = "patch",
    dihedral: bool = False,
) -> tuple[Fields, np.ndarray]:
    """Reduced-resolution patches of one region: (fields, origins).

    degrade 'patch': every patch is cut at full resolution and degraded on its own, so that its
    border pixels see the same MTF padding and decimation phase as a test tile's; 'region': the
    region is degraded as a whole and then cut, so that every patch looks like a tile's interior.
    dihedral (degrade 'patch' only): every patch in all eight flips and quarter turns, each
    transformed at full resolution (MS and guide on their block grid, which every flip keeps)
    and then degraded, so that each copy has the decimation phase of a real file; samples come
    patch by patch, transform by transform (:func:`data.augment.all_dihedral`'s order), and the
    origins repeat accordingly.
    """
    area = used_extent(rect, patch, stride)
    origins = grid_origins(area, patch, stride)
    ms, guide = crop_scene(scene, area)
    r = scene.ratio
    check_augment("dihedral" if dihedral else "none", degrade)
    if check_degrade(degrade) == "patch":
        ms = extract_patches(ms, patch, stride)
        guide = None if guide is None else extract_patches(guide, r * patch, r * stride)
        if dihedral:
            ms, guide, origins = _all_transforms(ms, guide, origins)
        return protocol.reduced(ms, guide), origins
    fields = protocol.reduced(ms, guide)
    patches = {
        key: extract_patches(value, patch // r, stride // r)
        if key == "lr"
        else extract_patches(value, patch, stride)
        for key, value in fields.items()
    }
    return patches, origins


def _all_transforms(
    ms: torch.Tensor, guide: torch.Tensor | None, origins: np.ndarray
) -> tuple[torch.Tensor, torch.Tensor | None, np.ndarray]:
    """N x C x p x p patches (and N x G x rp x rp guides) -> 8N, in all eight transforms each."""
    transforms = all_dihedral()

    def each(x: torch.Tensor) -> torch.Tensor:
        copies = torch.stack([apply_dihedral(x, t) for t in transforms], dim=1)
        return copies.reshape(-1, *x.shape[1:])

    guide = None if guide is None else each(guide)
    return each(ms), guide, np.repeat(origins, len(transforms), axis=0)


def region_samples_full(
    scene: Scene, protocol: Protocol, rect: Rect, patch: int, stride: int, degrade: str = "patch"
) -> tuple[Fields, np.ndarray]:
    """Native-resolution patches of one region (no gt): lr ``patch`` x ``patch`` MS pixels, up and
    guide ``ratio`` times larger: (fields, origins). ``up`` is interpolated patch by patch
    (degrade 'patch', as every full-resolution test tile) or over the region as a whole ('region')."""
    area = used_extent(rect, patch, stride)
    origins = grid_origins(area, patch, stride)
    ms, guide = crop_scene(scene, area)
    r = scene.ratio
    if check_degrade(degrade) == "patch":
        return protocol.full(
            extract_patches(ms, patch, stride), extract_patches(guide, r * patch, r * stride)
        ), origins
    fields = protocol.full(ms, guide)
    patches = {
        key: extract_patches(value, patch, stride)
        if key == "lr"
        else extract_patches(value, patch * r, stride * r)
        for key, value in fields.items()
    }
    return patches, origins


def test_samples(
    scene: Scene, protocol: Protocol, rect: Rect, size: int
) -> tuple[Fields, Fields | None, np.ndarray]:
    """Test tiles (size x size MS pixels) of ``rect``: (reduced fields, full fields, origins).

    Each tile is degraded on its own; the full-resolution fields are None without a real guide.
    """
    reduced, origins = region_samples(scene, protocol, rect, size, size, "patch")
    if scene.guide is None:
        return reduced, None, origins
    full, _ = region_samples_full(scene, protocol, rect, size, size, "patch")
    return reduced, full, origins


def write_h5(path: Path, fields: Fields, origins: np.ndarray, keys: dict, attrs: dict) -> None:
    """Write one file (float64 arrays chunked per sample, ``origin``, attributes)."""
    with h5py.File(path, "w") as file:
        for field, value in fields.items():
            data = value.to(torch.float64).numpy()
            file.create_dataset(keys[field], data=data, chunks=(1, *data.shape[1:]))
        file.create_dataset("origin", data=origins.astype(np.int32))
        file.attrs.update(attrs)


def concat_samples(parts: list[tuple[Fields, np.ndarray]]) -> tuple[Fields, np.ndarray]:
    """Join per-region (fields, origins) along the sample axis."""
    fields = {key: torch.cat([p[0][key] for p in parts]) for key in parts[0][0]}
    return fields, np.concatenate([p[1] for p in parts])
