"""DiCNN: detail injection with a three-layer CNN on the upsampled MS and the PAN.

L. He, Y. Rao, J. Li, J. Chanussot, A. Plaza, J. Zhu, B. Li, "Pansharpening via detail
injection based convolutional neural networks", IEEE Journal of Selected Topics in Applied
Earth Observations and Remote Sensing (JSTARS) 12(4), 2019.

fused = up + conv3x3(ReLU(conv3x3(ReLU(conv3x3(concat[up, guide]))))), 64 channels in both
hidden layers (the paper's DiCNN1): the network sees the upsampled bands next to the guide and
predicts only the detail to inject, while ``up`` added outside keeps the spectra. Every
convolution has a bias and zero padding 1, so the output has the input's size.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor, nn

from models import MODELS
from models.blocks import check_fusion_inputs
from utils.errors import UserInputError


@MODELS.register
class DiCNN(nn.Module):
    """DiCNN. forward(lr N x C x h x w (only checked), up N x C x H x W, guide N x Cg x H x W)
    -> fused N x C x H x W = up + learned detail, in the scale of ``up`` (about [0, 1]).

    width: channels of the two hidden layers (paper and reference 64). ``ratio`` is not used:
    ``up`` is already at H x W. Faithful to PanCollection's DiCNN (reproduces its outputs for
    given weights, tested); the reference takes a one-band PAN, and a multi-band guide here
    simply widens the first layer's input to C + Cg channels.
    """

    reference_names: ClassVar[dict[str, str]] = {"conv1": "body.0", "conv2": "body.2", "conv3": "body.4"}
    """PanCollection's state-dict names -> ours."""

    def __init__(self, lr_channels: int, guide_channels: int, ratio: int, width: int = 64):
        super().__init__()
        if width < 1:
            raise UserInputError(f"DiCNN width must be >= 1, got {width}; use the paper's 64")
        self.lr_channels = lr_channels
        self.guide_channels = guide_channels
        self.body = nn.Sequential(
            nn.Conv2d(lr_channels + guide_channels, width, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(width, width, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(width, lr_channels, 3, padding=1),
        )

    def forward(self, lr: Tensor, up: Tensor, guide: Tensor) -> Tensor:
        check_fusion_inputs(lr, up, guide, self.lr_channels, self.guide_channels)
        return up + self.body(torch.cat((up, guide), dim=1))
