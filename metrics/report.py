"""One-call quality reports, as the toolbox's ``indexes_evaluation`` (reduced resolution) and
QNR / HQNR (full resolution) compute them. Every value is a float64 tensor of shape (N,)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from metrics.no_reference import (
    check_full_resolution,
    d_lambda,
    d_lambda_k,
    d_s,
    resolve_ms_up,
)
from metrics.q2n import q2n
from metrics.reference import cc, check_pair, ergas, psnr, q_avg, sam, scc, ssim
from protocols.mtf import check_int
from utils.errors import UserInputError

REDUCED_KEYS = ("SAM", "ERGAS", "Q2n", "Q_avg", "SCC", "PSNR", "SSIM", "CC")
FULL_KEYS = ("D_lambda", "D_s", "QNR", "D_lambda_K", "HQNR")
HIGHER_IS_BETTER: dict[str, bool] = {
    "SAM": False,
    "ERGAS": False,
    "Q2n": True,
    "Q_avg": True,
    "SCC": True,
    "PSNR": True,
    "SSIM": True,
    "CC": True,
    "D_lambda": False,
    "D_s": False,
    "QNR": True,
    "D_lambda_K": False,
    "HQNR": True,
}
"""Direction of every report key: True when a larger value means a better image."""


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (N - 1, as MATLAB's ``std``) of per-image values, in
    float64. The std of a single value is undefined: NaN (tables show ``-``, JSON ``null``)."""
    array = np.asarray(values, dtype=np.float64)
    if array.size == 0:
        return math.nan, math.nan
    std = float(array.std(ddof=1)) if array.size > 1 else math.nan
    return float(array.mean()), std


def csv_number(value: float) -> str:
    """A CSV cell: six decimals, empty where the value is undefined (NaN)."""
    return "" if math.isnan(value) else f"{value:.6f}"


def format_mean_std(mean: float, std: float, sep: str = " +- ", digits: int = 4) -> str:
    """``1.2345 +- 0.0123``; an undefined std (one image) is shown as ``-``."""
    spread = "-" if math.isnan(std) else f"{std:.{digits}f}"
    return f"{mean:.{digits}f}{sep}{spread}"


def largest_cut(side: int) -> int:
    """The largest dim_cut that leaves pixels of an image whose shorter side is ``side``."""
    return max(side - 2, 0) // 2


def cut_border(x: Tensor, dim_cut: int) -> Tensor:
    """Crop ``indexes_evaluation``'s border: x[..., dim_cut-1 : H-dim_cut, dim_cut-1 : W-dim_cut].

    MATLAB's ``I(dim_cut:end-dim_cut, ...)``: dim_cut - 1 rows/columns removed at the start and
    dim_cut at the end (20 and 21 for the usual 21). ``dim_cut = 0`` keeps the image whole.
    """
    dim_cut = check_int(dim_cut, "dim_cut (21 in the toolbox, 0 for no cut)", 0)
    if dim_cut == 0:
        return x
    h, w = x.shape[-2:]
    if dim_cut > largest_cut(min(h, w)):
        raise UserInputError(
            f"a {h} x {w} image is too small for dim_cut {dim_cut}; use a smaller dim_cut or 0"
        )
    return x[..., dim_cut - 1 : h - dim_cut, dim_cut - 1 : w - dim_cut]


def reduced_resolution_report(
    fused: Tensor, gt: Tensor, ratio: float, dim_cut: int = 21, data_range: float | None = None
) -> dict[str, Tensor]:
    """All reduced-resolution indices on the border-cut images, keys :data:`REDUCED_KEYS`.

    As ``indexes_evaluation(F, GT, ratio, L, 32, 1, dim_cut, 0)``: the border is cut before
    every index and values are not thresholded; Q2n and Q_avg use 32 x 32 blocks (Q_avg is NaN
    when the cut image is smaller than 32 x 32). PSNR and SSIM use ``data_range`` as the peak
    (None: the maximum of the cut ``gt`` per image). Inputs at digital-number scale (Q2n casts
    to uint16).
    """
    f, g = check_pair(fused, gt)
    f, g = cut_border(f, dim_cut).contiguous(), cut_border(g, dim_cut).contiguous()
    peak = g.amax((1, 2, 3)) if data_range is None else data_range
    return {
        "SAM": sam(f, g),
        "ERGAS": ergas(f, g, ratio),
        "Q2n": q2n(f, g),
        "Q_avg": q_avg(f, g),
        "SCC": scc(f, g),
        "PSNR": psnr(f, g, data_range),
        "SSIM": ssim(f, g, peak),
        "CC": cc(f, g),
    }


def full_resolution_report(
    fused: Tensor,
    ms: Tensor,
    pan: Tensor,
    ratio: int,
    sensor: str = "none",
    ms_up: Tensor | None = None,
) -> dict[str, Tensor]:
    """QNR and HQNR with their components, keys :data:`FULL_KEYS`, 32 x 32 blocks.

    fused N x C x H x W, ms N x C x H/ratio x W/ratio, pan N x 1 x H x W, ms_up (optional)
    N x C x H x W; ``sensor`` picks the MTF kernels of D_lambda_K (see protocols.mtf.SENSOR_GAINS).
    D_s is shared by QNR and HQNR, as in the toolbox.
    """
    ratio = check_full_resolution(fused, ms, pan, ratio)
    up = resolve_ms_up(fused, ms, ratio, ms_up)
    f = fused.to(torch.float64)
    spectral = d_lambda(f, up)
    spatial = d_s(f, up, pan, ratio)
    khan = d_lambda_k(f, ms, ratio, sensor, up)
    return {
        "D_lambda": spectral,
        "D_s": spatial,
        "QNR": (1 - spectral) * (1 - spatial),
        "D_lambda_K": khan,
        "HQNR": (1 - khan) * (1 - spatial),
    }
