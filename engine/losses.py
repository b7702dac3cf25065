"""Training losses and their weighted composition from the option file.

``train.loss: [{name: L1, weight: 1.0}, {name: SAM, weight: 0.1}]`` builds
``1.0 * L1 + 0.1 * SAM``. Every loss takes ``fused`` and ``gt`` (N x C x H x W, scaled data).
"""

from __future__ import annotations

import torch
from torch import nn

from utils.registry import Registry

LOSSES = Registry("loss")


@LOSSES.register(name="L1")
class L1Loss(nn.Module):
    """Mean absolute error."""

    def forward(self, fused: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
        return (fused - gt).abs().mean()


@LOSSES.register(name="MSE")
class MSELoss(nn.Module):
    """Mean squared error."""

    def forward(self, fused: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
        return (fused - gt).pow(2).mean()


@LOSSES.register(name="Charbonnier")
class CharbonnierLoss(nn.Module):
    """Mean of sqrt(e^2 + eps^2): L1 that is smooth at zero."""

    def __init__(self, eps: float = 1e-3):
        super().__init__()
        self.eps = eps

    def forward(self, fused: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
        return torch.sqrt((fused - gt).pow(2) + self.eps**2).mean()


@LOSSES.register(name="SAM")
class SAMLoss(nn.Module):
    """Mean spectral angle in radians (differentiable; pixels with zero norm count as 0)."""

    def __init__(self, eps: float = 1e-8):
        super().__init__()
        self.eps = eps

    def forward(self, fused: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
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

    def forward(self, fused: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
        values = [loss(fused, gt) for loss in self.losses]
        self.parts = {n: float(v.detach()) for n, v in zip(self.names, values, strict=True)}
        return sum(w * v for w, v in zip(self.weights, values, strict=True))
