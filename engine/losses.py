"""Training losses and their weighted composition from the option file.

``train.loss: [{name: L1, weight: 1.0}, {name: SAM, weight: 0.1}]`` builds
``1.0 * L1 + 0.1 * SAM``. Every loss is called as ``loss(fused, batch)``: the fused image
N x C x H x W (scaled data) and the training batch (``lr``, ``up``, ``guide`` and, in
reduced-resolution files, ``gt``, all scaled data); its class attribute ``needs`` names the batch
entries it reads, so that a loss that needs ``gt`` is refused for files without one. Keys of a
term besides ``name`` and ``weight`` are the loss's options (``{name: SpatialConsistency,
weight: 0.3, window: 4}``); a ``sensor`` option left out is the data's (``data.sensor``).

Multi-scale supervision: a model may list ``auxiliary_outputs`` (BDPN: ``fused_half`` at ratio
4, also ``fused_quarter`` at ratio 8), intermediate images that ``forward(lr, up, guide,
auxiliary=True)`` returns beside the fused one. A loss that needs such a name (``L1_half``,
``L1_quarter``) makes training ask the model for it in the same call and put it into the batch
(engine/evaluation.py ``fuse``); :func:`auxiliary_needs` refuses a loss whose model lacks it.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping

import torch
from torch import Tensor, nn

from engine.consistency import infer_ratio, spatial_distance, spatial_window, spectral_distance
from protocols.mtf import canonical_sensor, sensor_gains
from protocols.resize import imresize_matlab
from utils.errors import UserInputError
from utils.registry import Registry

LOSSES = Registry("loss")

DATA_ENTRIES = ("lr", "up", "guide", "gt")
"""Batch entries that come from the data files; any other entry a loss needs is a model output."""


@LOSSES.register(name="L1")
class L1Loss(nn.Module):
    """Mean absolute error against ``gt``."""

    needs = ("gt",)

    def forward(self, fused: Tensor, batch: Mapping[str, Tensor]) -> Tensor:
        return (fused - batch["gt"]).abs().mean()


@LOSSES.register(name="MSE")
class MSELoss(nn.Module):
    """Mean squared error against ``gt``."""

    needs = ("gt",)

    def forward(self, fused: Tensor, batch: Mapping[str, Tensor]) -> Tensor:
        return (fused - batch["gt"]).pow(2).mean()


@LOSSES.register(name="Charbonnier")
class CharbonnierLoss(nn.Module):
    """Mean of sqrt(e^2 + eps^2), e = fused - gt: L1 that is smooth at zero."""

    needs = ("gt",)

    def __init__(self, eps: float = 1e-3):
        super().__init__()
        self.eps = eps

    def forward(self, fused: Tensor, batch: Mapping[str, Tensor]) -> Tensor:
        return torch.sqrt((fused - batch["gt"]).pow(2) + self.eps**2).mean()


@LOSSES.register(name="SAM")
class SAMLoss(nn.Module):
    """Mean spectral angle to ``gt`` in radians (differentiable; pixels with zero norm count as 0)."""

    needs = ("gt",)

    def __init__(self, eps: float = 1e-8):
        super().__init__()
        self.eps = eps

    def forward(self, fused: Tensor, batch: Mapping[str, Tensor]) -> Tensor:
        gt = batch["gt"]
        dot = (fused * gt).sum(dim=1)
        norms = fused.norm(dim=1) * gt.norm(dim=1)
        cosine = (dot / (norms + self.eps)).clamp(-1 + 1e-7, 1 - 1e-7)
        return torch.acos(cosine).mean()


class ShrunkGtL1(nn.Module):
    """Mean absolute error of the auxiliary output ``entry`` (N x C x ceil(H/f) x ceil(W/f)) to
    ``gt`` shrunk by f = ``factor`` with MATLAB's antialiased bicubic ``imresize``.

    That shrink is sensor-free and centred on f x f blocks of gt, the cells of BDPN's max-pool
    and pixel-shuffle pyramid (the Wald protocol's decimation keeps one sample per block, off
    that centre by half a pixel at f = 2, and needs the sensor's MTF).
    """

    entry: str
    factor: int

    def forward(self, fused: Tensor, batch: Mapping[str, Tensor]) -> Tensor:
        target = imresize_matlab(batch["gt"], 1.0 / self.factor)
        return (batch[self.entry] - target).abs().mean()


@LOSSES.register(name="L1_half")
class HalfScaleL1(ShrunkGtL1):
    """L1 of the model's H/2 image ``fused_half`` against gt shrunk by 2 (BDPN, ratios 4, 8)."""

    needs = ("gt", "fused_half")
    entry, factor = "fused_half", 2


@LOSSES.register(name="L1_quarter")
class QuarterScaleL1(ShrunkGtL1):
    """L1 of the model's H/4 image ``fused_quarter`` against gt shrunk by 4 (BDPN, ratio 8)."""

    needs = ("gt", "fused_quarter")
    entry, factor = "fused_quarter", 4


class FullResolutionLoss(nn.Module):
    """A loss that needs no ``gt``, built on the MTF preset ``sensor`` (default: ``data.sensor``)
    or on one Nyquist gain per band (``gains``); :meth:`check` tests the preset on the data."""

    def __init__(self, sensor: str = "none", gains: list[float] | None = None):
        super().__init__()
        self.sensor = canonical_sensor(sensor)
        self.gains = None if gains is None else [float(g) for g in gains]

    def check(self, bands: int, ratio: int) -> None:
        """Refuse a preset without a gain for each of ``bands`` bands (one line)."""
        sensor_gains(self.sensor, bands, self.gains)


@LOSSES.register(name="SpectralConsistency")
class SpectralConsistencyLoss(FullResolutionLoss):
    """Full-resolution spectral consistency (Z-PNN): mean |D(fused) - lr|, D = the MTF filter and
    decimation of Wald's protocol (:func:`protocols.degrade.mtf_decimate`, the filters the data
    and the metrics use). Zero exactly when the fused image degrades to ``lr``."""

    needs = ("lr",)

    def forward(self, fused: Tensor, batch: Mapping[str, Tensor]) -> Tensor:
        return spectral_distance(fused, batch["lr"], self.sensor, self.gains).to(fused.dtype)


@LOSSES.register(name="SpatialConsistency")
class SpatialConsistencyLoss(FullResolutionLoss):
    """Full-resolution spatial consistency (Z-PNN): mean over bands and pixels of
    1 - rho(fused_b, guide), rho the correlation coefficient on ``window`` x ``window`` boxes
    (default 2 * ceil(ratio / 2)), counted only where it exceeds the threshold 1 - rho(up_b, guide
    low-passed by band b's MTF) on ``threshold_window`` boxes (``threshold: false``: everywhere).
    Zero when every fused band is an increasing affine function of the guide."""

    needs = ("lr", "up", "guide")

    def __init__(
        self,
        sensor: str = "none",
        gains: list[float] | None = None,
        window: int | None = None,
        threshold_window: int = 16,
        threshold: bool = True,
    ):
        super().__init__(sensor, gains)
        for key, value in (("window", window), ("threshold_window", threshold_window)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 2):
                raise UserInputError(
                    f"loss SpatialConsistency: option '{key}' must be an integer >= 2, got {value!r}"
                )
        self.window, self.threshold_window = window, threshold_window if threshold else None

    def forward(self, fused: Tensor, batch: Mapping[str, Tensor]) -> Tensor:
        ratio = infer_ratio(fused, batch["lr"])
        window = self.window or spatial_window(ratio)
        distance = spatial_distance(
            fused, batch["up"], batch["guide"], ratio, window, self.threshold_window, self.sensor, self.gains
        )
        return distance.to(fused.dtype)


def build_term(name: str, options: Mapping[str, object], defaults: Mapping[str, object]) -> nn.Module:
    """Loss ``name`` with ``options``, plus each of ``defaults`` it takes that ``options`` lacks."""
    parameters = inspect.signature(LOSSES.get(name)).parameters
    filled = {k: v for k, v in defaults.items() if k in parameters and k not in options}
    return LOSSES.build(name, **options, **filled)


class CompositeLoss(nn.Module):
    """Weighted sum of registered losses; ``parts`` of the last call are kept for logging.

    terms: (name, weight) or (name, weight, options); ``defaults`` (e.g. ``{'sensor': 'WV3'}``)
    fill the options a loss takes that its term does not set.
    """

    def __init__(self, terms: list[tuple], defaults: Mapping[str, object] | None = None):
        super().__init__()
        self.names = [term[0] for term in terms]
        self.weights = [term[1] for term in terms]
        self.losses = nn.ModuleList(
            build_term(term[0], term[2] if len(term) > 2 else {}, defaults or {}) for term in terms
        )
        # a name given twice (e.g. two windows of one loss) is logged as name_1, name_2
        self.labels = [
            n if self.names.count(n) == 1 else f"{n}_{self.names[: i + 1].count(n)}"
            for i, n in enumerate(self.names)
        ]
        self.parts: dict[str, float] = {}

    @property
    def needs(self) -> set[str]:
        """The batch entries any of the terms reads."""
        return {key for loss in self.losses for key in loss.needs}

    def needing(self, key: str) -> list[str]:
        """The names of the terms that read batch entry ``key``."""
        return [n for n, loss in zip(self.names, self.losses, strict=True) if key in loss.needs]

    def check(self, bands: int, ratio: int) -> None:
        """Refuse, in one line, a term that cannot work on data of ``bands`` bands at ``ratio``."""
        for loss in self.losses:
            if hasattr(loss, "check"):
                loss.check(bands, ratio)

    def forward(self, fused: Tensor, batch: Mapping[str, Tensor]) -> Tensor:
        values = [loss(fused, batch) for loss in self.losses]
        self.parts = {n: float(v.detach()) for n, v in zip(self.labels, values, strict=True)}
        return sum(w * v for w, v in zip(self.weights, values, strict=True))


def auxiliary_needs(loss: CompositeLoss, model: nn.Module, model_name: str) -> tuple[str, ...]:
    """The auxiliary outputs of ``model`` that the terms of ``loss`` read (in the model's order).

    A term that needs an entry which is neither data (``DATA_ENTRIES``) nor one of the model's
    ``auxiliary_outputs`` is refused with a one-line UserInputError, before any training.
    """
    offered = tuple(getattr(model, "auxiliary_outputs", ()))
    for name, term in zip(loss.names, loss.losses, strict=True):
        missing = [e for e in term.needs if e not in DATA_ENTRIES and e not in offered]
        if missing:
            has = f"its auxiliary outputs: {', '.join(offered)}" if offered else "it has no auxiliary output"
            raise UserInputError(
                f"option 'train.loss' term {name} needs the model output '{missing[0]}', which "
                f"{model_name} does not produce here ({has}): remove the term, or train a model "
                "that has it (BDPN at ratio 4 or 8 has fused_half; at ratio 8 also fused_quarter)"
            )
    return tuple(e for e in offered if e in loss.needs)
