"""HDF5 datasets of the three public layouts (PanCollection, HyperPanCollection,
HyperSpectralCollection), checked when opened and read one sample at a time.

Every layout yields the same sample: float32 tensors ``lr`` (C x h x w), ``up`` (C x H x W),
``guide`` (Cg x H x W) and, when the file has it, ``gt`` (C x H x W), all divided by ``scale``
(digital numbers -> about [0, 1]), plus the sample ``index``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from typing import Protocol

import h5py
import numpy as np
import torch
from torch.utils.data import Dataset

from utils.errors import UserInputError
from utils.registry import Registry, suggest

DATASETS = Registry("dataset")


class FusionData(Protocol):
    """What the engine reads of a dataset besides its samples (a registered dataset type has it):
    the band counts of ``lr`` and ``guide``, the scale ratio H / h and the file's path."""

    lr_channels: int
    guide_channels: int
    ratio: int
    path: str


LAYOUTS: dict[str, dict[str, str]] = {
    "pancollection": {"gt": "gt", "lr": "ms", "up": "lms", "guide": "pan"},
    "hyperpan": {"gt": "GT", "lr": "MS", "up": "LMS", "guide": "PAN"},
    "hyperspectral": {"gt": "GT", "lr": "LRHSI", "up": "HSI_up", "guide": "RGB"},
}
REQUIRED_FIELDS = ("lr", "up", "guide")
Shape = tuple[int, ...]


def detect_layout(keys: Iterable[str]) -> str:
    """Name of the layout whose ``lr``, ``up`` and ``guide`` keys are all in ``keys``.

    Raises UserInputError listing the keys and the closest layout when none matches.
    """
    found = set(keys)
    matches = [name for name, m in LAYOUTS.items() if all(m[f] in found for f in REQUIRED_FIELDS)]
    if matches:
        return max(matches, key=lambda name: len(found & set(LAYOUTS[name].values())))
    closest = max(LAYOUTS, key=lambda name: len(found & set(LAYOUTS[name].values())))
    lacking = [LAYOUTS[closest][f] for f in REQUIRED_FIELDS if LAYOUTS[closest][f] not in found]
    expected = "; ".join(f"{name}: {', '.join(m.values())}" for name, m in LAYOUTS.items())
    raise UserInputError(
        f"no known layout matches the keys {_listing(found)} (missing key {_listing(lacking)} "
        f"of the closest layout '{closest}'); expected keys: {expected}"
    )


def _listing(keys: Iterable[str]) -> str:
    return "[" + ", ".join(repr(k) for k in sorted(keys)) + "]"


def _resolve_layout(path: str, keys: list[str], layout: str) -> str:
    """Check ``layout`` ('auto' or a name) against the file's keys; return the layout name."""
    if layout == "auto":
        try:
            return detect_layout(keys)
        except UserInputError as exc:
            raise UserInputError(f"{path}: {exc}") from None
    if layout not in LAYOUTS:
        raise UserInputError(
            f"{path}: unknown layout '{layout}'{suggest(layout, LAYOUTS)}; "
            f"use one of: auto, {', '.join(LAYOUTS)}"
        )
    lacking = [LAYOUTS[layout][f] for f in REQUIRED_FIELDS if LAYOUTS[layout][f] not in keys]
    if not lacking:
        return layout
    problem = f"{path}: missing key {_listing(lacking)} of layout '{layout}'"
    try:
        detected = detect_layout(keys)
    except UserInputError:
        raise UserInputError(
            f"{problem} (keys found: {_listing(keys)}): store the arrays under the layout's keys"
        ) from None
    raise UserInputError(
        f"{problem}; the keys found {_listing(keys)} look like layout '{detected}': "
        f"set layout: {detected} (or auto)"
    )


def _array_shapes(path: str, file: h5py.File, keys: dict[str, str]) -> dict[str, Shape]:
    """Shape of each field's array, checking that it is a numeric 4-D array."""
    shapes = {}
    for field, key in keys.items():
        node = file[key]
        if not isinstance(node, h5py.Dataset):
            raise UserInputError(f"{path}: '{key}' is a group, not an array: store it as an array")
        if not np.issubdtype(node.dtype, np.number):
            raise UserInputError(
                f"{path}: '{key}' has dtype {node.dtype}, not numeric: store numbers "
                "(float64, float32 or uint16)"
            )
        if node.ndim != 4:
            raise UserInputError(
                f"{path}: '{key}' has shape {node.shape}, not 4-D: store as N x C x H x W "
                "(add a leading sample axis for a single image)"
            )
        shapes[field] = tuple(node.shape)
    return shapes


def _shape_problem(shapes: dict[str, Shape], keys: dict[str, str]) -> str | None:
    """Why the N x C x H x W shapes do not fit together; None if they do.

    gt/up/guide must share H x W, lr must be H/r x W/r with one integer r, and lr/up/gt must
    have the same band count.
    """
    height, width = shapes["up"][2:]
    for field in ("gt", "guide"):
        if field in shapes and shapes[field][2:] != (height, width):
            return (
                f"spatial size differs: '{keys[field]}' is {_hw(shapes[field])} but "
                f"'{keys['up']}' is {height}x{width}; they must match"
            )
    h, w = shapes["lr"][2:]
    if h == 0 or w == 0 or height % h or width % w:
        return (
            f"size ratio not an integer: '{keys['up']}' is {height}x{width} but '{keys['lr']}' "
            f"is {h}x{w}; the high-resolution size must be ratio x the low-resolution size"
        )
    if height // h != width // w:
        return (
            f"ratio differs between axes: '{keys['up']}' {height}x{width} / '{keys['lr']}' "
            f"{h}x{w}; use the same ratio for rows and columns"
        )
    bands = {keys[f]: shapes[f][1] for f in ("lr", "up", "gt") if f in shapes}
    if len(set(bands.values())) > 1:
        return (
            f"band count differs between keys {bands}: "
            f"'{keys['up']}' must be '{keys['lr']}' upsampled, with the bands of the ground truth"
        )
    return None


def _hw(shape: Shape) -> str:
    return f"{shape[2]}x{shape[3]}"


def _looks_bands_last(shape: Shape) -> bool:
    """A 4-D shape whose last dim is smaller than dims 1 and 2 (N x H x W x C)."""
    return shape[3] < min(shape[1], shape[2])


def _bands_first(shape: Shape) -> Shape:
    """N x H x W x C -> N x C x H x W."""
    return shape[0], shape[3], shape[1], shape[2]


def _check_shapes(path: str, shapes: dict[str, Shape], keys: dict[str, str]) -> None:
    """Sample counts and shapes agree; diagnose bands-last arrays and swapped lr/up keys."""
    counts = {keys[f]: s[0] for f, s in shapes.items()}
    if len(set(counts.values())) > 1:
        raise UserInputError(
            f"{path}: sample count N differs between keys {counts}: every key needs the same N"
        )
    problem = _shape_problem(shapes, keys)
    if problem is None:
        return
    candidates = (  # the arrays that look bands last, or all of them (small images, many bands)
        {f: _bands_first(s) if _looks_bands_last(s) else s for f, s in shapes.items()},
        {f: _bands_first(s) for f, s in shapes.items()},
    )
    for permuted in candidates:
        if permuted != shapes and _shape_problem(permuted, keys) is None:
            last = [keys[f] for f in shapes if permuted[f] != shapes[f]]
            raise UserInputError(
                f"{path}: keys {_listing(last)} look like N x H x W x C (bands last? store as "
                "N x C x H x W, e.g. numpy.transpose(a, (0, 3, 1, 2)))"
            )
    if _shape_problem({**shapes, "lr": shapes["up"], "up": shapes["lr"]}, keys) is None:
        problem = (
            f"'{keys['lr']}' and '{keys['up']}' look swapped "
            f"('{keys['lr']}' must be the low-resolution one); {problem}"
        )
    raise UserInputError(f"{path}: {problem}")


def _check_values(path: str, file: h5py.File, keys: dict[str, str], count: int, scale: float) -> None:
    """Check the first, middle and last samples: finite, and consistent with ``scale``."""
    low, high = math.inf, -math.inf
    for index in sorted({0, count // 2, count - 1}):
        for key in keys.values():
            values = np.asarray(file[key][index], dtype=np.float64)
            if not np.isfinite(values).all():
                raise UserInputError(
                    f"{path}: NaN or Inf pixels in '{key}' sample {index}: fix or drop those samples"
                )
            low, high = min(low, float(values.min())), max(high, float(values.max()))
    if high > 1.5 * scale:
        bits = 2 ** math.ceil(math.log2(high + 1)) - 1
        raise UserInputError(
            f"{path}: values up to {high:g} exceed scale {scale:g}: set scale to the data's "
            f"bit-depth maximum, here {bits} (e.g. 2047 for 11-bit, 65535 for 16-bit data)"
        )
    if high <= 1.5 < scale:
        raise UserInputError(
            f"{path}: data look already normalised to [0, 1] (max {high:g}) but scale is "
            f"{scale:g}: set scale: 1"
        )
    if low < -0.5 * scale:
        raise UserInputError(
            f"{path}: values down to {low:g} are far below 0 for scale {scale:g}: "
            "store non-negative digital numbers"
        )


def _checked_scale(scale: float) -> float:
    """``scale`` as a positive float."""
    try:
        value = float(scale)
    except (TypeError, ValueError):
        value = math.nan
    if not value > 0 or math.isinf(value):
        raise UserInputError(
            f"scale must be a positive number (got {scale!r}): use the data's "
            "bit-depth maximum (e.g. 2047) or 1 for normalised data"
        )
    return value


def _check_path(path: str) -> None:
    if not os.path.exists(path):
        raise UserInputError(
            f"dataset file '{path}' does not exist: check the path (relative paths start at {os.getcwd()})"
        )
    if not os.path.isfile(path):
        raise UserInputError(f"'{path}' is a directory, not a file: give the .h5 file inside")
    if not h5py.is_hdf5(path):
        raise UserInputError(
            f"'{path}' is not an HDF5 file: give an .h5 file of the "
            "PanCollection, HyperPanCollection or HyperSpectralCollection layout"
        )


def open_h5(path: str) -> h5py.File:
    """``h5py.File(path, 'r')``; a file h5py cannot open (truncated, damaged, locked) is a
    one-line UserInputError that names it."""
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserInputError(
            f"dataset file '{path}' cannot be opened ({reason}): the file is damaged or incomplete; "
            "copy or download it again"
        ) from None


@DATASETS.register
class FusionH5Dataset(Dataset):
    """Samples of an HDF5 file in one of the public layouts, read lazily one index at a time.

    Args:
        path: the .h5 file (arrays N x C x H x W, digital numbers).
        scale: divisor bringing digital numbers to about [0, 1] (2047 for 11-bit, 1 if normalised).
        layout: 'auto' or a key of ``LAYOUTS``.
        ratio: H / h; inferred when None, else checked against the file.
        require_gt: refuse files without ground truth (full-resolution files).
        max_samples: use only the first ``max_samples`` samples.
    """

    def __init__(
        self,
        path: str,
        scale: float,
        layout: str = "auto",
        ratio: int | None = None,
        require_gt: bool = False,
        max_samples: int | None = None,
    ):
        self.path = str(path)
        self.scale = _checked_scale(scale)
        if max_samples is not None and max_samples < 1:
            raise UserInputError(f"max_samples must be >= 1 (got {max_samples}) or null for all")
        _check_path(self.path)
        with open_h5(self.path) as file:
            self.layout = _resolve_layout(self.path, list(file.keys()), layout)
            self.keys = {f: k for f, k in LAYOUTS[self.layout].items() if k in file}
            self.has_gt = "gt" in self.keys
            if require_gt and not self.has_gt:
                raise UserInputError(
                    f"{self.path}: no ground-truth key '{LAYOUTS[self.layout]['gt']}' (a "
                    "full-resolution file?): training and reduced-resolution tests need a file "
                    "with ground truth"
                )
            shapes = _array_shapes(self.path, file, self.keys)
            _check_shapes(self.path, shapes, self.keys)
            total = shapes["up"][0]
            if total == 0:
                raise UserInputError(
                    f"{self.path}: the dataset is empty (N = 0 samples): give a file with samples"
                )
            self.length = min(total, max_samples or total)
            self.size = tuple(shapes["up"][2:])
            self.lr_size = tuple(shapes["lr"][2:])
            self.ratio = self._checked_ratio(ratio)
            self.lr_channels = shapes["lr"][1]
            self.guide_channels = shapes["guide"][1]
            _check_values(self.path, file, self.keys, self.length, self.scale)
        self._file: h5py.File | None = None
        self._pid: int | None = None
        self._arrays: dict[str, h5py.Dataset] = {}  # the open file's datasets by field
        self._floats: list[str] = []  # its fields of a float dtype

    def _checked_ratio(self, ratio: int | None) -> int:
        found = self.size[0] // self.lr_size[0]
        if ratio is not None and ratio != found:
            raise UserInputError(
                f"{self.path}: ratio is {found} ('{self.keys['up']}' {self.size[0]}x"
                f"{self.size[1]} / '{self.keys['lr']}' {self.lr_size[0]}x{self.lr_size[1]}) but "
                f"the options say {ratio}: set ratio: {found} or use a file made with ratio {ratio}"
            )
        return found

    def __len__(self) -> int:
        return self.length

    def _handle(self) -> h5py.File:
        """The open file of this process, (re)opened on first use and after a fork."""
        if self._file is None or self._pid != os.getpid():
            self._file = open_h5(self.path)
            self._pid = os.getpid()
            # looked up once: a lookup by name costs four times the read of a sample's array
            self._arrays = {field: self._file[key] for field, key in self.keys.items()}
            # integer fields cannot hold NaN or Inf: only the float ones are checked per read
            self._floats = [f for f, a in self._arrays.items() if not np.issubdtype(a.dtype, np.integer)]
        return self._file

    def close(self) -> None:
        """Close this process's file handle (reopened on the next read)."""
        if self._file is not None and self._pid == os.getpid():
            self._file.close()
        self._file, self._pid, self._arrays, self._floats = None, None, {}, []

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_file": None, "_pid": None, "_arrays": {}, "_floats": []}

    def __getitem__(self, index: int) -> dict:
        """Sample ``index``: float32 tensors lr, up, guide (and gt) divided by ``scale``."""
        if not -self.length <= index < self.length:
            raise IndexError(f"index {index} out of range for {self.length} samples")
        index = int(index) % self.length
        self._handle()
        arrays = {field: array[index] for field, array in self._arrays.items()}
        sample = {
            field: torch.from_numpy((np.asarray(array, dtype=np.float64) / self.scale).astype(np.float32))
            for field, array in arrays.items()
        }
        bad = [self.keys[f] for f in self._floats if not torch.isfinite(sample[f]).all()]
        if bad:
            raise UserInputError(
                f"{self.path}: NaN or Inf pixels in {_listing(bad)} of sample "
                f"{index}: fix or drop that sample"
            )
        return {**sample, "index": index}


def check_compatible(a: FusionH5Dataset, b: FusionH5Dataset, what: str) -> None:
    """Refuse ``b`` (e.g. the validation set) when its bands or ratio differ from ``a``'s."""
    pairs = {
        "lr bands": (a.lr_channels, b.lr_channels),
        "guide bands": (a.guide_channels, b.guide_channels),
        "ratio": (a.ratio, b.ratio),
    }
    diffs = [f"{name} {x} vs {y}" for name, (x, y) in pairs.items() if x != y]
    if diffs:
        raise UserInputError(
            f"{what} '{b.path}' does not match '{a.path}' ({', '.join(diffs)}): "
            "use files of the same sensor and ratio"
        )


def check_min_size(dataset: FusionH5Dataset, patch: int) -> None:
    """Refuse a ``patch`` (pixels, high resolution) larger than the dataset's images."""
    if patch < 1:
        raise UserInputError(f"patch size must be >= 1 (got {patch})")
    if min(dataset.size) < patch:
        height, width = dataset.size
        raise UserInputError(
            f"{dataset.path}: images ({height}x{width}) are smaller than the patch size {patch}: "
            f"set the patch size to at most {min(dataset.size)}"
        )
