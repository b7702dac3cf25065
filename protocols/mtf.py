"""MTF-matched low-pass kernels of multispectral sensors (the pansharpening toolbox's ``genMTF``).

Each MS band (and the PAN) of a sensor has a modulation transfer function whose value at the
low-resolution Nyquist frequency is the band's *Nyquist gain* G (a number in (0, 1)). The
degradation filter is a 41 x 41 FIR kernel whose frequency response is a Gaussian meant to equal
G at ``1 / (2 * ratio)`` cycles per high-resolution pixel, designed by the window method (with
the toolbox's ``N - 1`` below, G is reached at ``20 / (41 * ratio)``; at ``1 / (2 * ratio)`` the
response is ``G ** 1.0506``, about 0.018 below G):

1. ``alpha = sqrt(((N - 1) / (2 * ratio))**2 / (-2 ln G))``; the N x N Gaussian of std alpha
   (MATLAB ``fspecial('gaussian', N, alpha)``), divided by its maximum, is the desired response
   ``Hd`` on a frequency grid where +-1 is the high-resolution Nyquist frequency;
2. the centred inverse 2-D DFT of ``Hd`` is multiplied by a circularly symmetric window built
   from the 1-D Kaiser window (beta = 0.5) by Huang's method (MATLAB ``fwind1``);
3. the real part is kept; the kernel is *not* renormalised (it sums to about 0.9988 at ratio 4).

Band-count mismatch (what the toolbox does, which we follow): ``genMTF`` returns one kernel per
entry of the sensor's gain table whatever ``nbands`` is, and ``MTF.m`` then uses kernel ``b`` for
band ``b``. So an image with fewer bands than the table gets the first ``nbands`` gains (e.g. WV3
on a 4-band image uses 0.325, 0.355, 0.360, 0.350), and an image with more bands fails in the
toolbox (index out of range): here that raises :class:`UserInputError`, asking for explicit
``gains`` or sensor ``'none'``. Only the default entry (``'none'``, ``'GF2'``) has a gain for any
band count (0.3 for every band). The golden kernels only cover matching counts (``WV3_r2`` has
8 bands, ``none_r2`` 7 bands at 0.3), so they do not distinguish any fallback rule.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np
import torch

from utils.errors import UserInputError
from utils.registry import suggest

KERNEL_SIZE = 41
KAISER_BETA = 0.5

SENSOR_GAINS: dict[str, tuple[tuple[float, ...], float]] = {
    "QB": ((0.34, 0.32, 0.30, 0.22), 0.15),
    "IKONOS": ((0.26, 0.28, 0.29, 0.28), 0.17),
    "GeoEye1": ((0.23, 0.23, 0.23, 0.23), 0.16),
    "WV2": ((0.35,) * 7 + (0.27,), 0.11),
    "WV3": ((0.325, 0.355, 0.360, 0.350, 0.365, 0.360, 0.335, 0.315), 0.14),
    "WV4": ((0.23, 0.23, 0.23, 0.23), 0.16),
    "GF2": ((0.3,), 0.15),
    "none": ((0.3,), 0.15),
}
"""Nyquist gains per sensor: (MS gains in band order, PAN gain). A one-element MS tuple is the
toolbox default and applies to every band, whatever their number."""

_ALIASES = {
    "quickbird": "QB",
    "geoeye": "GeoEye1",
    "ge1": "GeoEye1",
    "worldview2": "WV2",
    "worldview3": "WV3",
    "worldview4": "WV4",
    "gaofen2": "GF2",
    "default": "none",
}


def _key(name: str) -> str:
    """Case- and punctuation-insensitive form of a sensor name ('GeoEye-1' -> 'geoeye1')."""
    return "".join(ch for ch in name.lower() if ch.isalnum())


_CANONICAL = {_key(name): name for name in SENSOR_GAINS} | _ALIASES


def canonical_sensor(sensor: str) -> str:
    """Return the :data:`SENSOR_GAINS` key for ``sensor`` (case-insensitive, '-'/'_' ignored)."""
    if not isinstance(sensor, str):
        raise UserInputError(f"sensor must be a string such as 'WV3', got {sensor!r}")
    name = _CANONICAL.get(_key(sensor))
    if name is None:
        raise UserInputError(
            f"unknown sensor '{sensor}'{suggest(sensor, SENSOR_GAINS)}; "
            f"known: {', '.join(SENSOR_GAINS)} (use 'none' for the default gains 0.3 / 0.15)"
        )
    return name


def check_int(value: int, what: str, minimum: int) -> int:
    """Return ``value`` as an int if it is an integer >= ``minimum``, else raise UserInputError."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise UserInputError(f"{what} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _check_gain(gain: float, what: str) -> float:
    """Validate one Nyquist gain, which must lie strictly between 0 and 1."""
    value = float(gain)
    if not 0.0 < value < 1.0:
        raise UserInputError(f"{what} must be in (0, 1) (a Nyquist gain), got {gain}")
    return value


def sensor_gains(sensor: str, nbands: int, gains: Sequence[float] | None = None) -> tuple[list[float], float]:
    """MS Nyquist gains for ``nbands`` bands and the PAN gain of ``sensor``.

    ``gains`` (one per band, each in (0, 1)) overrides the sensor's MS table. Without it, a table
    longer than ``nbands`` is cut to its first ``nbands`` entries and a shorter one is refused,
    as in the toolbox (see the module docstring).
    """
    name = canonical_sensor(sensor)
    nbands = check_int(nbands, "nbands", 1)
    table, pan_gain = SENSOR_GAINS[name]
    if gains is not None:
        values = [_check_gain(g, f"gain of band {b}") for b, g in enumerate(gains)]
        if len(values) != nbands:
            raise UserInputError(
                f"got {len(values)} MS gains for an image with {nbands} bands; give one per band"
            )
        return values, pan_gain
    if len(table) == 1:
        return [table[0]] * nbands, pan_gain
    if nbands > len(table):
        raise UserInputError(
            f"sensor '{name}' has {len(table)} MS gains but the image has {nbands} bands; "
            "pass gains=[...] (one per band) or sensor='none' (0.3 for every band)"
        )
    return list(table[:nbands]), pan_gain


def _fspecial_gaussian(size: int, sigma: float) -> np.ndarray:
    """MATLAB ``fspecial('gaussian', size, sigma)``: size x size, sums to 1, tiny values zeroed."""
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    g = np.exp(-(x[:, None] ** 2 + x[None, :] ** 2) / (2.0 * sigma**2))
    g /= g.sum()
    g[g < np.finfo(np.float64).eps * g.max()] = 0.0
    return g


def _huang_window(size: int, beta: float) -> np.ndarray:
    """size x size circular window from the 1-D Kaiser window: value at radius t (grid -1..1)."""
    t = np.linspace(-1.0, 1.0, size)
    radius = np.hypot(t[:, None], t[None, :])
    inside = np.interp(radius, t, np.kaiser(size, beta))
    return np.where(radius <= 1.0, inside, 0.0)


def _fwind1(response: np.ndarray, beta: float) -> np.ndarray:
    """Window-method FIR design (MATLAB ``fwind1`` with a 1-D window); odd square sizes only.

    ``response``: desired frequency response, odd n x n, centred (zero frequency in the middle).
    Returns the real part of the n x n spatial kernel, centred.
    """
    kernel = np.fft.fftshift(np.fft.ifft2(np.fft.ifftshift(response)))
    return np.real(kernel) * _huang_window(response.shape[0], beta)


@lru_cache(maxsize=256)
def _kernel_one_band(ratio: int, gain: float, size: int) -> np.ndarray:
    """One size x size MTF kernel (float64) for Nyquist gain ``gain`` at scale ``ratio``."""
    alpha = np.sqrt(((size - 1) / (2.0 * ratio)) ** 2 / (-2.0 * np.log(gain)))
    gauss = _fspecial_gaussian(size, alpha)
    return _fwind1(gauss / gauss.max(), KAISER_BETA)


def mtf_kernel(ratio: int, gains: Sequence[float], size: int = KERNEL_SIZE) -> torch.Tensor:
    """MTF-matched kernels, float64 CPU tensor of shape len(gains) x size x size.

    ratio: integer resolution ratio (>= 1); gains: Nyquist gain per band, each in (0, 1);
    size: odd kernel side (41 in the toolbox). Reproduces ``real(genMTF(...))``.
    """
    ratio = check_int(ratio, "ratio", 1)
    if check_int(size, "kernel size", 3) % 2 == 0:
        raise UserInputError(f"kernel size must be odd (41 in the toolbox), got {size}")
    values = [_check_gain(g, f"gain of band {b}") for b, g in enumerate(gains)]
    if not values:
        raise UserInputError("gains is empty; give one Nyquist gain per band")
    bank = np.stack([_kernel_one_band(ratio, g, int(size)) for g in values])
    return torch.from_numpy(bank)


def sensor_kernel(sensor: str, ratio: int, nbands: int, gains: Sequence[float] | None = None) -> torch.Tensor:
    """MS kernels of ``sensor`` for ``nbands`` bands: nbands x 41 x 41 float64 (sensor_gains)."""
    return mtf_kernel(ratio, sensor_gains(sensor, nbands, gains)[0])


def pan_kernel(sensor: str, ratio: int, gain: float | None = None) -> torch.Tensor:
    """PAN kernel of ``sensor`` (or of an explicit Nyquist ``gain``): 1 x 41 x 41 float64."""
    pan_gain = SENSOR_GAINS[canonical_sensor(sensor)][1] if gain is None else gain
    return mtf_kernel(ratio, [pan_gain])
