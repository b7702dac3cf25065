"""MSDCNN: a deep multi-scale branch and a shallow PNN-like branch, summed.

Q. Yuan, Y. Wei, X. Meng, H. Shen, L. Zhang, "A multiscale and multidepth convolutional neural
network for remote sensing imagery pan-sharpening", IEEE Journal of Selected Topics in Applied
Earth Observations and Remote Sensing (JSTARS) 11(3), 2018.

Both branches read x = concat[up, guide]:

- deep: ReLU(conv7x7 -> 60), multi-scale block (3 x 3, 5 x 5 and 7 x 7 convolutions of 20
  channels each, concatenated, plus the block input, ReLU), ReLU(conv3x3 -> 30), multi-scale
  block (3/5/7, 10 channels each), conv5x5 -> C;
- shallow: ReLU(conv9x9 -> 64), ReLU(conv1x1 -> 32), conv5x5 -> C;

and fused = ReLU(deep(x) + shallow(x)). Every convolution has a bias and zero "same" padding
(k // 2), so the output has the input's size; a guide pixel reaches 12 pixels away (the deep
branch: 3 + 3 + 1 + 3 + 2).
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor, nn

from models import MODELS
from models.blocks import check_fusion_inputs

MULTI_SCALE_KERNELS = (3, 5, 7)


class MultiScaleBlock(nn.Module):
    """ReLU(x + concat[conv3x3(x), conv5x5(x), conv7x7(x)]), each branch channels / 3 wide:
    N x channels x H x W -> same."""

    def __init__(self, channels: int):
        super().__init__()
        branch = channels // len(MULTI_SCALE_KERNELS)
        self.branches = nn.ModuleList(
            nn.Conv2d(channels, branch, k, padding=k // 2) for k in MULTI_SCALE_KERNELS
        )
        self.act = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        return self.act(x + torch.cat([branch(x) for branch in self.branches], dim=1))


def block_reference_names(reference: str, ours: str) -> dict[str, str]:
    """PanCollection's ``<reference>_1``..``_3`` (kernels 3, 5, 7) -> ``<ours>.branches.0``..``2``."""
    return {f"{reference}_{i + 1}": f"{ours}.branches.{i}" for i in range(len(MULTI_SCALE_KERNELS))}


@MODELS.register
class MSDCNN(nn.Module):
    """MSDCNN. forward(lr N x C x h x w (only checked), up N x C x H x W, guide N x Cg x H x W)
    -> fused N x C x H x W, in the scale of ``up`` (about [0, 1]) and never negative: the
    final ReLU clips the sum of the branches at 0 (with the oracle's random weights 37% of the
    outputs are exactly 0, and no gradient flows through those).

    residual: False (default, the reference): the network outputs the fused image itself, with
    no ``up`` added; True: ``up`` enters the final sum, fused = ReLU(up + deep + shallow), so the
    branches learn only the detail (as DiCNN or FusionNet do). ``up`` is added inside the ReLU
    because a non-negative detail added outside it could only brighten; the output stays
    non-negative, so where ``up`` is negative (bicubic overshoot) the output is 0. The layer
    widths are the paper's and fixed. ``ratio`` is not used: ``up`` is already at H x W.
    Faithful to PanCollection's MSDCNN with the default options (reproduces its outputs for
    given weights, tested); any band count and a multi-band guide widen the first layers' input
    to C + Cg channels and the last layers' output to C.
    """

    reference_names: ClassVar[dict[str, str]] = {
        "conv1": "deep.0",
        **block_reference_names("conv2", "deep.2"),
        "conv3": "deep.3",
        **block_reference_names("conv4", "deep.5"),
        "conv5": "deep.6",
        "shallow1": "shallow.0",
        "shallow2": "shallow.2",
        "shallow3": "shallow.4",
    }
    """PanCollection's state-dict names -> ours."""

    def __init__(self, lr_channels: int, guide_channels: int, ratio: int, residual: bool = False):
        super().__init__()
        self.lr_channels = lr_channels
        self.guide_channels = guide_channels
        self.residual = residual
        inputs = lr_channels + guide_channels
        self.deep = nn.Sequential(
            nn.Conv2d(inputs, 60, 7, padding=3),
            nn.ReLU(),
            MultiScaleBlock(60),
            nn.Conv2d(60, 30, 3, padding=1),
            nn.ReLU(),
            MultiScaleBlock(30),
            nn.Conv2d(30, lr_channels, 5, padding=2),
        )
        self.shallow = nn.Sequential(
            nn.Conv2d(inputs, 64, 9, padding=4),
            nn.ReLU(),
            nn.Conv2d(64, 32, 1),
            nn.ReLU(),
            nn.Conv2d(32, lr_channels, 5, padding=2),
        )

    def forward(self, lr: Tensor, up: Tensor, guide: Tensor) -> Tensor:
        check_fusion_inputs(lr, up, guide, self.lr_channels, self.guide_channels)
        x = torch.cat((up, guide), dim=1)
        out = self.deep(x) + self.shallow(x)
        return torch.relu(up + out if self.residual else out)
