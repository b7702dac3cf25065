"""Run a model over a dataset and score it with the toolbox's indices at digital-number scale."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from data.datasets import FusionH5Dataset
from metrics import full_resolution_report, reduced_resolution_report
from metrics.report import largest_cut, mean_std
from utils.errors import UserInputError

BatchHook = Callable[[dict, torch.Tensor], None]
"""Called as ``hook(batch, fused)`` for each evaluated batch (e.g. to keep or save images)."""


def to_device(batch: dict, device: torch.device) -> dict:
    """Move the tensors of a batch to ``device``."""
    return {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}


def fuse(model: nn.Module, batch: dict, auxiliary: Sequence[str] = ()) -> torch.Tensor:
    """The model's fused image for a batch (N x C x H x W, scaled data).

    auxiliary: names among the model's ``auxiliary_outputs`` that a training loss reads; they
    come from the same call through ``forward`` (so that DistributedDataParallel synchronises
    their gradients) and are stored in ``batch`` under their names.
    """
    if not auxiliary:
        return model(batch["lr"], batch["up"], batch["guide"])
    fused, extras = model(batch["lr"], batch["up"], batch["guide"], auxiliary=True)
    batch.update({name: extras[name] for name in auxiliary})
    return fused


def as_pan(guide: torch.Tensor) -> torch.Tensor:
    """The single-band image the full-resolution D_s compares with: the guide, or its band mean."""
    return guide if guide.shape[1] == 1 else guide.mean(dim=1, keepdim=True)


@dataclass
class Scores:
    """Per-image indices of one test file, plus the time spent in the model."""

    values: dict[str, list[float]] = field(default_factory=dict)
    seconds: list[float] = field(default_factory=list)

    def add(self, report: dict[str, torch.Tensor]) -> None:
        for key, value in report.items():
            self.values.setdefault(key, []).extend(value.detach().double().cpu().tolist())

    def mean(self) -> dict[str, float]:
        """Per index: the mean over the images, in float64."""
        return {k: mean_std(v)[0] for k, v in self.values.items()}

    def std(self) -> dict[str, float]:
        """Per index: the sample std (N - 1, as MATLAB's ``std``); NaN for a single image."""
        return {k: mean_std(v)[1] for k, v in self.values.items()}


def score_batch(
    fused: torch.Tensor,
    batch: dict,
    scale: float,
    ratio: int,
    dim_cut: int,
    sensor: str,
) -> dict[str, torch.Tensor]:
    """Reduced-resolution indices when the batch has ``gt``, full-resolution ones otherwise."""
    fused_dn = fused.double() * scale
    if "gt" in batch:
        gt_dn = batch["gt"].double() * scale
        return reduced_resolution_report(fused_dn, gt_dn, ratio, dim_cut=dim_cut)
    return full_resolution_report(
        fused_dn,
        batch["lr"].double() * scale,
        as_pan(batch["guide"]).double() * scale,
        ratio,
        sensor=sensor,
        ms_up=batch["up"].double() * scale,
    )


@torch.no_grad()
def evaluate(
    model: nn.Module | None,
    batches: Iterable[dict],
    device: torch.device,
    scale: float,
    ratio: int,
    dim_cut: int = 0,
    sensor: str = "none",
    on_batch: BatchHook | None = None,
) -> Scores:
    """Score ``model`` (``None`` scores the upsampled input ``up`` itself) on every batch.

    ``on_batch(batch, fused)`` is called for each batch (on the model's device), e.g. to keep
    images for display or to save the fused images.
    """
    scores = Scores()
    if model is not None:
        model.eval()
    for batch in batches:
        batch = to_device(batch, device)
        start = time.perf_counter()
        fused = batch["up"] if model is None else fuse(model, batch)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        elapsed = time.perf_counter() - start
        scores.seconds.extend([elapsed / fused.shape[0]] * fused.shape[0])
        scores.add(score_batch(fused, batch, scale, ratio, dim_cut, sensor))
        if on_batch is not None:
            on_batch(batch, fused)
    return scores


def check_dim_cut(dataset: FusionH5Dataset, dim_cut: int, key: str) -> None:
    """Refuse a reduced-resolution file whose images the border cut (option ``key``) would empty:
    checked when the file is opened, before a run folder exists."""
    side = min(dataset.size)
    if dim_cut > largest_cut(side):
        raise UserInputError(
            f"option '{key}' is {dim_cut} but '{dataset.path}' has images of {dataset.size[0]}x"
            f"{dataset.size[1]}, which that cut empties: set {key} to at most {largest_cut(side)}, or 0"
        )
