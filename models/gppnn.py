"""GPPNN: a deep unfolding of gradient projection for the two observation models of pansharpening.

S. Xu, J. Zhang, Z. Zhao, K. Sun, J. Liu, C. Zhang, "Deep gradient projection networks for
pan-sharpening", CVPR 2021 (reference code: github.com/shuangxu96/GPPNN, models/GPPNN.py).

The fused image X is refined by ``n_layer`` pairs of blocks, each a learned gradient step on one
observation model followed by a learned proximal operator:

- MS block (the reference's ``LRBlock``), MS = down(A(X)):
  X <- prox(X + up(B(lr - down(A(X))))), A, B, prox conv3x3-ReLU-conv3x3 units;
- PAN block, PAN = P(X): X <- prox(X + B(guide - P(X))), with P (C -> Cg bands), B (Cg -> C) and
  prox conv1x1-ReLU-conv1x1 units.

Every convolution has no bias. ``up`` and ``down`` are PyTorch bicubic interpolation with
``align_corners=True`` (no antialias) to the explicit size of the other image, and the initial X
is that enlargement of ``lr``, exactly as the reference; since every resampling targets an
explicit size, sizes where H is not ratio x h work unchanged and ``ratio`` is only checked.
The output is X itself: there is no external residual.
"""

from __future__ import annotations

from typing import ClassVar

import torch.nn.functional as F
from torch import Tensor, nn

from models import MODELS
from models.blocks import check_fusion_inputs, checked_ratio
from utils.errors import UserInputError

REFERENCE_LAYERS = 8
"""n_layer of the reference configuration, GPPNN(8, 1, 64, 8): the layers ``reference_names`` covers."""


def resize(x: Tensor, size: tuple[int, int]) -> Tensor:
    """GPPNN's resampling: bicubic (a = -0.75), align_corners=True, to an explicit size, up or down."""
    return F.interpolate(x, size=tuple(size), mode="bicubic", align_corners=True)


def basic_unit(in_channels: int, features: int, out_channels: int, kernel_size: int) -> nn.Sequential:
    """conv k x k (in -> features) -> ReLU -> conv k x k (features -> out), no bias, 'same' zero padding."""
    pad = kernel_size // 2
    return nn.Sequential(
        nn.Conv2d(in_channels, features, kernel_size, padding=pad, bias=False),
        nn.ReLU(),
        nn.Conv2d(features, out_channels, kernel_size, padding=pad, bias=False),
    )


class MSBlock(nn.Module):
    """The MS observation step (reference ``LRBlock``): X N x C x H x W, lr N x C x h x w -> X'."""

    def __init__(self, channels: int, features: int):
        super().__init__()
        self.get_lr = basic_unit(channels, features, channels, 3)
        self.get_hr_residual = basic_unit(channels, features, channels, 3)
        self.prox = basic_unit(channels, features, channels, 3)

    def forward(self, hr: Tensor, lr: Tensor) -> Tensor:
        lr_residual = lr - resize(self.get_lr(hr), lr.shape[-2:])
        return self.prox(hr + resize(self.get_hr_residual(lr_residual), hr.shape[-2:]))


class PANBlock(nn.Module):
    """The guide observation step: X N x C x H x W, guide N x Cg x H x W -> X' (1 x 1 units)."""

    def __init__(self, channels: int, guide_channels: int, features: int):
        super().__init__()
        self.get_pan = basic_unit(channels, features, guide_channels, 1)
        self.get_hr_residual = basic_unit(guide_channels, features, channels, 1)
        self.prox = basic_unit(channels, features, channels, 1)

    def forward(self, hr: Tensor, guide: Tensor) -> Tensor:
        return self.prox(hr + self.get_hr_residual(guide - self.get_pan(hr)))


def gppnn_reference_names(layers: int) -> dict[str, str]:
    """The reference's names of ``layers`` block pairs -> ours: ``lr_blocks.i.get_LR.basic_unit``
    -> ``ms_blocks.i.get_lr`` and so on (``basic_unit`` is our Sequential itself)."""
    names = {}
    for i in range(layers):
        for ref, ours in (("get_LR", "get_lr"), ("get_HR_residual", "get_hr_residual"), ("prox", "prox")):
            names[f"lr_blocks.{i}.{ref}.basic_unit"] = f"ms_blocks.{i}.{ours}"
        for ref, ours in (("get_PAN", "get_pan"), ("get_HR_residual", "get_hr_residual"), ("prox", "prox")):
            names[f"pan_blocks.{i}.{ref}.basic_unit"] = f"pan_blocks.{i}.{ours}"
    return names


@MODELS.register
class GPPNN(nn.Module):
    """GPPNN. forward(lr N x C x h x w, up N x C x H x W (unused), guide N x Cg x H x W)
    -> fused N x C x H x W, in the scale of ``lr`` (about [0, 1]).

    ``up`` is checked but not used: GPPNN's gradient steps compare against ``lr`` through its own
    bicubic (align_corners=True) down- and upsampling, and its initial estimate is that same
    enlargement of ``lr``, not the framework's ``up`` (made with another interpolation); using
    ``up`` would change the network. n_feat: features inside every unit (paper 64); n_layer: MS/PAN
    block pairs (paper 8). Faithful to the reference (reproduces its outputs for given weights,
    tested), which already takes any band counts; a multi-band guide needs nothing new (the PAN
    block predicts all Cg guide bands). The reference's training
    script also divides each sample of lr and guide by its own maximum before the call; that
    input normalisation is not part of the network and is not done here (our data are scaled).
    """

    reference_names: ClassVar[dict[str, str]] = gppnn_reference_names(REFERENCE_LAYERS)
    """The reference's state-dict names (its 8 layers) -> ours; gppnn_reference_names(n) for others."""

    def __init__(self, lr_channels: int, guide_channels: int, ratio: int, n_feat: int = 64, n_layer: int = 8):
        super().__init__()
        checked_ratio("GPPNN", ratio)
        if n_feat < 1 or n_layer < 1:
            raise UserInputError(f"GPPNN needs n_feat >= 1 and n_layer >= 1, got {n_feat} and {n_layer}")
        self.lr_channels = lr_channels
        self.guide_channels = guide_channels
        self.ms_blocks = nn.ModuleList(MSBlock(lr_channels, n_feat) for _ in range(n_layer))
        self.pan_blocks = nn.ModuleList(PANBlock(lr_channels, guide_channels, n_feat) for _ in range(n_layer))

    def forward(self, lr: Tensor, up: Tensor, guide: Tensor) -> Tensor:
        check_fusion_inputs(lr, up, guide, self.lr_channels, self.guide_channels)
        hr = resize(lr, guide.shape[-2:])
        for ms_block, pan_block in zip(self.ms_blocks, self.pan_blocks, strict=True):
            hr = pan_block(ms_block(hr, lr), guide)
        return hr
