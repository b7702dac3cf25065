"""Full-resolution (no-reference) quality indices of the MATLAB toolbox, batched, in float64.

Shapes: ``fused`` N x C x H x W (at PAN scale), ``ms`` N x C x h x w (the original,
low-resolution MS), ``pan`` N x 1 x H x W, ``ms_up`` N x C x H x W (MS upsampled to the PAN
scale; default: the toolbox's 23-tap interpolator, :func:`protocols.resize.upsample` for ratios that
are not powers of two), with H = ratio * h, W = ratio * w, at digital-number scale. Every index
is a float64 tensor of shape (N,) on the inputs' device; H and W must be multiples of the block
size (32 by default), as the toolbox requires.

The universal index Q here is computed on distinct blocks with no special case for flat blocks
(as ``D_lambda.m`` / ``D_s.m``): an image with a constant 32 x 32 block gives NaN, like the
toolbox.
"""

from __future__ import annotations

import torch
from torch import Tensor

from metrics.q2n import q2n
from metrics.reference import (
    block_moments,
    check_block_multiple,
    check_image,
    universal_index,
)
from protocols.degrade import mtf_filter
from protocols.mtf import check_int, sensor_kernel
from protocols.resize import imresize_matlab, upsample
from utils.errors import UserInputError


def _block_q_matrix(images: list[Tensor], block_size: int) -> Tensor:
    """Q on distinct blocks, averaged over blocks, of every band of ``images[0]`` against every
    band of ``images[-1]`` (N x C_i x H x W each, float64): N x C_first x C_last."""
    check_block_multiple(images[0], block_size, "fused")
    mean, var, cov = block_moments(images, block_size, centre=True)
    first, last = images[0].shape[1], images[-1].shape[1]
    mean_x, mean_y = mean[..., :first, None], mean[..., None, -last:]
    q = universal_index(
        cov,
        mean_x * mean_y,
        mean_x**2 + mean_y**2,
        var[..., :first, None] + var[..., None, -last:],
    )
    return q.mean(1)


def check_full_resolution(fused: Tensor, ms: Tensor, pan: Tensor | None, ratio: int) -> int:
    """Check the shapes described in the module docstring (raises UserInputError); returns
    ``ratio`` as an int."""
    check_image(fused, "fused")
    check_image(ms, "ms")
    ratio = check_int(ratio, "ratio", 1)
    n, c, h, w = fused.shape
    if ms.shape != (n, c, h // ratio, w // ratio) or h % ratio or w % ratio:
        raise UserInputError(
            f"ms must be N x C x H/ratio x W/ratio = {(n, c, h / ratio, w / ratio)} for fused "
            f"{tuple(fused.shape)} and ratio {ratio}, got {tuple(ms.shape)}"
        )
    if pan is not None:
        check_image(pan, "pan")
        if pan.shape != (n, 1, h, w):
            raise UserInputError(
                f"pan must be N x 1 x H x W = {(n, 1, h, w)} for fused {tuple(fused.shape)}, "
                f"got {tuple(pan.shape)}"
            )
    return ratio


def resolve_ms_up(fused: Tensor, ms: Tensor, ratio: int, ms_up: Tensor | None) -> Tensor:
    """``ms_up`` checked against ``fused`` (or computed from ``ms``), in float64."""
    if ms_up is None:
        return upsample(ms.to(torch.float64), ratio)
    check_image(ms_up, "ms_up")
    if ms_up.shape != fused.shape:
        raise UserInputError(
            f"ms_up must have the fused image's shape {tuple(fused.shape)}, got {tuple(ms_up.shape)}"
        )
    return ms_up.to(torch.float64)


def d_lambda(fused: Tensor, ms_up: Tensor, block_size: int = 32) -> Tensor:
    """Spectral distortion of QNR (``D_lambda.m``, p = 1), shape (N,), >= 0 (0 is best).

    Mean over the C(C-1)/2 band pairs (i < j) of |Q(F_i, F_j) - Q(MSup_i, MSup_j)|, with Q on
    distinct block_size x block_size blocks averaged over blocks. Needs C >= 2.
    """
    check_image(fused, "fused")
    check_image(ms_up, "ms_up")
    if fused.shape != ms_up.shape or fused.shape[1] < 2:
        raise UserInputError(
            f"D_lambda needs fused and ms_up of one shape with >= 2 bands, got "
            f"{tuple(fused.shape)} and {tuple(ms_up.shape)}"
        )
    f, m = fused.to(torch.float64), ms_up.to(torch.float64)
    i, j = torch.triu_indices(f.shape[1], f.shape[1], 1, device=f.device)
    q_fused = _block_q_matrix([f], block_size)[:, i, j]
    q_ms = _block_q_matrix([m], block_size)[:, i, j]
    return (q_fused - q_ms).abs().mean(1)


def d_s(fused: Tensor, ms_up: Tensor, pan: Tensor, ratio: int, block_size: int = 32) -> Tensor:
    """Spatial distortion of QNR (``D_s.m``, toolbox 1.0 option, q = 1), shape (N,), >= 0.

    Mean over bands of |Q(F_b, PAN) - Q(MSup_b, PAN_lr)|, where PAN_lr is PAN shrunk by
    ``ratio`` with MATLAB's antialiased bicubic ``imresize`` and brought back with the 23-tap
    interpolator; Q on distinct blocks averaged over blocks.
    """
    check_image(fused, "fused")
    check_image(ms_up, "ms_up")
    check_image(pan, "pan")
    n, _, h, w = fused.shape
    if ms_up.shape != fused.shape or pan.shape != (n, 1, h, w):
        raise UserInputError(
            f"D_s needs fused and ms_up N x C x H x W and pan N x 1 x H x W, got "
            f"{tuple(fused.shape)}, {tuple(ms_up.shape)} and {tuple(pan.shape)}"
        )
    ratio = check_int(ratio, "ratio", 1)
    p = pan.to(torch.float64)
    pan_lr = upsample(imresize_matlab(p, 1.0 / ratio), ratio)
    if pan_lr.shape != p.shape:
        raise UserInputError(f"pan's size {h} x {w} must be a multiple of the ratio {ratio}")
    q_high = _block_q_matrix([fused.to(torch.float64), p], block_size)[..., 0]
    q_low = _block_q_matrix([ms_up.to(torch.float64), pan_lr], block_size)[..., 0]
    return (q_high - q_low).abs().mean(1)


def qnr(
    fused: Tensor,
    ms: Tensor,
    pan: Tensor,
    ratio: int,
    ms_up: Tensor | None = None,
    block_size: int = 32,
) -> dict[str, Tensor]:
    """QNR (``QNR.m``): {'QNR': (1 - D_lambda)(1 - D_s), 'D_lambda', 'D_s'}, each (N,).

    QNR is in [0, 1] for usual images, 1 is best. ``ms`` only serves to build ``ms_up`` when it
    is not given (the toolbox's D_lambda and D_s both use the upsampled MS).
    """
    ratio = check_full_resolution(fused, ms, pan, ratio)
    up = resolve_ms_up(fused, ms, ratio, ms_up)
    spectral = d_lambda(fused, up, block_size)
    spatial = d_s(fused, up, pan, ratio, block_size)
    return {"QNR": (1 - spectral) * (1 - spatial), "D_lambda": spectral, "D_s": spatial}


def d_lambda_k(
    fused: Tensor,
    ms: Tensor,
    ratio: int,
    sensor: str,
    ms_up: Tensor | None = None,
    block_size: int = 32,
) -> Tensor:
    """Khan's spectral distortion (``D_lambda_K.m``), shape (N,), 0 is best.

    1 - Q2n(reference MSup, MTF-filtered F) at the PAN scale (no decimation), with the
    sensor's MTF-matched kernels (replicate padding) and block = shift = ``block_size``.
    """
    ratio = check_full_resolution(fused, ms, None, ratio)
    up = resolve_ms_up(fused, ms, ratio, ms_up)
    f = fused.to(torch.float64)
    check_block_multiple(f, block_size, "fused")
    filtered = mtf_filter(f, sensor_kernel(sensor, ratio, f.shape[1]))
    return 1 - q2n(filtered, up, block_size, block_size)


def hqnr(
    fused: Tensor,
    ms: Tensor,
    pan: Tensor,
    ratio: int,
    sensor: str,
    ms_up: Tensor | None = None,
    block_size: int = 32,
) -> dict[str, Tensor]:
    """Hybrid QNR (``HQNR.m``): {'HQNR': (1 - D_lambda_K)(1 - D_s), 'D_lambda_K', 'D_s'}, (N,)."""
    ratio = check_full_resolution(fused, ms, pan, ratio)
    up = resolve_ms_up(fused, ms, ratio, ms_up)
    spectral = d_lambda_k(fused, ms, ratio, sensor, up, block_size)
    spatial = d_s(fused, up, pan, ratio, block_size)
    return {"HQNR": (1 - spectral) * (1 - spatial), "D_lambda_K": spectral, "D_s": spatial}
