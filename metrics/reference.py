"""Reduced-resolution quality indices (a reference image exists), batched, in float64.

Every function takes ``fused`` and ``gt`` as N x C x H x W tensors at digital-number scale (for
example 0..2047 for 11-bit data; any float or integer dtype), computes in float64 on the inputs'
device and returns one value per image: a float64 tensor of shape (N,).

SAM, ERGAS, SCC and Q_avg reproduce the MATLAB pansharpening toolbox of Vivone et al.
(``SAM.m``, ``ERGAS.m``, ``SCC.m``, ``Q.m`` + ``img_qi.m``). PSNR, SSIM and CC are not part of
the toolbox; their conventions are documented on each function.

This module also holds the helpers shared with the other index modules: input checks, the
per-block moments and the universal image quality index (Wang & Bovik 2002) from moments.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from functools import partial

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


_CHUNK_ELEMENTS = {"cpu": 1 << 20}
"""Elements processed per step by the chunked computations (8 MiB of float64 on CPU, inside
the L3 cache); other devices take 2^24 (128 MiB)."""


def _chunk_budget(device: torch.device) -> int:
    """Elements per step of a chunked computation on ``device``."""
    return _CHUNK_ELEMENTS.get(device.type, 1 << 24)


def by_image_chunks(fn: Callable[..., Tensor], tensors: Sequence[Tensor], elements: int) -> Tensor:
    """``fn`` applied to groups of consecutive images (dim 0 of every tensor), each group
    holding as many images as fit the chunk budget at ``elements`` working elements per image
    (at least one); the results, (n,) per group, concatenated to (N,). Keeps the temporaries of
    memory-bound, image-wise computations in the cache."""
    per = max(1, _chunk_budget(tensors[0].device) // elements)
    n = tensors[0].shape[0]
    return torch.cat([fn(*(x[i : i + per] for x in tensors)) for i in range(0, n, per)])


def _chunking(n: int, rows: int, row_elements: int, device: torch.device) -> tuple[int, int]:
    """(images, block rows) gathered per step: whole images when one fits the budget."""
    per_step = max(1, _chunk_budget(device) // row_elements)
    if per_step < rows:
        return 1, per_step
    return min(n, per_step // rows), rows


def block_moments(
    images: Sequence[Tensor],
    block: int,
    shift: int | None = None,
    transform: Callable[[Tensor], Tensor] | None = None,
    centre: bool = False,
) -> tuple[Tensor, Tensor, Tensor]:
    """Per-window moments of the bands of ``images`` (N x C_i x H x W each, one N, H, W and
    dtype), on the block x block windows taken at stride ``shift`` (default ``block``: distinct
    tiles), B windows row by row, K = sum of the C_i bands in order.

    Returns (s, q, X): s N x B x K the pixel sums, q N x B x K the sums of squares and X
    N x B x C_first x C_last the sums of products of every band of ``images[0]`` with every band
    of ``images[-1]`` (the Gram matrix for a single image). With ``centre``, s holds means and
    q, X are taken on the mean-removed pixels. ``transform`` is applied in place to the window
    pixels first (e.g. a uint16 cast). Windows are gathered a few block rows at a time into one
    small buffer, so no N x B x K x block^2 copy of the images is made.
    """
    step = block if shift is None else shift
    n, _, h, w = images[0].shape
    rows, cols = (h - block) // step + 1, (w - block) // step + 1
    bands, pixels = sum(x.shape[1] for x in images), block * block
    first, last = images[0].shape[1], images[-1].shape[1]
    per_images, per_rows = _chunking(n, rows, cols * bands * pixels, images[0].device)
    sums, squares = images[0].new_empty((2, n, rows * cols, bands))
    cross = images[0].new_empty((n, rows * cols, first, last))
    buffer = images[0].new_empty(per_images * per_rows * cols * bands * pixels)
    for n0 in range(0, n, per_images):
        n1 = min(n, n0 + per_images)
        for r0 in range(0, rows, per_rows):
            r1 = min(rows, r0 + per_rows)
            tiles = buffer[: (n1 - n0) * (r1 - r0) * cols * bands * pixels]
            tiles = tiles.view(n1 - n0, r1 - r0, cols, bands, block, block)
            band = 0
            for x in images:
                slab = x[n0:n1, :, r0 * step : (r1 - 1) * step + block]
                windows = slab.unfold(2, block, step).unfold(3, block, step).permute(0, 2, 3, 1, 4, 5)
                tiles[:, :, :, band : band + x.shape[1]].copy_(windows)
                band += x.shape[1]
            flat = tiles.view(-1, bands, pixels)
            if transform is not None:
                transform(flat)
            span = (slice(n0, n1), slice(r0 * cols, r1 * cols))
            sums[span] = (flat.mean(-1) if centre else flat.sum(-1)).view(n1 - n0, -1, bands)
            if centre:
                flat.sub_(sums[span].reshape(-1, bands, 1))
            squares[span] = torch.linalg.vecdot(flat, flat).view(n1 - n0, -1, bands)
            products = flat[:, :first] @ flat[:, bands - last :].transpose(-1, -2)
            cross[span] = products.view(n1 - n0, -1, first, last)
    return sums, squares, cross


def universal_index(cov_xy: Tensor, mean_prod: Tensor, mean_sq: Tensor, var_sum: Tensor) -> Tensor:
    """Universal image quality index Q = 4 cov_xy mx my / ((var_x + var_y)(mx^2 + my^2)).

    Elementwise (the denominator must broadcast to the shape of cov_xy * mean_prod):
    ``mean_prod`` = mx my, ``mean_sq`` = mx^2 + my^2,
    ``var_sum`` = var_x + var_y. Moments may be scaled (sums instead of means, N or N - 1
    normalisation) as long as numerator and denominator scale alike. Range [-1, 1]; no special
    case for flat windows (0 / 0 gives NaN, as in the toolbox's ``D_lambda.m`` / ``D_s.m``).
    """
    return (cov_xy * mean_prod).mul_(4).div_(var_sum * mean_sq)


def last_dot(x: Tensor, y: Tensor) -> Tensor:
    """Dot products along the last dimension, ... x P (twice) -> ..., without materialising
    the elementwise product."""
    return (x.unsqueeze(-2) @ y.unsqueeze(-1))[..., 0, 0]


def pixel_dot(x: Tensor, y: Tensor) -> Tensor:
    """Sum over pixels of x * y per image and band: N x C x H x W (twice) -> N x C."""
    return last_dot(x.flatten(2), y.flatten(2))


def _window_sums(table: Tensor, size: int) -> Tensor:
    """Sums over every size x size window ('valid' part, stride 1) of ... x H x W, given as
    ``table`` = the image with a leading zero row and column (... x (H + 1) x (W + 1)), which
    is overwritten by its integral image. Returns ... x (H - size + 1) x (W - size + 1)."""
    table.cumsum_(-2).cumsum_(-1)
    sums = table[..., size:, size:] - table[..., :-size, size:]
    return sums.sub_(table[..., size:, :-size]).add_(table[..., :-size, :-size])


def _correlate_valid(x: Tensor, taps: list[float], dim: int) -> Tensor:
    """Correlate x with 1-D ``taps`` along ``dim``, 'valid' part (length shrinks by
    len(taps) - 1), as a sum of shifted slices."""
    length = x.shape[dim] - len(taps) + 1
    terms = [(k, tap) for k, tap in enumerate(taps) if tap]
    out = x.narrow(dim, terms[0][0], length) * terms[0][1]
    for k, tap in terms[1:]:
        out.add_(x.narrow(dim, k, length), alpha=tap)
    return out


def _moment_maps(f: Tensor, g: Tensor, lead: int = 0) -> Tensor:
    """Stack f, g, f^2 + g^2 and f g: 4 x N x C x (lead + H) x (lead + W), the inputs of local
    Q and SSIM, preceded by ``lead`` zero rows and columns."""
    maps = f.new_empty((4, *f.shape[:2], lead + f.shape[2], lead + f.shape[3]))
    maps[..., :lead, :].zero_()
    maps[..., :lead].zero_()
    body = maps[..., lead:, lead:]
    body[0].copy_(f)
    body[1].copy_(g)
    body[2].copy_(f).mul_(f).addcmul_(g, g)
    body[3].copy_(f).mul_(g)
    return maps


# --------------------------------------------------------------------------- indices


def sam(fused: Tensor, gt: Tensor) -> Tensor:
    """Spectral angle mapper in degrees (``SAM.m``), shape (N,), range [0, 180].

    Per pixel acos(<f, g> / (|f| |g|)) over the C bands; the mean is taken over the pixels whose
    norm product is non-zero (an image without such pixels gives NaN).
    """
    f, g = check_pair(fused, gt)
    dot, norm_f, norm_g = f.new_zeros((3, f.shape[0], *f.shape[2:]))
    for band in range(f.shape[1]):
        dot.addcmul_(f[:, band], g[:, band])
        norm_f.addcmul_(f[:, band], f[:, band])
        norm_g.addcmul_(g[:, band], g[:, band])
    norm = norm_f.mul_(norm_g).sqrt_()
    valid = norm != 0
    angle = dot.div_(norm.masked_fill_(~valid, 1.0)).clamp_(-1.0, 1.0).acos_().masked_fill_(~valid, 0.0)
    return angle.sum((1, 2)) / valid.sum((1, 2)) * (180.0 / math.pi)


def _band_mse(f: Tensor, g: Tensor) -> Tensor:
    """Mean squared error of every band: N x C."""
    diff = f - g
    return pixel_dot(diff, diff) / (f.shape[-1] * f.shape[-2])


def ergas(fused: Tensor, gt: Tensor, ratio: float) -> Tensor:
    """ERGAS (``ERGAS.m``): (100 / ratio) sqrt(mean_b MSE_b / mean(gt_b)^2), shape (N,), >= 0.

    ``ratio`` is the resolution ratio between the fused and the low-resolution image (4 for the
    usual pansharpening protocols; a hyperspectral code base that passes 1 is not comparable).
    """
    f, g = check_pair(fused, gt)
    if not ratio > 0:
        raise UserInputError(f"ERGAS ratio must be positive (e.g. 4), got {ratio}")
    return (100.0 / ratio) * (_band_mse(f, g) / g.mean((2, 3)) ** 2).mean(1).sqrt()


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
    return 10.0 * torch.log10(_peak(g, data_range) ** 2 / _band_mse(f, g).mean(1))


def cc(fused: Tensor, gt: Tensor) -> Tensor:
    """Cross-correlation: mean over bands of the Pearson correlation of the band images, (N,),
    range [-1, 1] (NaN for a constant band)."""
    f, g = check_pair(fused, gt)
    fc = f - f.mean((2, 3), keepdim=True)
    gc = g - g.mean((2, 3), keepdim=True)
    return (pixel_dot(fc, gc) / (pixel_dot(fc, fc) * pixel_dot(gc, gc)).sqrt()).mean(1)


def _gaussian_window(size: int, sigma: float) -> list[float]:
    """Normalised 1-D Gaussian of ``size`` taps (MATLAB ``fspecial('gaussian')`` is its outer
    product with itself)."""
    t = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    w = torch.exp(-(t**2) / (2 * sigma**2))
    return (w / w.sum()).tolist()


def ssim(
    fused: Tensor, gt: Tensor, data_range: float | Tensor, window: int = 11, sigma: float = 1.5
) -> Tensor:
    """Structural similarity (Wang et al. 2004), mean over the map and over bands, shape (N,).

    Local statistics with an 11 x 11 Gaussian window of std 1.5 over the 'valid' part of each
    band (no padding), constants C1 = (0.01 L)^2, C2 = (0.03 L)^2 with L = ``data_range``
    (a float or a per-image tensor of shape (N,), e.g. 2047 for 11-bit data). Range [-1, 1].
    """
    f, g = check_pair(fused, gt)
    if min(f.shape[-2:]) < window:
        raise UserInputError(
            f"SSIM needs images of at least {window} x {window} pixels, got {tuple(f.shape[-2:])}"
        )
    peak = _peak(g, data_range).view(-1, 1, 1, 1)
    constants = torch.cat([(0.01 * peak) ** 2, (0.03 * peak) ** 2], 1)
    taps = _gaussian_window(window, sigma)
    return by_image_chunks(partial(_ssim_mean, taps=taps), (f, g, constants), 8 * f[0].numel())


def _ssim_mean(f: Tensor, g: Tensor, constants: Tensor, taps: list[float]) -> Tensor:
    """Mean SSIM of each image (see :func:`ssim`) of N x C x H x W float64 pairs, with
    ``constants`` N x 2 x 1 x 1 holding C1 and C2 and the 1-D window ``taps``: (N,)."""
    c1, c2 = constants[:, :1], constants[:, 1:]
    blurred = _correlate_valid(_correlate_valid(_moment_maps(f, g), taps, -2), taps, -1)
    mf, mg, sq, fg = blurred.unbind(0)
    numerator = mf * mg
    mean_sq = mf.pow_(2).addcmul_(mg, mg)
    fg.sub_(numerator).mul_(2).add_(c2)
    numerator.mul_(2).add_(c1).mul_(fg)
    denominator = sq.sub_(mean_sq).add_(c2).mul_(mean_sq.add_(c1))
    return numerator.div_(denominator).mean((1, 2, 3))


def _sobel_magnitude(x: Tensor) -> Tensor:
    """Sobel gradient magnitude of every band of the interior crop x[..., 1:-1, 1:-1]
    (MATLAB ``imfilter`` with zero padding, 'same' size): N x C x (H - 2) x (W - 2).

    fspecial('sobel') = [1, 0, -1]^T [1, 2, 1] is separable; its transpose gives the other
    direction (the sign of a correlation versus a convolution does not change the magnitude).
    """
    inner = F.pad(x[..., 1:-1, 1:-1], (1, 1, 1, 1))
    smooth, diff = [1.0, 2.0, 1.0], [1.0, 0.0, -1.0]
    grad_y = _correlate_valid(_correlate_valid(inner, diff, -2), smooth, -1)
    grad_x = _correlate_valid(_correlate_valid(inner, smooth, -2), diff, -1)
    return grad_y.pow_(2).add_(grad_x.pow_(2)).sqrt_()


def scc(fused: Tensor, gt: Tensor) -> Tensor:
    """Spatial correlation coefficient (``SCC.m``, 2021 version), shape (N,), range [0, 1].

    Sobel gradient magnitudes of both images (see :func:`_sobel_magnitude`), then one global,
    non-mean-centred normalised correlation over all bands and pixels:
    sum(Gf Gg) / sqrt(sum(Gf^2) sum(Gg^2)). Symmetric in its arguments.
    """
    f, g = check_pair(fused, gt)
    if min(f.shape[-2:]) < 3:
        raise UserInputError(f"SCC needs images of at least 3 x 3 pixels, got {tuple(f.shape[-2:])}")
    return by_image_chunks(_scc_value, (f, g), 6 * f[0].numel())


def _scc_value(f: Tensor, g: Tensor) -> Tensor:
    """SCC of each image (see :func:`scc`) of N x C x H x W float64 pairs: (N,)."""
    gf, gg = _sobel_magnitude(f), _sobel_magnitude(g)
    cross, norm_f, norm_g = (pixel_dot(a, b).sum(1) for a, b in ((gf, gg), (gf, gf), (gg, gg)))
    return cross / (norm_f * norm_g).sqrt()


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
    if min(f.shape[-2:]) < block_size:
        return torch.full((f.shape[0],), float("nan"), dtype=torch.float64, device=f.device)
    return by_image_chunks(partial(_q_avg_mean, block_size=block_size), (f, g), 8 * f[0].numel())


def _q_avg_mean(f: Tensor, g: Tensor, block_size: int) -> Tensor:
    """Q_avg of each image (see :func:`q_avg`) of N x C x H x W float64 pairs at least
    ``block_size`` pixels per side: (N,)."""
    n = float(block_size * block_size)
    s_f, s_g, s_sq, s_fg = _window_sums(_moment_maps(f, g, lead=1), block_size).unbind(0)
    prod = s_f * s_g
    mean_sq = s_f.pow_(2).addcmul_(s_g, s_g)
    var_sum = s_sq.mul_(n).sub_(mean_sq)
    quality = universal_index(s_fg.mul_(n).sub_(prod), prod, mean_sq, var_sum)
    undefined = (var_sum == 0) | (mean_sq == 0)
    if bool(undefined.any()):
        flat = (var_sum == 0) & (mean_sq != 0)
        quality[undefined] = torch.where(flat, 2 * prod / mean_sq, 1.0)[undefined]
    return quality.mean((2, 3)).mean(1)
