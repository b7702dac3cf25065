"""PNN: the three-layer pansharpening CNN of Masi, Cozzolino, Verdoliva and Scarpa.

G. Masi, D. Cozzolino, L. Verdoliva, G. Scarpa, "Pansharpening by convolutional neural
networks", Remote Sensing 8(7):594, 2016.

fused = conv5x5(ReLU(conv5x5(ReLU(conv9x9(concat[up, guide]))))), widths 64 and 32 as in the
paper. The paper trains on 33 x 33 patches with valid (unpadded) convolutions, so the output is
12 pixels smaller per side than the input, and pads images at test time; here every convolution
uses zero "same" padding, so the output has the input's size and no crop is needed.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from models import MODELS
from models.blocks import check_fusion_inputs
from utils.errors import UserInputError


@MODELS.register
class PNN(nn.Module):
    """PNN. forward(lr N x C x h x w (only checked), up N x C x H x W, guide N x Cg x H x W)
    -> fused N x C x H x W, in the scale of ``up`` (about [0, 1]).

    width: channels of the 9 x 9 layer (paper 64); mid_width: channels of the middle 5 x 5
    layer (paper 32); residual: add ``up`` to the output (False, as in the paper, where the
    network outputs the fused image directly). ``ratio`` is not used: ``up`` is already at H x W.
    """

    def __init__(
        self,
        lr_channels: int,
        guide_channels: int,
        ratio: int,
        width: int = 64,
        mid_width: int = 32,
        residual: bool = False,
    ):
        super().__init__()
        if width < 1 or mid_width < 1:
            raise UserInputError(f"PNN width and mid_width must be >= 1, got {width} and {mid_width}")
        self.lr_channels = lr_channels
        self.guide_channels = guide_channels
        self.residual = residual
        self.body = nn.Sequential(
            nn.Conv2d(lr_channels + guide_channels, width, 9, padding=4),
            nn.ReLU(),
            nn.Conv2d(width, mid_width, 5, padding=2),
            nn.ReLU(),
            nn.Conv2d(mid_width, lr_channels, 5, padding=2),
        )

    def forward(self, lr: Tensor, up: Tensor, guide: Tensor) -> Tensor:
        check_fusion_inputs(lr, up, guide, self.lr_channels, self.guide_channels)
        out = self.body(torch.cat((up, guide), dim=1))
        return up + out if self.residual else out
