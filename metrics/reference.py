"""Reduced-resolution quality indices (a reference image exists), batched, in float64.

Every function takes ``fused`` and ``gt`` as N x C x H x W tensors at digital-number scale (for
example 0..2047 for 11-bit data; any float or integer dtype), computes in float64 on the inputs'
device and returns one value per image: a float64 tensor of shape (N,).

SAM, ERGAS, SCC and Q_avg reproduce the MATLAB pansharpening toolbox of Vivone et al.
(``SAM.m``, ``ERGAS.m``, ``SCC.m``, ``Q.m`` + ``img_qi.m``). PSNR, SSIM and CC are not part of
the toolbox; their conventions are documented on each function.

This module also holds the helpers shared with the other index modules: input checks, the
distinct-block view and the universal image quality index (Wang & Bovik 2002) from moments.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from utils.errors import UserInputError

# --------------------------------------------------------------------------- shared helpers


def check_image(x: Tensor, name: str) -> None:
    """Refuse anything but a non-empty N x C x H x W tensor (raises UserInputError)."""
    if not isinstance(x, Tensor):
        raise UserInputError(f"{name} must be a torch.Tensor (N x C x H x W), got {type(x).__name__}")
    if x.dim() != 4 or x.numel() == 0:
        raise UserInputError(
            f"{name} must be a non-empty N x C x H x W tensor, got shape {tuple(x.shape)}; "
            "add batch/band dimensions with x[None] or x[:, None]"
        )


def check_pair(fused: Tensor, gt: Tensor) -> tuple[Tensor, Tensor]:
    """Check that two images have the same N x C x H x W shape and return them in float64."""
    check_image(fused, "fused")
    check_image(gt, "gt")
    if fused.shape != gt.shape:
        raise UserInputError(
            f"fused and gt must have the same shape, got {tuple(fused.shape)} and "
            f"{tuple(gt.shape)}; crop or resample one of them first"
        )
    if fused.device != gt.device:
        raise UserInputError(f"fused is on {fused.device} but gt on {gt.device}; move both to one device")
    return fused.to(torch.float64), gt.to(torch.float64)


def check_block_multiple(x: Tensor, block: int, name: str = "image") -> None:
    """Refuse block < 2 or an image whose H or W is not a multiple of ``block``."""
    h, w = x.shape[-2:]
    if block < 2 or h % block or w % block:
        raise UserInputError(
            f"{name} is {h} x {w} pixels, not a multiple of the block size {block}; "
            "crop it to a multiple of the block size or pass another block_size"
        )


def block_view(x: Tensor, block: int, shift: int | None = None) -> Tensor:
    """Copy the block x block windows of N x C x H x W taken at stride ``shift`` (default:
    ``block``, distinct tiles) into an N x B x C x block^2 tensor, windows listed row by row."""
    n, c = x.shape[:2]
    step = block if shift is None else shift
    tiles = x.unfold(2, block, step).unfold(3, block, step)
    return tiles.permute(0, 2, 3, 1, 4, 5).reshape(n, -1, c, block * block)


def universal_index(mean_x: Tensor, mean_y: Tensor, var_sum: Tensor, cov_xy: Tensor) -> Tensor:
    """Universal image quality index Q = 4 cov mx my / ((var_x + var_y)(mx^2 + my^2)).

    Elementwise on broadcastable tensors; ``var_sum`` = var_x + var_y and ``cov_xy`` must use
    the same normalisation (N or N - 1: it cancels). Range [-1, 1]; no special case for flat
    windows (0 / 0 gives NaN, as in the toolbox's ``D_lambda.m`` / ``D_s.m``).
    """
    return 4 * cov_xy * mean_x * mean_y / (var_sum * (mean_x**2 + mean_y**2))


def _window_sums(x: Tensor, size: int) -> Tensor:
    """Sums over every size x size window ('valid' part, stride 1) of ... x H x W via an
    integral image: ... x (H - size + 1) x (W - size + 1)."""
    s = F.pad(x, (1, 0, 1, 0)).cumsum(-2).cumsum(-1)
    return s[..., size:, size:] - s[..., :-size, size:] - s[..., size:, :-size] + s[..., :-size, :-size]


# --------------------------------------------------------------------------- indices


def sam(fused: Tensor, gt: Tensor) -> Tensor:
    """Spectral angle mapper in degrees (``SAM.m``), shape (N,), range [0, 180].

    Per pixel acos(<f, g> / (|f| |g|)) over the C bands; the mean is taken over the pixels whose
    norm product is non-zero (an image without such pixels gives NaN).
    """
    f, g = check_pair(fused, gt)
    dot = (f * g).sum(1)
    norm = ((f * f).sum(1) * (g * g).sum(1)).sqrt()
    valid = norm != 0
    cosine = torch.where(valid, dot / torch.where(valid, norm, 1.0), 1.0).clamp(-1.0, 1.0)
    angle = torch.where(valid, torch.acos(cosine), 0.0)
    return angle.sum((1, 2)) / valid.sum((1, 2)) * (180.0 / math.pi)


def ergas(fused: Tensor, gt: Tensor, ratio: float) -> Tensor:
    """ERGAS (``ERGAS.m``): (100 / ratio) sqrt(mean_b MSE_b / mean(gt_b)^2), shape (N,), >= 0.

    ``ratio`` is the resolution ratio between the fused and the low-resolution image (4 for the
    usual pansharpening protocols; a hyperspectral code base that passes 1 is not comparable).
    """
    f, g = check_pair(fused, gt)
    if not ratio > 0:
        raise UserInputError(f"ERGAS ratio must be positive (e.g. 4), got {ratio}")
    mse = ((f - g) ** 2).mean((2, 3))
    return (100.0 / ratio) * (mse / g.mean((2, 3)) ** 2).mean(1).sqrt()


def _peak(g: Tensor, data_range: float | Tensor | None) -> Tensor:
    """Per-image peak value: ``data_range`` broadcast to (N,), or max of gt when None."""
    if data_range is None:
        return g.amax((1, 2, 3))
    peak = torch.as_tensor(data_range, dtype=torch.float64, device=g.device).expand(g.shape[0])
    if not bool((peak > 0).all()):
        raise UserInputError(f"data_range must be positive (e.g. 2047 for 11-bit data), got {data_range}")
    return peak


def psnr(fused: Tensor, gt: Tensor, data_range: float | None = None) -> Tensor:
    """Peak signal-to-noise ratio in dB, 10 log10(peak^2 / MSE), shape (N,).

    The MSE is taken over all bands and pixels of an image. ``data_range`` is the peak value
    (e.g. 2047 for 11-bit data); None uses the maximum of ``gt`` over each image, as most
    pansharpening papers do. Identical images give +inf.
    """
    f, g = check_pair(fused, gt)
    peak = _peak(g, data_range)
    mse = ((f - g) ** 2).mean((1, 2, 3))
    return 10.0 * torch.log10(peak**2 / mse)


def cc(fused: Tensor, gt: Tensor) -> Tensor:
    """Cross-correlation: mean over bands of the Pearson correlation of the band images, (N,),
    range [-1, 1] (NaN for a constant band)."""
    f, g = check_pair(fused, gt)
    fc = f - f.mean((2, 3), keepdim=True)
    gc = g - g.mean((2, 3), keepdim=True)
    corr = (fc * gc).sum((2, 3)) / ((fc * fc).sum((2, 3)) * (gc * gc).sum((2, 3))).sqrt()
    return corr.mean(1)


def _gaussian_window(size: int, sigma: float, like: Tensor) -> Tensor:
    """Normalised 1-D Gaussian of ``size`` taps (MATLAB ``fspecial('gaussian')`` is its outer
    product with itself)."""
    t = torch.arange(size, dtype=torch.float64, device=like.device) - (size - 1) / 2
    w = torch.exp(-(t**2) / (2 * sigma**2))
    return w / w.sum()


def ssim(
    fused: Tensor, gt: Tensor, data_range: float | Tensor, window: int = 11, sigma: float = 1.5
) -> Tensor:
    """Structural similarity (Wang et al. 2004), mean over the map and over bands, shape (N,).

    Local statistics with an 11 x 11 Gaussian window of std 1.5 over the 'valid' part of each
    band (no padding), constants C1 = (0.01 L)^2, C2 = (0.03 L)^2 with L = ``data_range``
    (a float or a per-image tensor of shape (N,), e.g. 2047 for 11-bit data). Range [-1, 1].
    """
    f, g = check_pair(fused, gt)
    n, c, h, w = f.shape
    if h < window or w < window:
        raise UserInputError(f"SSIM needs images of at least {window} x {window} pixels, got {h} x {w}")
    peak = _peak(g, data_range).view(n, 1, 1, 1)
    taps = _gaussian_window(window, sigma, f)
    stack = torch.stack([f, g, f * f, g * g, f * g], 2).reshape(n * c * 5, 1, h, w)
    blurred = F.conv2d(F.conv2d(stack, taps.view(1, 1, window, 1)), taps.view(1, 1, 1, window))
    mf, mg, ff, gg, fg = blurred.reshape(n, c, 5, h - window + 1, w - window + 1).unbind(2)
    c1, c2 = (0.01 * peak) ** 2, (0.03 * peak) ** 2
    numerator = (2 * mf * mg + c1) * (2 * (fg - mf * mg) + c2)
    denominator = (mf**2 + mg**2 + c1) * ((ff - mf**2) + (gg - mg**2) + c2)
    return (numerator / denominator).mean((1, 2, 3))


def _sobel_magnitude(x: Tensor) -> Tensor:
    """Sobel gradient magnitude of every band of the interior crop x[..., 1:-1, 1:-1]
    (MATLAB ``imfilter`` with zero padding, 'same' size): N x C x (H - 2) x (W - 2)."""
    n, c, h, w = x.shape
    kernel = torch.tensor([[1.0, 2.0, 1.0], [0.0, 0.0, 0.0], [-1.0, -2.0, -1.0]], dtype=x.dtype)
    kernels = torch.stack([kernel, kernel.T])[:, None].to(x.device)
    inner = x[..., 1:-1, 1:-1].reshape(n * c, 1, h - 2, w - 2)
    grad = F.conv2d(inner, kernels, padding=1)
    return grad.pow(2).sum(1).sqrt().reshape(n, c, h - 2, w - 2)


def scc(fused: Tensor, gt: Tensor) -> Tensor:
    """Spatial correlation coefficient (``SCC.m``, 2021 version), shape (N,), range [0, 1].

    Sobel gradient magnitudes of both images (see :func:`_sobel_magnitude`), then one global,
    non-mean-centred normalised correlation over all bands and pixels:
    sum(Gf Gg) / sqrt(sum(Gf^2) sum(Gg^2)). Symmetric in its arguments.
    """
    f, g = check_pair(fused, gt)
    if f.shape[-1] < 3 or f.shape[-2] < 3:
        raise UserInputError(f"SCC needs images of at least 3 x 3 pixels, got {tuple(f.shape[-2:])}")
    gf, gg = _sobel_magnitude(f), _sobel_magnitude(g)
    return (gf * gg).sum((1, 2, 3)) / ((gf * gf).sum((1, 2, 3)) * (gg * gg).sum((1, 2, 3))).sqrt()


def q_avg(fused: Tensor, gt: Tensor, block_size: int = 32) -> Tensor:
    """Universal image quality index averaged over bands (``Q.m`` with ``img_qi.m``), (N,).

    Per band, Q on every block_size x block_size window sliding with stride 1 ('valid' part),
    averaged over the map, then over bands. Flat windows follow ``img_qi``: if
    var_f + var_g = 0 the value is 2 mf mg / (mf^2 + mg^2) (1 if both means are also zero).
    Images smaller than the window give NaN, as in the toolbox. Range [-1, 1].
    """
    f, g = check_pair(fused, gt)
    if block_size < 2:
        raise UserInputError(f"block_size must be at least 2, got {block_size}")
    n = float(block_size * block_size)
    if min(f.shape[-2:]) < block_size:
        return torch.full((f.shape[0],), float("nan"), dtype=torch.float64, device=f.device)
    sums = _window_sums(torch.stack([f, g, f * f, g * g, f * g]), block_size)
    s_f, s_g, s_ff, s_gg, s_fg = sums
    mean_sq = s_f * s_f + s_g * s_g
    var_sum = n * (s_ff + s_gg) - mean_sq
    general = universal_index(s_f, s_g, var_sum, n * s_fg - s_f * s_g)
    flat = torch.where(mean_sq != 0, 2 * s_f * s_g / torch.where(mean_sq != 0, mean_sq, 1.0), 1.0)
    quality = torch.where(var_sum * mean_sq != 0, general, torch.where(var_sum == 0, flat, 1.0))
    return quality.mean((2, 3)).mean(1)
