"""Training losses and their weighted composition from the option file.

``train.loss: [{name: L1, weight: 1.0}, {name: SAM, weight: 0.1}]`` builds
``1.0 * L1 + 0.1 * SAM``. Every loss is called as ``loss(fused, batch)``: the fused image
N x C x H x W (scaled data) and the training batch (``lr``, ``up``, ``guide`` and, in
reduced-resolution files, ``gt``, all scaled data); its class attribute ``needs`` names the batch
entries it reads, so that a loss that needs ``gt`` is refused for files without one.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from utils.registry import Registry

LOSSES = Registry("loss")


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


class CompositeLoss(nn.Module):
    """Weighted sum of registered losses; ``parts`` of the last call are kept for logging."""

    def __init__(self, terms: list[tuple[str, float]]):
        super().__init__()
        self.names = [name for name, _ in terms]
        self.weights = [weight for _, weight in terms]
        self.losses = nn.ModuleList(LOSSES.build(name) for name in self.names)
        self.parts: dict[str, float] = {}

    @property
    def needs(self) -> set[str]:
        """The batch entries any of the terms reads."""
        return {key for loss in self.losses for key in loss.needs}

    def forward(self, fused: Tensor, batch: Mapping[str, Tensor]) -> Tensor:
        values = [loss(fused, batch) for loss in self.losses]
        self.parts = {n: float(v.detach()) for n, v in zip(self.names, values, strict=True)}
        return sum(w * v for w, v in zip(self.weights, values, strict=True))
