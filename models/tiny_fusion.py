"""TinyFusion: the README's "add your own model" example (a few hundred parameters).

fused = up + conv3x3(ReLU(conv3x3(concat[up, guide]))). Drop a file like this one in models/,
decorate the class with ``@MODELS.register`` and name it in the YAML ``model:`` entry.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from models import MODELS


@MODELS.register
class TinyFusion(nn.Module):
    """Example model: lr N x C x h x w (unused), up N x C x H x W, guide N x Cg x H x W
    -> fused N x C x H x W, in the scale of ``up`` (about [0, 1])."""

    def __init__(self, lr_channels: int, guide_channels: int, ratio: int, hidden: int = 4):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(lr_channels + guide_channels, hidden, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(hidden, lr_channels, 3, padding=1),
        )

    def forward(self, lr: Tensor, up: Tensor, guide: Tensor) -> Tensor:
        return up + self.body(torch.cat((up, guide), dim=1))
