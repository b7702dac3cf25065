"""Resizing as the pansharpening toolbox does it: MATLAB ``imresize`` and ``interp23tap``.

All functions take and return N x C x H x W floating-point tensors (any float dtype; the result
keeps the input's dtype and device; pass float64 for toolbox-exact numbers) and are linear in
the image, so they work at any value scale (digital numbers or [0, 1]).

Grid conventions (0-based pixel indices):

- ``decimate`` / ``imresize(x, 1/r, 'nearest')`` keeps the high-resolution samples at
  ``r * j + r // 2`` (2, 6, 10, ... for r = 4; 1, 3, 5, ... for r = 2; 1, 4, 7, ... for r = 3).
- ``interp23tap`` puts low-resolution sample j back at ``r * j + r / 2`` (powers of two), so
  decimation followed by 23-tap interpolation is aligned.
- ``upsample(..., 'cubic-aligned')`` evaluates the bicubic kernel (a = -0.5) at the same
  positions ``r * j + r // 2`` for any integer r: it is what ``upsample(..., 'auto')`` uses
  for ratios that are not powers of two (3, 6, ...). For odd r it coincides exactly with
  MATLAB's enlarging ``imresize`` ('bicubic'), whose samples sit at ``r * j + (r - 1) / 2``;
  for even r the latter is half a high-resolution pixel off the decimation grid.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import lru_cache

import numpy as np
import torch

from protocols.mtf import check_int
from utils.errors import UserInputError
from utils.registry import suggest

HALF_BAND_23 = 2.0 * np.array(
    [
        0.5,
        0.305334091185,
        0.0,
        -0.072698593239,
        0.0,
        0.021809577942,
        0.0,
        -0.005192756653,
        0.0,
        0.000807762146,
        0.0,
        -0.000060081482,
    ]
)
"""Right half (centre first) of the toolbox's 23-tap half-band interpolation filter."""

TAPS_23 = np.concatenate([HALF_BAND_23[:0:-1], HALF_BAND_23])
"""The 23 symmetric taps of ``interp23tap`` (sum 2 up to 4e-10: gain 2 after zero insertion)."""

PAD_MODES = ("replicate", "circular", "symmetric")


def _box(t: np.ndarray) -> np.ndarray:
    """Nearest-neighbour kernel: 1 on [-0.5, 0.5), else 0."""
    return ((t >= -0.5) & (t < 0.5)).astype(np.float64)


def _triangle(t: np.ndarray) -> np.ndarray:
    """Bilinear kernel: 1 - |t| on [-1, 1]."""
    return np.clip(1.0 - np.abs(t), 0.0, None)


def _cubic(t: np.ndarray) -> np.ndarray:
    """Keys' bicubic kernel with a = -0.5 (MATLAB's), support [-2, 2]."""
    s = np.abs(t)
    near = (1.5 * s - 2.5) * s**2 + 1.0
    far = ((-0.5 * s + 2.5) * s - 4.0) * s + 2.0
    return np.where(s <= 1.0, near, np.where(s <= 2.0, far, 0.0))


RESIZE_KERNELS: dict[str, tuple[Callable[[np.ndarray], np.ndarray], float]] = {
    "nearest": (_box, 1.0),
    "bilinear": (_triangle, 2.0),
    "bicubic": (_cubic, 4.0),
}
"""imresize methods: (kernel, support width in input pixels)."""


def check_image(x: torch.Tensor, what: str = "image") -> None:
    """Raise a one-line UserInputError unless x is a floating N x C x H x W tensor, H, W >= 1."""
    if not isinstance(x, torch.Tensor):
        raise UserInputError(f"{what} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 4:
        raise UserInputError(
            f"{what} must be N x C x H x W (4-D), got shape {tuple(x.shape)}; "
            "add batch/channel axes with x[None] or x[:, None]"
        )
    if not x.is_floating_point():
        raise UserInputError(f"{what} must be floating point, got {x.dtype}; use .double()")
    if min(x.shape[-2:]) == 0:
        raise UserInputError(f"{what} has an empty spatial axis: shape {tuple(x.shape)}")


def _source_index(pos: np.ndarray, n: int, mode: str) -> np.ndarray:
    """Map 0-based positions outside [0, n) back into it by ``mode`` (see :func:`pad_index`)."""
    if mode == "replicate":
        return np.clip(pos, 0, n - 1)
    if mode == "circular":
        return np.mod(pos, n)
    if mode == "symmetric":
        folded = np.mod(pos, 2 * n)
        return np.where(folded < n, folded, 2 * n - 1 - folded)
    raise UserInputError(f"unknown padding '{mode}'{suggest(mode, PAD_MODES)}; use {PAD_MODES}")


def pad_index(n: int, before: int, after: int, mode: str) -> np.ndarray:
    """Source indices (0-based) of a length-n axis padded by ``before``/``after`` samples.

    mode: 'replicate' (edge value), 'circular' (wrap) or 'symmetric' (mirror including the
    edge, MATLAB's), valid for any pad size. Returns an int64 array of n + before + after.
    """
    return _source_index(np.arange(-before, n + after), n, mode)


def _weight_matrix(
    centres: np.ndarray,
    in_len: int,
    kernel: Callable[[np.ndarray], np.ndarray],
    width: float,
) -> np.ndarray:
    """Dense out x in interpolation matrix (float64), MATLAB ``imresize`` contributions.

    centres: 1-based input coordinate of each output sample; kernel: weight of an input sample
    at a given distance (in input pixels), supported on [-width/2, width/2]. Rows are
    normalised to sum 1 and out-of-range taps are mirrored (symmetric padding).
    """
    taps = math.ceil(width) + 2
    first = np.floor(centres - width / 2.0)
    index = first[:, None] + np.arange(taps)[None, :]
    weights = kernel(centres[:, None] - index)
    weights = weights / weights.sum(axis=1, keepdims=True)
    source = _source_index(index.astype(np.int64) - 1, in_len, "symmetric")
    matrix = np.zeros((centres.shape[0], in_len))
    np.add.at(matrix, (np.arange(centres.shape[0])[:, None], source), weights)
    return matrix


@lru_cache(maxsize=64)
def _imresize_matrix(in_len: int, out_len: int, scale: float, method: str, antialias: bool) -> torch.Tensor:
    """out_len x in_len float64 matrix of MATLAB ``imresize`` along one axis."""
    kernel, width = RESIZE_KERNELS[method]
    stretch = scale if scale < 1.0 and antialias else 1.0

    def widened(t: np.ndarray) -> np.ndarray:
        return stretch * kernel(stretch * t)

    centres = np.arange(1, out_len + 1) / scale + 0.5 * (1.0 - 1.0 / scale)
    return torch.from_numpy(_weight_matrix(centres, in_len, widened, width / stretch))


@lru_cache(maxsize=64)
def _aligned_cubic_matrix(in_len: int, ratio: int) -> torch.Tensor:
    """(in_len * ratio) x in_len float64 bicubic matrix, samples kept at ratio * j + ratio // 2."""
    centres = (np.arange(in_len * ratio) - ratio // 2) / ratio + 1.0
    return torch.from_numpy(_weight_matrix(centres, in_len, _cubic, 4.0))


def apply_separable(x: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """``rows @ x @ cols.T`` per image and band: x N x C x H x W, rows Ho x H, cols Wo x W."""
    rows = rows.to(device=x.device, dtype=x.dtype)
    cols = cols.to(device=x.device, dtype=x.dtype)
    return torch.matmul(torch.matmul(rows, x), cols.transpose(0, 1))


def _resize_plan(
    in_size: tuple[int, int],
    scale: float | None,
    output_size: tuple[int, int] | None,
) -> tuple[tuple[int, float], tuple[int, float]]:
    """(output length, scale) for rows and columns, as MATLAB derives them from its arguments."""
    if (scale is None) == (output_size is None):
        raise UserInputError("give exactly one of scale (e.g. 0.25) and output_size=(H, W)")
    if scale is not None:
        if not isinstance(scale, (int, float)) or not math.isfinite(scale) or scale <= 0:
            raise UserInputError(f"scale must be a positive number, got {scale!r}")
        value = float(scale)
        return (math.ceil(value * in_size[0]), value), (math.ceil(value * in_size[1]), value)
    sizes = tuple(output_size) if isinstance(output_size, (tuple, list)) else ()
    if len(sizes) != 2 or not all(isinstance(n, (int, np.integer)) and n >= 1 for n in sizes):
        raise UserInputError(f"output_size must be two positive integers, got {output_size!r}")
    height, width = int(sizes[0]), int(sizes[1])
    return (height, height / in_size[0]), (width, width / in_size[1])


def imresize_matlab(
    x: torch.Tensor,
    scale: float | None = None,
    *,
    output_size: tuple[int, int] | None = None,
    method: str = "bicubic",
    antialias: bool | None = None,
) -> torch.Tensor:
    """MATLAB ``imresize`` of an N x C x H x W tensor, to ``ceil(H * scale)`` or ``output_size``.

    method: 'bicubic' (a = -0.5, MATLAB's default), 'bilinear' or 'nearest'. When shrinking
    with antialias (MATLAB's default except for 'nearest'; None means that default), the
    kernel is widened by 1/scale. Symmetric edge padding, rows normalised. Exact to float64
    rounding (dense weight matrices; cost O(H^2 W + H W^2) per band).
    """
    check_image(x)
    if method not in RESIZE_KERNELS:
        raise UserInputError(
            f"unknown resize method '{method}'{suggest(method, RESIZE_KERNELS)}; "
            f"use one of {', '.join(RESIZE_KERNELS)}"
        )
    heights, widths = _resize_plan(tuple(x.shape[-2:]), scale, output_size)
    smooth = method != "nearest" if antialias is None else bool(antialias)
    rows = _imresize_matrix(x.shape[-2], *heights, method, smooth)
    cols = _imresize_matrix(x.shape[-1], *widths, method, smooth)
    return apply_separable(x, rows, cols)


def _is_power_of_two(ratio: int) -> bool:
    """True for 1, 2, 4, 8, ..."""
    return ratio & (ratio - 1) == 0


def filter_axis(x: torch.Tensor, taps: torch.Tensor, dim: int, mode: str) -> torch.Tensor:
    """Correlate every row (dim=-1) or column (dim=-2) of x (N x C x H x W) with odd 1-D taps.

    The axis is padded by len(taps) // 2 on each side with ``mode`` (see :func:`pad_index`);
    the output has the input's shape. Computed as a weighted sum of shifted copies (one per
    tap), which is exact and fast in float64 too.
    """
    n, half = x.shape[dim], taps.shape[0] // 2
    index = torch.from_numpy(pad_index(n, half, half, mode)).to(x.device)
    padded = x.index_select(dim, index)
    weights = taps.detach().cpu().double().tolist()
    out = padded.narrow(dim, 0, n) * weights[0]
    for shift, weight in enumerate(weights[1:], start=1):
        out = out + padded.narrow(dim, shift, n) * weight
    return out


def _midpoints(x: torch.Tensor, dim: int) -> torch.Tensor:
    """23-tap interpolated values halfway between samples j and j + 1 of axis ``dim`` (circular).

    Only the odd-offset taps meet samples there: m[j] = sum_q c_q (x[j - q] + x[j + 1 + q])
    with c_q = HALF_BAND_23[2q + 1]; same shape as x.
    """
    coeffs = HALF_BAND_23[1::2].tolist()
    n, reach = x.shape[dim], len(coeffs)
    index = torch.from_numpy(pad_index(n, reach - 1, reach, "circular")).to(x.device)
    padded = x.index_select(dim, index)
    out = torch.zeros_like(x)
    for q, c in enumerate(coeffs):
        out = out + c * (padded.narrow(dim, reach - 1 - q, n) + padded.narrow(dim, reach + q, n))
    return out


def _double_axis(x: torch.Tensor, dim: int, first: bool) -> torch.Tensor:
    """One 23-tap doubling of axis ``dim`` (-1 or -2): samples at odd positions if ``first``.

    Computed in polyphase form: samples are kept (centre tap 1) and the new values use the
    odd taps (:func:`_midpoints`).
    """
    mids = _midpoints(x, dim)
    # first pass: sample j lands at 2j + 1, so position 0 is halfway between samples n-1 and 0
    pair = (torch.roll(mids, 1, dims=dim), x) if first else (x, mids)
    return torch.stack(pair, dim=dim).flatten(dim - 1, dim)


INTERP_REACH = 12
"""Low-resolution samples on each side that one :func:`interp23tap` output can depend on: 6
for the first doubling and a geometric tail for later ones (11 at most, measured up to r = 64)."""

INTERP_BLOCK = 32
"""Largest block of low-resolution samples that :func:`interp23tap` maps with one small dense
matrix (32 measured fastest on CPUs for 128 to 1024 samples)."""


@lru_cache(maxsize=64)
def _interp23_block_matrix(block: int, ratio: int) -> torch.Tensor:
    """(ratio * block) x (block + 2 * INTERP_REACH) float64 matrix of :func:`interp23tap` on
    one axis: outputs ratio * i ... ratio * i + ratio - 1 of the block's low-resolution samples
    i = 0 ... block - 1 from the samples -INTERP_REACH ... block + INTERP_REACH - 1.

    Built by running the doublings on an identity matrix (exact by construction): on a circle
    of block + 2 * INTERP_REACH samples the block's outputs never reach around it.
    """
    size = block + 2 * INTERP_REACH
    columns = torch.eye(size, dtype=torch.float64)[None, None]
    for step in range(ratio.bit_length() - 1):
        columns = _double_axis(columns, -2, step == 0)
    return columns[0, 0, ratio * INTERP_REACH : ratio * (INTERP_REACH + block)]


def _interp23_axis(x: torch.Tensor, ratio: int, dim: int) -> torch.Tensor:
    """:func:`interp23tap` along one axis (dim -1 or -2) of N x C x H x W: length n -> ratio * n.

    The axis is gathered (circularly) into overlapping windows, blocks of at most
    :data:`INTERP_BLOCK` samples plus :data:`INTERP_REACH` on each side, and each window is
    multiplied by the block matrix: a banded matrix product, O(block + 2 * reach) per output.
    """
    n = x.shape[dim]
    count = -(-n // INTERP_BLOCK)
    block = -(-n // count)
    window = block + 2 * INTERP_REACH
    matrix = _interp23_block_matrix(block, ratio).to(device=x.device, dtype=x.dtype)
    starts = np.arange(count)[:, None] * block + np.arange(window)[None, :]
    source = pad_index(n, INTERP_REACH, count * block - n + INTERP_REACH, "circular")[starts]
    gathered = x.index_select(dim, torch.from_numpy(source.reshape(-1)).to(x.device))
    if dim == -1:  # N x C x H x count x window -> N x C x H x (count * ratio * block)
        windows = gathered.unflatten(-1, (count, window))
        out = torch.matmul(windows, matrix.transpose(0, 1)).flatten(-2)
    else:  # N x C x count x window x W -> N x C x (count * ratio * block) x W
        windows = gathered.unflatten(-2, (count, window))
        out = torch.matmul(matrix, windows).flatten(-3, -2)
    return out.narrow(dim, 0, ratio * n)


def interp23tap(x: torch.Tensor, ratio: int) -> torch.Tensor:
    """The toolbox's 23-tap interpolator: N x C x H x W -> N x C x rH x rW, ratio a power of 2.

    log2(ratio) doublings (the toolbox's ``ratio/2`` loop is only right for 2 and 4). Each is
    the toolbox's zero insertion (samples at odd positions in the first pass, even ones later)
    followed by circular filtering of rows and columns with :data:`TAPS_23`. The doublings of
    one axis compose into one shift-invariant map, applied as a banded matrix product along W
    then H (:func:`_interp23_axis`); equal to the step-by-step definition to float64 rounding.
    """
    check_image(x)
    ratio = check_int(ratio, "ratio", 1)
    if not _is_power_of_two(ratio):
        raise UserInputError(f"interp23tap needs a power-of-two ratio, got {ratio}; use upsample(x, {ratio})")
    return _interp23_axis(_interp23_axis(x, ratio, -1), ratio, -2).contiguous()


def _upsample_aligned_cubic(x: torch.Tensor, ratio: int) -> torch.Tensor:
    """Bicubic (a = -0.5) upsampling with samples kept at ratio * j + ratio // 2."""
    rows = _aligned_cubic_matrix(x.shape[-2], ratio)
    cols = _aligned_cubic_matrix(x.shape[-1], ratio)
    return apply_separable(x, rows, cols)


UPSAMPLE_METHODS = ("auto", "23tap", "bicubic", "cubic-aligned")


def upsample(x: torch.Tensor, ratio: int, method: str = "auto") -> torch.Tensor:
    """Upsample N x C x H x W by an integer ``ratio`` to N x C x rH x rW.

    method: '23tap' (:func:`interp23tap`, powers of two), 'bicubic' (MATLAB enlarging
    ``imresize``; half a pixel off the decimation grid for even ratios), 'cubic-aligned'
    (bicubic on the decimation grid, see the module docstring) or 'auto' (= '23tap' for
    powers of two, else 'cubic-aligned'). A constant image stays constant.
    """
    check_image(x)
    ratio = check_int(ratio, "ratio", 1)
    if method not in UPSAMPLE_METHODS:
        raise UserInputError(
            f"unknown upsampling method '{method}'{suggest(method, UPSAMPLE_METHODS)}; "
            f"use one of {', '.join(UPSAMPLE_METHODS)}"
        )
    if method == "auto":
        method = "23tap" if _is_power_of_two(ratio) else "cubic-aligned"
    if method == "23tap":
        return interp23tap(x, ratio)
    if method == "bicubic":
        return imresize_matlab(x, float(ratio))
    return _upsample_aligned_cubic(x, ratio)
