"""The one image reader: .npy, .npz, .mat (v5 and v7.3), .h5/.hdf5 and .tif/.tiff files.

Used by the metrics command (stacks of fused images and references), scene preparation and
predict.py (one scene). :func:`read_image` returns an N x C x H x W array with the file's own
values and dtype. Axis order follows each format's usual convention unless a layout string
overrides it (see ``to_nchw``):

- .npy, .npz, .h5, .hdf5: bands first (C x H x W; N x C x H x W for stacks), as PanCollection
  files read with h5py;
- .mat: bands last, as MATLAB writes (H x W x C; H x W x C x N for stacks). v7.3 files are HDF5:
  h5py sees MATLAB's axes reversed, so they are reversed back first;
- .tif/.tiff: the file's own sample axis when it has one (contiguous or planar samples, as GDAL
  writes), else bands last (H x W x C; N x H x W x C for stacks);
- any format: a 2-D array is one single-band image (H x W).
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import scipy.io
import tifffile

from utils.errors import UserInputError

SUFFIXES = (".npy", ".npz", ".mat", ".h5", ".hdf5", ".tif", ".tiff")

# Dataset names used by PanCollection, HyperPanCollection and HyperSpectralCollection files,
# tried in order when a file holds several arrays and no key was given.
CONVENTIONAL_KEYS: dict[str, tuple[str, ...]] = {
    "fused": ("fused", "sr", "output"),
    "gt": ("gt", "GT"),
    "ms": ("ms", "MS", "LRHSI"),
    "pan": ("pan", "PAN", "RGB"),
    "lms": ("lms", "LMS", "HSI_up"),
    "image": (),
}

_BANDS_FIRST = {2: "hw", 3: "chw", 4: "nchw"}
_MAT_BANDS_LAST = {2: "hw", 3: "hwc", 4: "hwcn"}
_TIF_BANDS_LAST = {2: "hw", 3: "hwc", 4: "nhwc"}
_TIF_AXES = {"Y": "h", "X": "w", "S": "c"}


def _join(names: list[str]) -> str:
    """Comma-separated names for error messages."""
    return ", ".join(names) if names else "(none)"


def _label(role: str, path: Path) -> str:
    """How error messages name an input: the command's flag and the file, or the file alone."""
    return str(path) if role == "image" else f"--{role} {path}"


def _key_hint(role: str, path: Path) -> str:
    """How the user picks an array: the command's ``--role-key`` flag, or ``file:NAME``."""
    return f"'{path}:NAME'" if role == "image" else f"--{role}-key"


def choose_key(
    keys: list[str], key: str | None, role: str, path: Path, images: list[str] | None = None
) -> str:
    """Pick the array to read from a file holding ``keys``.

    An explicit ``key`` must exist; otherwise the only array, else the only one of ``images``
    (the arrays shaped like an image, when known), else the first conventional name for
    ``role`` (``CONVENTIONAL_KEYS``). Anything else is a :class:`UserInputError` that lists the keys.
    """
    if key is not None:
        if key not in keys:
            raise UserInputError(
                f"{path} has no array '{key}'; it holds: {_join(keys)} "
                f"(choose one with {_key_hint(role, path)})"
            )
        return key
    if len(keys) == 1:
        return keys[0]
    if images is not None and len(images) == 1:
        return images[0]
    for name in CONVENTIONAL_KEYS[role]:
        if name in keys:
            return name
    if not keys:
        raise UserInputError(f"{path} holds no arrays")
    raise UserInputError(
        f"{path} holds several arrays ({_join(keys)})"
        + (f" and none is named {' or '.join(CONVENTIONAL_KEYS[role])}" if CONVENTIONAL_KEYS[role] else "")
        + f"; choose one with {_key_hint(role, path)}"
    )


def _hdf5_keys(handle: h5py.File) -> list[str]:
    """Paths of all datasets in an HDF5 file, skipping MATLAB's internal '#refs#' groups."""
    keys: list[str] = []

    def visit(name: str, obj: object) -> None:
        if isinstance(obj, h5py.Dataset) and not name.startswith("#"):
            keys.append(name)

    handle.visititems(visit)
    return keys


# Each reader returns (array as stored, name of the array read, layout of the format's convention).
Read = tuple[np.ndarray, str, str]


def _read_hdf5(path: Path, key: str | None, role: str) -> Read:
    with h5py.File(path, "r") as handle:
        name = choose_key(_hdf5_keys(handle), key, role, path)
        array = np.asarray(handle[name][()])
    return array, name, _BANDS_FIRST.get(array.ndim, "")


def _read_mat(path: Path, key: str | None, role: str) -> Read:
    if h5py.is_hdf5(path):
        array, name, _ = _read_hdf5(path, key, role)
        array = array.transpose()
    else:
        entries = scipy.io.whosmat(path)
        images = [n for n, shape, _ in entries if len(shape) >= 2 and sorted(shape)[-2] > 1]
        name = choose_key([entry[0] for entry in entries], key, role, path, images)
        array = np.asarray(scipy.io.loadmat(path, variable_names=[name])[name])
    return array, name, _MAT_BANDS_LAST.get(array.ndim, "")


def _read_npz(path: Path, key: str | None, role: str) -> Read:
    with np.load(path, allow_pickle=False) as data:
        name = choose_key(list(data.files), key, role, path)
        array = data[name]
    return array, name, _BANDS_FIRST.get(array.ndim, "")


def _read_npy(path: Path, key: str | None, role: str) -> Read:
    array = np.load(path, allow_pickle=False)
    return array, "", _BANDS_FIRST.get(array.ndim, "")


def tif_layout(axes: str) -> str:
    """Layout of a TIFF series from tifffile's axes string ('YXS', 'SYX', 'QYX', 'QYXS', ...).

    A sample axis 'S' (contiguous or planar samples, as GDAL writes) is the band axis and any
    other non-spatial axis the stack axis; without one, pages are ambiguous and the bands-last
    convention applies (H x W x C; N x H x W x C).
    """
    if "S" in axes:
        return "".join(_TIF_AXES.get(axis, "n") for axis in axes)
    return _TIF_BANDS_LAST.get(len(axes), "")


def _read_tif(path: Path, key: str | None, role: str) -> Read:
    with tifffile.TiffFile(path) as tif:
        series = tif.series[0]
        return series.asarray(), "", tif_layout(series.axes)


_READERS = {
    ".npy": _read_npy,
    ".npz": _read_npz,
    ".mat": _read_mat,
    ".h5": _read_hdf5,
    ".hdf5": _read_hdf5,
    ".tif": _read_tif,
    ".tiff": _read_tif,
}


def to_nchw(array: np.ndarray, layout: str, what: str) -> np.ndarray:
    """Reorder ``array`` whose axes are named by ``layout`` to N x C x H x W.

    ``layout`` uses distinct letters of 'nchw' and must name 'h' and 'w'; a missing 'n' or 'c'
    becomes a length-1 axis ('hw' is one single-band image, 'chw' one image, 'hwcn' a MATLAB
    stack). ``what`` names the input in error messages.
    """
    shape = " x ".join(str(size) for size in array.shape)
    if not layout:  # the format's convention has no entry for this many axes
        raise UserInputError(
            f"{what} has {array.ndim} dimensions ({shape}); expected 2 (H x W), 3 (one image) or 4 (a stack)"
        )
    letters = set(layout)
    if len(letters) != len(layout) or not letters <= set("nchw") or not {"h", "w"} <= letters:
        raise UserInputError(
            f"layout '{layout}' for {what} is not valid: use distinct letters of 'nchw' "
            "including h and w (e.g. chw, hwc, nchw, hwcn)"
        )
    if len(layout) != array.ndim:
        raise UserInputError(
            f"layout '{layout}' for {what} names {len(layout)} axes but the array has {array.ndim} ({shape})"
        )
    missing = "".join(axis for axis in "nc" if axis not in layout)
    full = layout + missing
    expanded = array.reshape(array.shape + (1,) * len(missing))
    return np.transpose(expanded, [full.index(axis) for axis in "nchw"])


def read_image(
    path: str | Path, role: str = "image", key: str | None = None, layout: str | None = None
) -> tuple[np.ndarray, str]:
    """Read one image file (or a stack) as an N x C x H x W array.

    Returns the array (values and dtype as stored, no scaling) and the name of the array read
    (empty for .npy and .tif). ``role`` (fused, gt, ms, pan, lms, or image) picks the conventional
    key and names the input in error messages (``--role path``). Bad files raise
    :class:`UserInputError`.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in _READERS:
        raise UserInputError(
            f"{_label(role, path)}: unknown file type '{path.suffix}'; use one of {', '.join(SUFFIXES)}"
        )
    if not path.is_file():
        raise UserInputError(f"{_label(role, path)}: no such file")
    try:
        array, name, convention = _READERS[suffix](path, key, role)
    except UserInputError:
        raise
    except Exception as exc:  # every reader failure means the same thing to the user
        raise UserInputError(f"{_label(role, path)}: cannot read it as {suffix}: {exc}") from None
    what = _label(role, path) + (f" ['{name}']" if name else "")
    if array.dtype.kind not in "biuf":
        raise UserInputError(f"{what} holds {array.dtype} values; expected real numbers")
    if array.size == 0:
        shape = " x ".join(str(size) for size in array.shape)
        raise UserInputError(f"{what} is empty (shape {shape}): give a file that holds at least one image")
    return to_nchw(array, layout or convention, what), name
