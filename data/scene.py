"""Reading a scene (GeoTIFF, .npy, .mat), its georeferencing, and PAN/MS grid alignment.

Grid conventions. A raster's *grid* is where its pixels lie on the ground. GeoTIFF says it
with a tie point, a pixel size and the raster type: ``PixelIsArea`` (the tie point is the outer
corner of pixel (0, 0)) or ``PixelIsPoint`` (the tie point is the centre of pixel (0, 0)).
Landsat-8 is pixel-is-point with both tie points on pixel centres, so MS pixel (i, j) is centred
on PAN pixel (2i+1, 2j+1): it covers PAN pixel 2i+1 and half of 2i and 2i+2 on each axis, and
a naive 2 x 2 block grid (PAN 2i..2i+1) is half a PAN pixel off.

:func:`align` brings a PAN (or any high-resolution guide) and an MS image onto the block grid
used by the degradation protocols: MS pixel (i, j) covers exactly PAN pixels ``r*i .. r*i+r-1``
on both axes. A half-PAN-pixel offset is removed by resampling the PAN at the midpoints between
its samples with the half-band interpolator of the toolbox's ``interp23tap`` (its odd phase:
12 taps, exact for polynomials of degree 1, flat pass band up to about 0.8 x Nyquist, unlike a
2-tap average that halves the contrast of fine detail); integer offsets are cropped.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import tifffile
import torch

from protocols.resize import HALF_BAND_23, filter_axis
from utils import image_io
from utils.errors import UserInputError

GRIDS = ("auto", "pixel-is-area", "pixel-is-point")
TIFF_SUFFIXES = (".tif", ".tiff", ".jp2")
RASTER_AREA, RASTER_POINT = 1, 2

HALF_SHIFT_TAPS = np.concatenate([[0.0], HALF_BAND_23[11:0:-2], HALF_BAND_23[1::2]])
"""13 taps centred on sample k that interpolate the value at k + 0.5 (the first is zero): the
odd phase of the 23-tap half-band filter, sum 1."""


@dataclass(frozen=True)
class Grid:
    """Georeferencing of one raster, reduced to what alignment needs.

    x0, y0: map coordinates (metres) of the outer top-left corner of pixel (0, 0);
    dx, dy: pixel width and height (metres, positive; rows go south); point: True when the
    file said PixelIsPoint; crs: EPSG code of the projected system, or None.
    """

    x0: float
    y0: float
    dx: float
    dy: float
    point: bool = False
    crs: int | None = None

    def shifted(self, rows: int, cols: int) -> Grid:
        """The grid of a crop starting at pixel (rows, cols)."""
        return replace(self, x0=self.x0 + cols * self.dx, y0=self.y0 - rows * self.dy)


def read_grid(path: str | Path) -> Grid | None:
    """Grid of a GeoTIFF from its ModelTiepoint, ModelPixelScale and GTRasterTypeGeoKey tags.

    Returns None when the file is not a TIFF or has no tie point / pixel scale.
    """
    if Path(path).suffix.lower() not in TIFF_SUFFIXES:
        return None
    with tifffile.TiffFile(path) as tif:
        meta = tif.geotiff_metadata or {}
    tie, scale = meta.get("ModelTiepoint"), meta.get("ModelPixelScale")
    if tie is None or scale is None:
        return None
    point = int(meta.get("GTRasterTypeGeoKey", RASTER_AREA)) == RASTER_POINT
    centre = 0.5 if point else 0.0
    dx, dy = float(scale[0]), float(scale[1])
    crs = meta.get("ProjectedCSTypeGeoKey")
    return Grid(
        x0=float(tie[3]) - (float(tie[0]) + centre) * dx,
        y0=float(tie[4]) + (float(tie[1]) + centre) * dy,
        dx=dx,
        dy=dy,
        point=point,
        crs=None if crs is None else int(crs),
    )


def write_geotiff(path: str | Path, image: np.ndarray, grid: Grid, metadata: dict | None = None) -> None:
    """Write C x H x W (or H x W) integers as a deflate-compressed GeoTIFF with ``grid``'s tags.

    The tie point is written in the grid's own convention (pixel centre when ``grid.point``);
    ``metadata`` goes to the JSON image description (e.g. band names, provenance).
    """
    image = image[0] if image.ndim == 3 and image.shape[0] == 1 else image
    centre = 0.5 if grid.point else 0.0
    keys = [1, 1, 0, 2, 1024, 0, 1, 1, 1025, 0, 1, RASTER_POINT if grid.point else RASTER_AREA]
    if grid.crs is not None:
        keys[3] = 3
        keys += [3072, 0, 1, grid.crs]
    tie = (0.0, 0.0, 0.0, grid.x0 + centre * grid.dx, grid.y0 - centre * grid.dy, 0.0)
    tifffile.imwrite(
        path,
        image,
        photometric="minisblack",
        planarconfig="separate" if image.ndim == 3 else None,
        compression="zlib",
        predictor=True,
        metadata=metadata,
        extratags=[
            (33550, 12, 3, (grid.dx, grid.dy, 0.0), True),
            (33922, 12, 6, tie, True),
            (34735, 3, len(keys), tuple(keys), True),
        ],
    )


def _split_mat_name(path: str) -> tuple[str, str | None]:
    """'scene.mat:VAR' -> ('scene.mat', 'VAR'); other paths -> (path, None)."""
    head, sep, name = str(path).rpartition(".mat:")
    return (head + ".mat", name) if sep else (str(path), None)


def _tiff_pages_layout(path: str) -> str | None:
    """'chw' for a TIFF of several pages and no sample axis (each page a band, as GDAL-less
    writers store a C x H x W cube); None (the reader's convention) otherwise or if unreadable."""
    try:
        with tifffile.TiffFile(path) as tif:
            axes = tif.series[0].axes
    except (tifffile.TiffFileError, OSError, IndexError):
        return None
    return "chw" if len(axes) == 3 and "S" not in axes else None


def read_image(path: str | Path) -> np.ndarray:
    """One scene image as a C x H x W array, values and dtype as stored: GeoTIFF (the sample
    axis is the band axis; without one, each page is a band), .npy (bands first), .mat
    (bands last, ``file.mat:VAR`` picks a variable), through :func:`utils.image_io.read_image`.

    A band axis longer than both spatial axes is fine (hyperspectral cubes); a spatial axis
    shorter than both others means the axis order is wrong and is refused.
    """
    path, name = _split_mat_name(str(path))
    if not Path(path).is_file():
        raise UserInputError(f"{path} does not exist: give the path of an image file")
    suffix = Path(path).suffix.lower()
    if suffix not in (*TIFF_SUFFIXES, ".npy", ".mat"):
        raise UserInputError(
            f"{path}: unsupported file type '{suffix}'; use GeoTIFF (.tif), .npy (C x H x W) "
            "or .mat (H x W x C)"
        )
    layout = None
    if suffix in TIFF_SUFFIXES:
        layout = _tiff_pages_layout(path)
    try:
        stack, _ = image_io.read_image(path, key=name, layout=layout)
    except UserInputError as exc:
        if suffix in TIFF_SUFFIXES and "cannot read" in str(exc):
            raise UserInputError(
                f"{path} is not a readable TIFF: convert it to GeoTIFF, e.g. with gdal_translate"
            ) from None
        raise
    if stack.shape[0] != 1:
        raise UserInputError(f"{path}: expected one image, found a stack of {stack.shape[0]}")
    image = stack[0]
    bands, height, width = image.shape
    if (height < bands and height < width) or (width < bands and width < height):
        order = "C x H x W" if suffix == ".npy" else "H x W x C"
        raise UserInputError(
            f"{path}: shape {image.shape} read as {order} makes the shortest axis spatial; "
            "store .npy bands-first (C x H x W) and .mat bands-last (H x W x C)"
        )
    return image


def read_bands(paths: Sequence[str | Path], what: str) -> tuple[np.ndarray, Grid | None]:
    """Stack the bands of one or more files (same size) into C x H x W; their common grid.

    The grid is None unless every file is a GeoTIFF with the same georeferencing.
    """
    cubes = [read_image(p) for p in paths]
    sizes = {cube.shape[1:] for cube in cubes}
    if len(sizes) > 1:
        listing = ", ".join(
            f"{Path(p).name} {c.shape[1]}x{c.shape[2]}" for p, c in zip(paths, cubes, strict=True)
        )
        raise UserInputError(f"the {what} files differ in size ({listing}): give bands of one grid")
    grids = {read_grid(p) for p in paths}
    cube = np.concatenate(cubes, axis=0)
    if not np.isfinite(cube).all():
        raise UserInputError(f"the {what} image has NaN or infinite pixels: fill or crop them")
    return cube, grids.pop() if len(grids) == 1 else None


def infer_ratio(pan_size: tuple[int, int], ms_size: tuple[int, int], ratio: int | None) -> int:
    """The integer PAN/MS size ratio, allowing up to one MS pixel of slack on each axis.

    ``ratio`` (when given) is checked against the sizes instead of inferred.
    """
    value = ratio if ratio is not None else max(1, round(pan_size[0] / ms_size[0]))
    fits = all(abs(p - value * m) <= value for p, m in zip(pan_size, ms_size, strict=True))
    if value >= 2 and fits:
        return value
    sizes = f"PAN {pan_size[0]}x{pan_size[1]} and MS {ms_size[0]}x{ms_size[1]}"
    if ratio is None:
        raise UserInputError(f"{sizes} have no common integer ratio >= 2: crop them to one area")
    raise UserInputError(
        f"{sizes} do not match --ratio {ratio} (expected PAN about {ratio * ms_size[0]}x"
        f"{ratio * ms_size[1]}): fix --ratio or the files"
    )


def grid_offset(ms_grid: Grid | None, pan_grid: Grid | None, ratio: int, grid: str) -> tuple[float, float]:
    """Offset (rows, cols), in PAN pixels, of the MS grid's corner from the PAN grid's corner.

    grid: 'pixel-is-area' (corners coincide: 0), 'pixel-is-point' (first pixel centres on a
    common lattice, MS centre on a PAN centre: 0.5, as Landsat), or 'auto' (from the GeoTIFF
    tags of both images, which must then exist and agree on pixel sizes and CRS).
    """
    if grid not in GRIDS:
        raise UserInputError(f"unknown --grid '{grid}'; use one of {', '.join(GRIDS)}")
    if grid != "auto":
        offset = 0.5 if grid == "pixel-is-point" else 0.0
        return offset, offset
    if ms_grid is None or pan_grid is None:
        raise UserInputError(
            "--grid auto needs GeoTIFF tie points on both the MS and PAN files: pass "
            "--grid pixel-is-area or --grid pixel-is-point"
        )
    if ms_grid.crs != pan_grid.crs:
        raise UserInputError(
            f"the MS (EPSG {ms_grid.crs}) and PAN (EPSG {pan_grid.crs}) files use different "
            "projections: reproject one of them"
        )
    scales = (ms_grid.dx / pan_grid.dx, ms_grid.dy / pan_grid.dy)
    if any(abs(s - ratio) > 1e-6 * ratio for s in scales):
        raise UserInputError(
            f"the GeoTIFF pixel sizes give a ratio of {scales[0]:g} x {scales[1]:g}, not {ratio}: "
            "fix --ratio or the files"
        )
    return (pan_grid.y0 - ms_grid.y0) / pan_grid.dy, (ms_grid.x0 - pan_grid.x0) / pan_grid.dx


def half_pixel_shift(x: torch.Tensor, dim: int) -> torch.Tensor:
    """Resample N x C x H x W at the midpoints between samples along ``dim`` (-2 or -1).

    Output sample k is the value at k + 0.5 (half-band interpolator, symmetric edges); the
    axis loses one sample (L -> L - 1). Keeps dtype and device.
    """
    if x.shape[dim] < 7:
        raise UserInputError(f"an image of {x.shape[dim]} pixels is too small to align (>= 7)")
    out = filter_axis(x, torch.from_numpy(HALF_SHIFT_TAPS), dim, "symmetric")
    return out.narrow(dim, 0, x.shape[dim] - 1)


def axis_crop(offset: int, ratio: int, n_pan: int, n_ms: int) -> tuple[slice, slice]:
    """Slices (MS, PAN) of one axis such that MS pixel i covers PAN pixels r*i .. r*i+r-1.

    offset: integer position of the MS grid's first corner on the PAN axis, in PAN pixels.
    """
    first = max(0, -(offset // ratio))
    last = min(n_ms, (n_pan - offset) // ratio)
    if last - first < 1:
        raise UserInputError(
            f"the MS and PAN images do not overlap (offset {offset} PAN pixels): check the files"
        )
    return slice(first, last), slice(offset + ratio * first, offset + ratio * last)


def align(
    ms: torch.Tensor, pan: torch.Tensor, ratio: int, offset: tuple[float, float]
) -> tuple[torch.Tensor, torch.Tensor, tuple[int, int]]:
    """Put MS (C x h x w) and PAN (Cg x H x W) on the common block grid (see module doc).

    offset: (rows, cols) of the MS corner from the PAN corner in PAN pixels, each an integer or
    an integer + 0.5. Returns (ms, pan, (row0, col0)): the aligned crops, ms C x h' x w' and
    pan Cg x r*h' x r*w', and the MS pixel of the input at which the aligned MS starts.
    """
    pan = pan[None]
    whole = []
    for axis, value in zip((-2, -1), offset, strict=True):
        frac = value - math.floor(value)
        if abs(frac - 0.5) < 1e-6:
            pan = half_pixel_shift(pan, axis)
            value -= 0.5
        elif min(frac, 1.0 - frac) > 1e-6:
            raise UserInputError(
                f"the MS grid is {value:g} PAN pixels off the PAN grid: only whole and "
                "half-pixel offsets are supported; resample the files onto nested grids"
            )
        whole.append(round(value))
    rows = axis_crop(whole[0], ratio, pan.shape[-2], ms.shape[-2])
    cols = axis_crop(whole[1], ratio, pan.shape[-1], ms.shape[-1])
    return ms[:, rows[0], cols[0]], pan[0][:, rows[1], cols[1]], (rows[0].start, cols[0].start)
