"""Degradation: MTF filtering and the Wald protocol of the pansharpening toolbox.

``wald_protocol`` is the toolbox's ``resize_images(MS, PAN, ratio, sensor)``: the MS image is
filtered with the sensor's MTF-matched kernels (``MTF.m``: ``imfilter(..., 'replicate')`` per
band), then decimated with ``imresize(..., 1/ratio, 'nearest')`` (samples kept at 0-based
offset ``ratio // 2``); the PAN image is shrunk with MATLAB's default ``imresize(PAN, 1/ratio)``
(antialiased bicubic). With sensor 'none' the MS image is MTF-filtered too, with the default
gain 0.3 for every band: that is what the golden Landsat-8 case ('none', ratio 2) pins down
(older toolbox versions used a plain bicubic ``imresize`` for 'none'; they do not match it).

All functions take N x C x H x W floating-point tensors, keep their dtype and device, and are
linear in the image (any value scale). Pass float64 for toolbox-exact numbers.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from protocols.mtf import check_int, pan_kernel, sensor_kernel
from protocols.resize import check_image, imresize_matlab
from utils.errors import UserInputError
from utils.registry import suggest

PAN_MODES = ("imresize", "mtf")


def _check_kernel(kernel: torch.Tensor, bands: int) -> torch.Tensor:
    """Return ``kernel`` as bands x k x k (k odd), broadcasting a single kernel to every band."""
    if not isinstance(kernel, torch.Tensor) or kernel.dim() not in (2, 3):
        raise UserInputError("kernel must be a C x k x k or k x k tensor, e.g. sensor_kernel(...)")
    kernel = kernel.reshape(-1, *kernel.shape[-2:])
    size = kernel.shape[-1]
    if kernel.shape[-2] != size or size % 2 == 0:
        raise UserInputError(f"kernel must be square with an odd side, got {tuple(kernel.shape)}")
    if kernel.shape[0] not in (1, bands):
        raise UserInputError(
            f"got {kernel.shape[0]} kernels for an image with {bands} bands; give 1 or {bands}"
        )
    return kernel.expand(bands, size, size)


def _is_5_smooth(n: int) -> bool:
    """True when n has no prime factor above 5."""
    for prime in (2, 3, 5):
        while n % prime == 0:
            n //= prime
    return n == 1


def _fft_length(n: int) -> int:
    """Smallest integer >= n whose only prime factors are 2, 3 and 5 (a fast FFT size)."""
    return next(m for m in itertools.count(n) if _is_5_smooth(m))


FFT_CHUNK_ELEMENTS = 2**19
"""FFT-grid samples per chunk in :func:`_correlate` (at least one band): about one 576 x 576
band, which measured fastest on CPUs (one FFT batch of all 160 bands of a 20 x 8 x 512 x 512
stack was about 3x slower: out of cache, and fresh large buffers)."""


def _chunks(images: int, bands: int, per_chunk: int) -> list[tuple[slice, slice]]:
    """(image slice, band slice) pairs covering an images x bands grid, each holding at most
    ``per_chunk`` bands (at least one) and never splitting an image's bands unless it must."""
    per_chunk = max(1, per_chunk)
    step_n, step_c = (per_chunk // bands, bands) if per_chunk >= bands else (1, per_chunk)
    return [
        (slice(i, i + step_n), slice(b, b + step_c))
        for i in range(0, images, step_n)
        for b in range(0, bands, step_c)
    ]


def _correlate(x: torch.Tensor, kernel: torch.Tensor, stride: int, offset: int) -> torch.Tensor:
    """Per-band correlation with replicate padding, sampled at rows/columns offset + stride * j.

    x: N x C x H x W; kernel: C x k x k (already checked). With stride 1 and offset 0 this is
    ``imfilter(x, kernel, 'replicate')`` (same size). Computed with real FFTs of the padded
    bands, a few bands at a time (:data:`FFT_CHUNK_ELEMENTS`), on 2/3/5-smooth grids
    (O(HW log HW), exact to a few float ulps of the image's magnitude; a direct float64
    convolution with a 41 x 41 kernel is two orders of magnitude slower on CPUs).
    """
    size = kernel.shape[-1]
    half = size // 2
    work = x.dtype if x.dtype in (torch.float32, torch.float64) else torch.float32
    shape = (_fft_length(x.shape[-2] + size - 1), _fft_length(x.shape[-1] + size - 1))
    flipped = kernel.to(device=x.device, dtype=work).flip(-1, -2)
    spectra = torch.fft.rfft2(flipped, s=shape)
    rows, cols = (slice(size - 1 + offset, size - 1 + n, stride) for n in x.shape[-2:])
    out = x.new_empty(*x.shape[:2], *(len(range(n)[offset::stride]) for n in x.shape[-2:]))
    per_chunk = FFT_CHUNK_ELEMENTS // (shape[0] * shape[1])
    for images, bands in _chunks(x.shape[0], x.shape[1], per_chunk):
        padded = F.pad(x[images, bands].to(work), (half, half, half, half), mode="replicate")
        spectrum = torch.fft.rfft2(padded, s=shape) * spectra[bands]
        out[images, bands] = torch.fft.irfft2(spectrum, s=shape)[..., rows, cols]
    return out


def mtf_filter(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """``imfilter(x_b, kernel_b, 'replicate')`` for every band b: N x C x H x W -> same shape.

    kernel: C x k x k (one per band) or 1 x k x k / k x k (the same for all bands), k odd;
    cast to x's dtype and device.
    """
    check_image(x)
    return _correlate(x, _check_kernel(kernel, x.shape[1]), 1, 0)


def mtf_pan(pan: torch.Tensor, sensor: str, ratio: int, gain: float | None = None) -> torch.Tensor:
    """The toolbox's ``MTF_PAN``: PAN (N x 1 x H x W) filtered with the sensor's PAN kernel.

    gain: explicit PAN Nyquist gain in (0, 1), overriding the sensor's table value.
    """
    check_image(pan, "pan")
    return mtf_filter(pan, pan_kernel(sensor, ratio, gain))


def decimate(x: torch.Tensor, ratio: int) -> torch.Tensor:
    """``imresize(x, 1/ratio, 'nearest')``: keeps rows/columns ``ratio // 2 + ratio * j``.

    x: N x C x H x W -> N x C x ceil(H / ratio) x ceil(W / ratio).
    """
    check_image(x)
    ratio = check_int(ratio, "ratio", 1)
    if x.shape[-2] % ratio or x.shape[-1] % ratio:
        return imresize_matlab(x, 1.0 / ratio, method="nearest")
    start = ratio // 2
    return x[..., start::ratio, start::ratio].contiguous()


def mtf_decimate(
    ms: torch.Tensor, ratio: int, sensor: str = "none", gains: Sequence[float] | None = None
) -> torch.Tensor:
    """The MS half of :func:`wald_protocol`: every band filtered with the sensor's MTF-matched
    kernel (replicate padding) and decimated by ``ratio`` (samples at ``ratio // 2 + ratio * j``).

    ms: N x C x H x W (H, W divisible by ratio) -> N x C x H/r x W/r; differentiable (real FFTs),
    dtype and device kept. ``sensor`` / ``gains`` as in :func:`protocols.mtf.sensor_kernel`.
    """
    check_image(ms, "ms")
    ratio = check_int(ratio, "ratio", 1)
    if ms.shape[-2] % ratio or ms.shape[-1] % ratio:
        raise UserInputError(
            f"ms size {tuple(ms.shape[-2:])} is not divisible by ratio {ratio}: crop it to a "
            f"multiple of {ratio}"
        )
    kernel = sensor_kernel(sensor, ratio, ms.shape[1], gains)
    return _correlate(ms, kernel, ratio, ratio // 2)


def _check_pair(ms: torch.Tensor, pan: torch.Tensor, ratio: int) -> None:
    """Check an MS/PAN pair: same batch, PAN as large as the MS or ``ratio`` times larger,
    both sizes divisible by ``ratio``."""
    check_image(ms, "ms")
    check_image(pan, "pan")
    if pan.shape[1] != 1:
        raise UserInputError(f"pan must have one band (N x 1 x H x W), got {tuple(pan.shape)}")
    ms_size, pan_size = tuple(ms.shape[-2:]), tuple(pan.shape[-2:])
    if ms.shape[0] != pan.shape[0] or pan_size not in (ms_size, tuple(ratio * n for n in ms_size)):
        raise UserInputError(
            f"ms {tuple(ms.shape)} and pan {tuple(pan.shape)} must share the batch size, and pan "
            f"must be as large as ms or {ratio} times larger"
        )
    if ms_size[0] % ratio or ms_size[1] % ratio:
        raise UserInputError(
            f"ms size {ms_size} is not divisible by ratio {ratio}; crop both images to a "
            f"multiple of {ratio} (MS) first"
        )


def wald_protocol(
    ms: torch.Tensor,
    pan: torch.Tensor,
    ratio: int,
    sensor: str = "none",
    ms_gains: Sequence[float] | None = None,
    pan_mode: str = "imresize",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Reduced-resolution pair by the toolbox's ``resize_images`` (see the module docstring).

    ms: N x C x H x W, pan: N x 1 x H x W or N x 1 x rH x rW (H, W divisible by ratio): usually
    both at the PAN resolution (simulation from a high-resolution MS), or the native pair (the
    toolbox shrinks each image on its own; the golden Landsat-8 case); sensor: a name of
    :data:`protocols.mtf.SENSOR_GAINS`; ms_gains: explicit MS Nyquist gains (one per band);
    pan_mode: 'imresize' (MATLAB antialiased bicubic, the toolbox default) or 'mtf' (PAN MTF
    filter then the same nearest decimation as the MS, the toolbox's ``flag_PAN_MTF``).
    Returns (ms_lr N x C x H/r x W/r, pan_lr N x 1 with 1/r of pan's H x W).
    """
    ratio = check_int(ratio, "ratio", 1)
    _check_pair(ms, pan, ratio)
    if pan_mode not in PAN_MODES:
        raise UserInputError(f"unknown pan_mode '{pan_mode}'{suggest(pan_mode, PAN_MODES)}; use {PAN_MODES}")
    ms_lr = mtf_decimate(ms, ratio, sensor, ms_gains)
    if pan_mode == "imresize":
        return ms_lr, imresize_matlab(pan, 1.0 / ratio)
    return ms_lr, _correlate(pan, pan_kernel(sensor, ratio), ratio, ratio // 2)
