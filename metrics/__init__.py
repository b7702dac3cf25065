"""Quality indices of pansharpening / HS-MS fusion, faithful to the MATLAB toolbox of Vivone et al.

All functions take batched N x C x H x W tensors at digital-number scale and return one float64
value per image (shape (N,)) on the inputs' device. See :mod:`metrics.reference` (SAM, ERGAS,
PSNR, CC, SSIM, SCC, Q_avg), :mod:`metrics.q2n` (Q2n and its hypercomplex algebra),
:mod:`metrics.no_reference` (D_lambda, D_s, QNR, D_lambda_K, HQNR) and :mod:`metrics.report`.
"""

from metrics.no_reference import d_lambda, d_lambda_k, d_s, hqnr, qnr
from metrics.q2n import cd_conjugate, cd_multiply, q2n, structure_constants
from metrics.reference import cc, ergas, psnr, q_avg, sam, scc, ssim, universal_index
from metrics.report import (
    FULL_KEYS,
    HIGHER_IS_BETTER,
    REDUCED_KEYS,
    cut_border,
    full_resolution_report,
    reduced_resolution_report,
)

__all__ = [
    "FULL_KEYS",
    "HIGHER_IS_BETTER",
    "REDUCED_KEYS",
    "cc",
    "cd_conjugate",
    "cd_multiply",
    "cut_border",
    "d_lambda",
    "d_lambda_k",
    "d_s",
    "ergas",
    "full_resolution_report",
    "hqnr",
    "psnr",
    "q2n",
    "q_avg",
    "qnr",
    "reduced_resolution_report",
    "sam",
    "scc",
    "ssim",
    "structure_constants",
    "universal_index",
]
