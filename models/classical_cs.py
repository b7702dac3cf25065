"""Component-substitution (CS) pansharpening methods of the toolbox: BT-H, GSA, BDSD-PC, PRACS.

A CS method builds an *intensity* ``I`` from the upsampled MS bands, a weighted sum fitted so
that it resembles a low-pass version of the PAN, and replaces it by the PAN: the detail
``pan - I`` is injected into every band. BDSD-PC and PRACS fit one intensity per band, from a
reduced-resolution version of the data; BDSD-PC's fit is a small bounded least-squares
problem per band, solved exactly by :func:`nonnegative_least_squares`. They reproduce the
MATLAB toolbox of Vivone et al., "A new benchmark based on recent advances in multispectral
pansharpening", IEEE GRSM 9(1), 2021 (``BroveyRegHazeMin.m``, ``GSA.m``, ``BDSD_PC.m``,
``PRACS.m``).

Tensors are float64 (see :class:`models.classical_base.ClassicalFusion`): ``lr`` N x C x h x w,
``up`` N x C x H x W, ``pan`` N x P x H x W with P = 1, or P = C (one synthetic PAN per band,
each giving its own intensity), any value scale. Every statistic and regression is taken per
image (and per PAN plane), never across the batch.
"""

from __future__ import annotations

import torch
from torch import Tensor

from models import MODELS
from models.classical_base import ClassicalFusion, image_mean, image_std, least_squares
from models.classical_mra import EPS, atrous_lowpass, covariance, gaussian_lowpass
from protocols.degrade import decimate, mtf_filter, mtf_pan
from protocols.mtf import sensor_kernel
from protocols.resize import imresize_matlab

HAZE_PERCENTILE = 1.0
"""Percentile (in %) of each band whose fraction is the haze level of a 4-band image in BT-H."""

HAZE_FRACTIONS = (0.95, 0.45, 0.40, 0.05)
"""BT-H's haze level of a 4-band (B, G, R, NIR) image, as fractions of the bands' 1st percentile."""

RIDGE = 1e-12
"""Ridge added to a Gram matrix, relative to its trace, so rank-deficient designs stay solvable."""

NNLS_TOLERANCE = 1e-11
"""Gradient below which a constrained variable counts as optimal at 0, relative to max |rhs|."""

PRACS_BETA = 0.95
"""PRACS's detail weight for 11-bit data (the toolbox's ``beta``; 1.95 for 8-bit data)."""


def fit(target: Tensor, regressors: Tensor, offset: bool = False) -> Tensor:
    """Per-image least-squares fit of every target plane on the regressor planes (and a constant).

    target: N x T x h x w; regressors: N x K x h x w. Returns the coefficients N x K x T, or
    N x (K + 1) x T with the offset last when ``offset`` (MATLAB ``regress`` / ``\\`` on the
    flattened planes with a column of ones). With an offset the columns are centred first:
    image values far from 0 next to the constant column would otherwise be ill conditioned.
    """
    design = regressors.flatten(2).transpose(1, 2)
    values = target.flatten(2).transpose(1, 2)
    if offset:
        design_mean, value_mean = design.mean(1, keepdim=True), values.mean(1, keepdim=True)
        design, values = design - design_mean, values - value_mean
    coef = least_squares(design, values)
    if not offset:
        return coef
    return torch.cat((coef, value_mean - design_mean @ coef), dim=1)


def combine(coef: Tensor, planes: Tensor) -> Tensor:
    """Weighted sums of planes, coef N x K x T or N x (K + 1) x T (offset last, see :func:`fit`),
    planes N x K x H x W -> N x T x H x W."""
    out = torch.einsum("nkhw,nkt->nthw", planes, coef[:, : planes.shape[1]])
    if coef.shape[1] > planes.shape[1]:
        out = out + coef[:, -1, :, None, None]
    return out


def correlation(a: Tensor, b: Tensor) -> Tensor:
    """Per-plane correlation coefficient (MATLAB ``corr2``), broadcasting: N x C x 1 x 1."""
    return covariance(a, b) / (covariance(a, a) * covariance(b, b)).sqrt()


def percentile(x: Tensor, percent: float) -> Tensor:
    """Per-plane percentile as MATLAB ``prctile``: N x C x H x W -> N x C x 1 x 1.

    The k-th smallest of n values (k = 1 ... n) sits at 100 (k - 0.5) / n percent; linear
    interpolation in between, the extreme values outside.
    """
    values = x.flatten(2).sort(dim=-1).values
    count = values.shape[-1]
    position = min(max(count * percent / 100.0 - 0.5, 0.0), count - 1.0)
    low = int(position)
    high = min(low + 1, count - 1)
    frac = position - low
    picked = values[..., low] * (1.0 - frac) + values[..., high] * frac
    return picked[..., None, None]


def haze(up: Tensor) -> Tensor:
    """BT-H's haze level per band, N x C x 1 x 1: fractions (:data:`HAZE_FRACTIONS`) of the 1st
    percentile for 4 bands, each band's minimum otherwise."""
    if up.shape[1] == len(HAZE_FRACTIONS):
        fractions = up.new_tensor(HAZE_FRACTIONS)[:, None, None]
        return fractions * percentile(up, HAZE_PERCENTILE)
    return up.amin(dim=(-2, -1), keepdim=True)


def starck_murtagh_decimate(x: Tensor, ratio: int) -> Tensor:
    """The toolbox's ``LPfilterPlusDec``: à trous low-pass (:func:`atrous_lowpass`, the
    Starck-Murtagh B3 filter bank, ``ceil(log2(ratio))`` levels) then ``imresize(., 1/ratio,
    'nearest')``; x N x C x H x W -> N x C x ceil(H / ratio) x ceil(W / ratio)."""
    return decimate(atrous_lowpass(x, ratio), ratio)


@MODELS.register(name="BT-H")
class BTH(ClassicalFusion):
    """Brovey transform with haze correction (the toolbox's ``BroveyRegHazeMin(I_MS, I_PAN, ratio)``).

    Lolli, Alparone, Garzelli and Vivone, "Haze correction for contrast-based multispectral
    pansharpening", IEEE GRSL 14(12), 2017. With ``L_b`` the haze of band b (:func:`haze`) and
    ``pan_lp`` the PAN's ``LPfilterGauss`` low-pass, the intensity is
    ``I = sum_b alpha_b (up_b - L_b)``, alpha the least-squares fit (no offset) of ``pan_lp`` on
    ``up``; the PAN is matched to ``I`` through ``pan_lp``'s moments (``pan_eq``) and
    ``out_b = max(up_b - L_b, 0) * pan_eq / (I + eps) + L_b``.
    """

    def fuse(self, lr: Tensor, up: Tensor, pan: Tensor) -> Tensor:
        level = haze(up)
        pan_lp = gaussian_lowpass(pan, self.ratio)
        intensity = combine(fit(pan_lp, up), up - level)
        gain = image_std(intensity) / image_std(pan_lp)
        pan_eq = (pan - image_mean(pan_lp)) * gain + image_mean(intensity)
        return (up - level).clamp_min(0.0) * (pan_eq / (intensity + EPS)) + level


@MODELS.register(name="GSA")
class GSA(ClassicalFusion):
    """Gram-Schmidt adaptive (the toolbox's ``GSA(I_MS, I_PAN, I_MS_LR, ratio)``).

    Aiazzi, Baronti and Selva, "Improving component substitution pansharpening through
    multivariate regression of MS+Pan data", IEEE TGRS 45(10), 2007. On zero-mean images the
    intensity is ``I = sum_b alpha_b up_b + alpha_0``, alpha the least-squares fit of the
    PAN's low-pass at the MS scale (:func:`starck_murtagh_decimate`) on ``lr`` plus an offset;
    ``out_b = up_b + g_b (pan - I)`` with ``g_b = cov(I, up_b) / var(I)``, then each band's
    mean is reset to that of ``up_b``.
    """

    def fuse(self, lr: Tensor, up: Tensor, pan: Tensor) -> Tensor:
        up0 = up - image_mean(up)
        lr0 = lr - image_mean(lr)
        pan0 = pan - image_mean(pan)
        pan_low = starck_murtagh_decimate(pan0, self.ratio)[..., : lr.shape[-2], : lr.shape[-1]]
        intensity = combine(fit(pan_low, lr0, offset=True), up0)
        intensity = intensity - image_mean(intensity)
        gain = covariance(intensity, up0) / covariance(intensity, intensity)
        fused = up0 + gain * (pan0 - intensity)
        return fused - image_mean(fused) + image_mean(up)


def _solve_passive(gram: Tensor, rhs: Tensor, passive: Tensor) -> Tensor:
    """Unconstrained minimiser over the passive variables, 0 elsewhere: B x K x K, B x K -> B x K.

    ``gram`` must be positive definite (a Cholesky factorisation of its passive block).
    """
    both = passive[:, :, None] & passive[:, None, :]
    eye = torch.eye(gram.shape[-1], dtype=gram.dtype, device=gram.device).expand_as(gram)
    factor = torch.linalg.cholesky(torch.where(both, gram, eye))
    return torch.cholesky_solve(torch.where(passive, rhs, 0.0)[..., None], factor)[..., 0]


def nonnegative_least_squares(gram: Tensor, rhs: Tensor, max_steps: int | None = None) -> Tensor:
    """Minimise ``z^T gram z / 2 - rhs^T z`` subject to ``z >= 0``, a batch of problems at once.

    gram: ... x K x K symmetric positive semi-definite (``A^T A``), rhs: ... x K (``A^T b``),
    float64 recommended; returns z ... x K, the exact constrained optimum (to rounding) of
    ``min ||A z - b||`` over ``z >= 0``. Lawson and Hanson's active-set method ("Solving least
    squares problems", Prentice-Hall 1974, ch. 23), run in lockstep over the batch: each step
    either frees the variable with the largest gradient (outer loop) or moves back towards
    feasibility (inner loop), per problem. The variables are first scaled to a unit-diagonal
    Gram matrix (which keeps the constraints), and a ridge of :data:`RIDGE` times its trace
    makes every reduced system solvable. ``max_steps`` defaults to 10 K + 50.
    """
    size, shape = rhs.shape[-1], rhs.shape
    gram = gram.reshape(-1, size, size)
    rhs = rhs.reshape(-1, size)
    scale = gram.diagonal(dim1=1, dim2=2).sqrt().clamp_min(torch.finfo(gram.dtype).tiny)
    gram = gram / (scale[:, :, None] * scale[:, None, :])
    gram = gram + RIDGE * size * torch.eye(size, dtype=gram.dtype, device=gram.device)
    rhs = rhs / scale
    tolerance = NNLS_TOLERANCE * rhs.abs().amax(-1)
    z = torch.zeros_like(rhs)
    passive = torch.zeros_like(rhs, dtype=torch.bool)
    excluded = torch.zeros_like(passive)
    inner = torch.zeros_like(passive[:, 0])
    done = torch.zeros_like(inner)
    rows = torch.arange(rhs.shape[0], device=rhs.device)
    for _ in range(10 * size + 50 if max_steps is None else max_steps):
        gradient = rhs - (gram @ z[..., None])[..., 0]
        candidates = torch.where(passive | excluded, -torch.inf, gradient)
        best, index = candidates.max(-1)
        done |= ~inner & ~(best > tolerance)
        if done.all():
            break
        added = ~inner & ~done
        passive[rows[added], index[added]] = True
        s = torch.zeros_like(z)
        s[~done] = _solve_passive(gram[~done], rhs[~done], passive[~done])
        stuck = added & ~(s[rows, index] > 0)  # rounding: the freed variable cannot grow
        passive[rows[stuck], index[stuck]] = False
        excluded[rows[stuck], index[stuck]] = True
        live = ~done & ~stuck
        feasible = live & ((s > 0) | ~passive).all(-1)
        z = torch.where(feasible[:, None], s, z)
        excluded &= ~feasible[:, None]
        blocked = live & ~feasible
        blocking = passive & (s <= 0)
        steps = torch.where(blocking, z / (z - s).clamp_min(torch.finfo(z.dtype).tiny), torch.inf)
        step, first = steps.min(-1)
        moved = (z + step.clamp(0.0, 1.0)[:, None] * (s - z)).clamp_min(0.0)
        moved[rows, first] = 0.0
        z = torch.where(blocked[:, None], moved, z)
        passive &= ~(blocked[:, None] & (z <= 0))
        inner = blocked
    return (z / scale).reshape(shape)


@MODELS.register(name="BDSD-PC")
class BDSDPC(ClassicalFusion):
    """Band-dependent spatial detail, physically constrained (``BDSD_PC(I_MS, I_PAN, ratio, sensor)``).

    Vivone, "Robust band-dependent spatial-detail approaches for panchromatic sharpening",
    IEEE TGRS 57(9), 2019. ``out_b = up_b + g_b0 pan + sum_k g_bk up_k``; the coefficients are
    fitted at the reduced scale, where ``gt = imresize(up, 1/ratio)`` (antialiased bicubic)
    plays the reference, ``ms = MTF(gt)`` the MS and the sensor-MTF-filtered, decimated PAN the
    PAN: ``min ||g_b0 pan_lr + sum_k g_bk ms_k - (gt_b - ms_b)||`` subject to ``g_b0 >= 0`` and
    ``g_bk <= 0`` (``lsqlin``), solved exactly as a nonnegative least-squares problem in
    ``(g_b0, -g_b1, ..., -g_bC)``.
    """

    def coefficients(self, up: Tensor, pan: Tensor) -> Tensor:
        """The constrained coefficients N x C x (C + 1): per band b, (g_b0, g_b1, ..., g_bC)."""
        reference = imresize_matlab(up, 1.0 / self.ratio)
        ms = mtf_filter(reference, sensor_kernel(self.sensor, self.ratio, up.shape[1]))
        pan_lr = decimate(mtf_pan(pan, self.sensor, self.ratio), self.ratio)
        bands = up.shape[1]
        ms, pan_lr = ms.flatten(2), pan_lr.flatten(2).expand(-1, bands, -1)
        target = reference.flatten(2) - ms
        # band b's design has the columns pan_lr_b, -ms_1, ..., -ms_C (signs flipped: z >= 0);
        # its Gram matrix and right-hand side assembled from products of the planes
        pan_pan = (pan_lr * pan_lr).sum(-1)[..., None, None]
        pan_ms = -(pan_lr @ ms.transpose(1, 2))[:, :, None]
        ms_ms = (ms @ ms.transpose(1, 2))[:, None].expand(-1, bands, -1, -1)
        top, bottom = torch.cat((pan_pan, pan_ms), -1), torch.cat((pan_ms.transpose(-1, -2), ms_ms), -1)
        gram = torch.cat((top, bottom), -2)
        rhs = torch.cat(((pan_lr * target).sum(-1)[..., None], -(target @ ms.transpose(1, 2))), -1)
        z = nonnegative_least_squares(gram, rhs)
        return torch.cat((z[..., :1], -z[..., 1:]), dim=-1)

    def fuse(self, lr: Tensor, up: Tensor, pan: Tensor) -> Tensor:
        coef = self.coefficients(up, pan)
        return up + coef[..., :1, None] * pan + torch.einsum("nkhw,nbk->nbhw", up, coef[..., 1:])


@MODELS.register(name="PRACS")
class PRACS(ClassicalFusion):
    """Partial replacement adaptive CS (the toolbox's ``PRACS(I_MS, I_PAN, ratio)``).

    Choi, Yu and Kim, "A new adaptive component-substitution-based satellite image fusion by
    using partial replacement", IEEE TGRS 49(1), 2011. With ``low(x)`` the bicubic
    ``imresize(imresize(x, 1/ratio), ratio)`` and ``hm_b`` band b matched to the PAN's mean
    and std (negatives set to 0): the intensity ``I`` fits ``low(pan)`` on ``(1, hm)``;
    band b's PAN ``P_b = c_b pan + (1 - c_b) hm_b`` with ``c_b = corr(I, hm_b)``; its intensity
    ``I_b`` fits ``low(P_b)`` on ``(1, hm)``; ``out_b = up_b + w_b l_b (P_b - I_b - mean)``
    with ``w_b = beta corr(I_b, up_b) std(up_b) / mean_k std(up_k)`` and the local factor
    ``l_b = 1 - |1 - corr(I, up_b) up_b / I_b|``.
    """

    def low(self, x: Tensor) -> Tensor:
        """Bicubic down- and up-sampling by the ratio (MATLAB ``imresize`` twice), cropped to x's size."""
        down = imresize_matlab(x, 1.0 / self.ratio)
        return imresize_matlab(down, float(self.ratio))[..., : x.shape[-2], : x.shape[-1]]

    def fuse(self, lr: Tensor, up: Tensor, pan: Tensor) -> Tensor:
        spread = image_std(up)
        matched = (up - image_mean(up)) * (image_std(pan) / spread) + image_mean(pan)
        matched = matched.clamp_min(0.0)
        intensity = combine(fit(self.low(pan), matched, offset=True), matched)
        share = correlation(intensity, matched)
        band_pan = share * pan + (1.0 - share) * matched
        band_intensity = combine(fit(self.low(band_pan), matched, offset=True), matched)
        detail = band_pan - band_intensity
        detail = detail - image_mean(detail)
        weight = PRACS_BETA * correlation(band_intensity, up) * spread / spread.mean(dim=1, keepdim=True)
        local = 1.0 - (1.0 - correlation(intensity, up) * up / band_intensity).abs()
        return up + weight * local * detail
