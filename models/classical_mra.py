"""Multiresolution-analysis (MRA) pansharpening methods of the toolbox: MTF-GLP-HPM, MTF-GLP-FS, AWLP.

An MRA method adds to the upsampled MS image ``up`` the spatial detail of the PAN image, its
difference from a low-pass version of itself, weighted by an injection model. The methods
differ in the low-pass (:meth:`lowpass`) and in the injection. They reproduce the MATLAB
toolbox of Vivone et al., "A new benchmark based on recent advances in multispectral
pansharpening", IEEE GRSM 9(1), 2021 (``MTF_GLP_HPM.m``, ``MTF_GLP_FS.m``, ``AWLP.m``).

Tensors are float64 (see :class:`models.classical_base.ClassicalFusion`): ``up`` N x C x H x W,
``pan`` N x 1 x H x W or N x C x H x W (one synthetic PAN per band), any value scale; every
statistic (mean, standard deviation, covariance) is taken per image and band.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch
from torch import Tensor

from models import MODELS
from models.classical_base import ClassicalFusion, image_mean, image_std
from protocols.degrade import decimate, mtf_filter
from protocols.mtf import mtf_kernel, sensor_kernel
from protocols.resize import apply_separable, imresize_matlab, pad_index, upsample

EPS = float(np.finfo(np.float64).eps)
"""MATLAB's ``eps``, which the toolbox adds to denominators (negligible at any usual scale)."""

GAUSS_GAIN = 0.3 ** ((40.0 / 41.0) ** 2)
"""Nyquist gain that makes :func:`protocols.mtf.mtf_kernel` build the toolbox's ``LPfilterGauss``
kernel: that function designs the same Gaussian-response 41 x 41 filter with gain 0.3, but with
``N`` where ``genMTF`` has ``N - 1`` in the Gaussian's width; raising 0.3 to ``(40/41)^2`` gives
the same width through ``genMTF``'s formula."""

ATROUS_TAPS = math.sqrt(2.0) * np.array([1.0, 4.0, 6.0, 4.0, 1.0]) / 16.0
"""The toolbox's B3-spline analysis and synthesis low-pass filter of ``AWLP.m`` (``h``, ``htilde``)."""


def gaussian_lowpass(x: Tensor, ratio: int) -> Tensor:
    """The toolbox's ``LPfilterGauss``: ``imfilter(x, h, 'replicate')`` with its Gaussian-response
    kernel of Nyquist gain 0.3 at ``ratio``; x N x C x H x W -> same shape."""
    return mtf_filter(x, mtf_kernel(ratio, [GAUSS_GAIN]))


def glp_lowpass(x: Tensor, sensor: str, ratio: int) -> Tensor:
    """The MTF-GLP low-pass of one PAN per band (x N x C x H x W -> same shape).

    Band b is filtered with the sensor's MTF kernel of MS band b (``imfilter`` replicate),
    decimated (``imresize(., 1/ratio, 'nearest')``) and interpolated back (23-tap for powers
    of two, as ``interp23tap``; aligned bicubic otherwise), cropped to H x W.
    """
    kernel = sensor_kernel(sensor, ratio, x.shape[1])
    low = decimate(mtf_filter(x, kernel), ratio)
    return upsample(low, ratio)[..., : x.shape[-2], : x.shape[-1]]


def _atrous_analysis(n: int) -> np.ndarray:
    """(n + 4) x n matrix of one level of ``ndwt2``'s low-pass along an axis: half-point
    symmetric extension by 4 samples, correlation with :data:`ATROUS_TAPS`, length n + 4."""
    source = pad_index(n, 4, 4, "symmetric")
    matrix = np.zeros((n + 4, n))
    for i in range(n + 4):
        np.add.at(matrix[i], source[i : i + 5], ATROUS_TAPS)
    return matrix


def _atrous_synthesis(n: int) -> np.ndarray:
    """(n - 4) x n matrix of one level of ``indwt2``'s low-pass along an axis: full convolution
    with :data:`ATROUS_TAPS`, central n - 4 samples, halved (the toolbox's ``/4`` over 2 axes)."""
    matrix = np.zeros((n - 4, n))
    for i in range(n - 4):
        matrix[i, i : i + 5] = ATROUS_TAPS / 2.0
    return matrix


@lru_cache(maxsize=64)
def _atrous_matrix(n: int, levels: int) -> Tensor:
    """n x n float64 matrix of the toolbox's à trous low-pass along one axis: ``levels`` levels
    of ``ndwt2_working`` (each growing the axis by 4) then ``indwt2_working`` with every detail
    band zeroed (each shrinking it by 4). As in the toolbox, the filter is not dilated between
    levels: every level applies the same 5 taps."""
    matrix = np.eye(n)
    for level in range(levels):
        matrix = _atrous_analysis(n + 4 * level) @ matrix
    for level in reversed(range(levels)):
        matrix = _atrous_synthesis(n + 4 * level + 4) @ matrix
    return torch.from_numpy(matrix)


def atrous_lowpass(x: Tensor, ratio: int) -> Tensor:
    """Approximation of x after ``ceil(log2(ratio))`` levels of the toolbox's nondecimated
    wavelet transform (``ndwt2_working`` / ``indwt2_working`` with zeroed details), separable;
    x N x C x H x W -> same shape. Constants are kept exactly (the filters' gains cancel)."""
    levels = max(0, math.ceil(math.log2(ratio)))
    rows = _atrous_matrix(x.shape[-2], levels)
    cols = _atrous_matrix(x.shape[-1], levels)
    return apply_separable(x, rows, cols)


def covariance(a: Tensor, b: Tensor) -> Tensor:
    """Per-plane covariance (1/n normalisation; only ratios of it are used): N x C x 1 x 1."""
    return image_mean((a - image_mean(a)) * (b - image_mean(b)))


@MODELS.register(name="MTF-GLP-HPM")
class MTFGLPHPM(ClassicalFusion):
    """MTF-GLP with high-pass modulation (the toolbox's ``MTF_GLP_HPM(I_MS, I_PAN, sensor, ratio)``).

    Aiazzi, Alparone, Baronti, Garzelli and Selva, "MTF-tailored multiscale fusion of
    high-resolution MS and Pan imagery", PE&RS 72(5), 2006; implemented as in Vivone,
    Restaino and Chanussot, "Full scale regression-based injection coefficients for
    panchromatic sharpening", IEEE TIP 27(7), 2018 (toolbox 2021). The PAN is equalised to
    each band (mean, and std of its ``LPfilterGauss`` version matched to the band's std), then
    ``out = up * pan_eq / (lowpass(pan_eq) + eps)`` with the MTF-GLP low-pass of band b.
    """

    def lowpass(self, pan: Tensor) -> Tensor:
        """The PAN low-pass of the detail, N x C x H x W: :func:`glp_lowpass` with the sensor."""
        return glp_lowpass(pan, self.sensor, self.ratio)

    def fuse(self, lr: Tensor, up: Tensor, pan: Tensor) -> Tensor:
        gain = image_std(up) / image_std(gaussian_lowpass(pan, self.ratio))
        pan_eq = (pan - image_mean(pan)) * gain + image_mean(up)
        return up * pan_eq / (self.lowpass(pan_eq) + EPS)


@MODELS.register(name="MTF-GLP-FS")
class MTFGLPFS(ClassicalFusion):
    """MTF-GLP with full-scale regression injection (toolbox: ``MTF_GLP_FS(I_MS, I_PAN, sensor, ratio)``).

    Vivone, Restaino and Chanussot, "Full scale regression-based injection coefficients for
    panchromatic sharpening", IEEE TIP 27(7), 2018. With ``pan_lp`` the MTF-GLP low-pass of
    the PAN for band b, ``out_b = up_b + g_b (pan - pan_lp)``, where
    ``g_b = cov(up_b, pan) / cov(pan_lp, pan)`` at full scale.
    """

    def lowpass(self, pan: Tensor) -> Tensor:
        """The PAN low-pass of the detail, N x C x H x W: :func:`glp_lowpass` of the PAN per band."""
        return glp_lowpass(pan.expand(-1, self.lr_channels, -1, -1), self.sensor, self.ratio)

    def fuse(self, lr: Tensor, up: Tensor, pan: Tensor) -> Tensor:
        pan_lp = self.lowpass(pan)
        gain = covariance(up, pan) / covariance(pan_lp, pan)
        return up + gain * (pan - pan_lp)


@MODELS.register(name="AWLP")
class AWLP(ClassicalFusion):
    """Additive wavelet luminance proportional (the toolbox's ``AWLP(I_MS, I_PAN, ratio)``).

    Otazu, González-Audícana, Fors and Núñez, "Introduction of sensor spectral response into
    image fusion methods. Application to wavelet-based methods", IEEE TGRS 43(10), 2005. The
    PAN is equalised to each band (std matched through its bicubic down-and-up-sampled
    version, ``imresize(imresize(pan, 1/ratio), ratio)``), its detail over the à trous
    low-pass (:func:`atrous_lowpass`, the toolbox's B3-spline filter bank) is injected in
    proportion to each band's share of the band mean: ``out_b = up_b + detail_b * up_b /
    (mean_c up_c + eps)``.
    """

    def lowpass(self, pan: Tensor) -> Tensor:
        """The PAN low-pass of the detail, same shape as ``pan``: :func:`atrous_lowpass`."""
        return atrous_lowpass(pan, self.ratio)

    def fuse(self, lr: Tensor, up: Tensor, pan: Tensor) -> Tensor:
        resampled = imresize_matlab(imresize_matlab(pan, 1.0 / self.ratio), float(self.ratio))
        gain = image_std(up) / image_std(resampled)
        # the low-pass is linear and keeps constants, so the detail of the equalised PAN
        # (pan - mean) * gain + mean(up) is gain times the detail of the PAN
        detail = gain * (pan - self.lowpass(pan))
        return up + detail * up / (up.mean(dim=1, keepdim=True) + EPS)
