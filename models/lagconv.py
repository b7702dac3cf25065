"""LAGConv: local-context adaptive convolution kernels with a global harmonic bias.

Z.-R. Jin, T.-J. Zhang, T.-X. Jiang, G. Vivone, L.-J. Deng, "LAGConv: Local-context adaptive
convolution kernels with global harmonic bias for pansharpening", AAAI 2022 (reference code:
github.com/liangjiandeng/LAGConv, model.py, ``LACNET``).

Every layer is a local-adaptive k x k convolution (``LAConv2d``): a small branch predicts k^2
weights per pixel, which scale the matching taps of the zero-padded k x k neighbourhood (the same
weight for every input channel), then the layer's kernel is applied, and a second branch adds a
bias per sample and output channel from the globally pooled input. The network is
fused = up + tail(ResBlocks(ReLU(head(concat[guide, up])))), guide first as the reference.
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from models import MODELS
from models.blocks import check_fusion_inputs, checked_ratio
from utils.errors import UserInputError


class LAConv2d(nn.Module):
    """Local-adaptive k x k convolution, stride 1, zero padding k // 2: N x n x H x W -> N x m x H x W.

    y[o, p] = sum_{c, t} weight[o, c, t] a[t, p] x_pad[c, p + t] + g[o], where
    a = tap_attention(x) N x k^2 x H x W (conv k x k -> ReLU -> 1x1 -> ReLU -> 1x1 -> sigmoid)
    and g = global_bias(x) N x m x 1 x 1 (global mean -> 1x1 -> ReLU -> 1x1). The reference
    unfolds x (N x n k^2 x HW), scales each tap and contracts with ``weight``; since a tap's weight
    is shared by all input channels, the same sum is computed here tap by tap,
    y = g + sum_t a_t * conv1x1(x shifted by t, weight[:, :, t]): no k^2-fold copy of the input,
    about half the memory kept for backward and twice as fast on the CPU (same values, float64
    tested). ``weight`` has no bias of its own (the reference takes it from a convolution whose
    bias it discards) and PyTorch's default convolution initialisation.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3):
        super().__init__()
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise UserInputError(f"LAConv2d needs an odd kernel_size, got {kernel_size}")
        self.kernel_size = kernel_size
        taps = kernel_size**2
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, kernel_size, kernel_size))
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))  # nn.Conv2d's default
        self.tap_attention = nn.Sequential(
            nn.Conv2d(in_channels, taps, kernel_size, padding=kernel_size // 2),
            nn.ReLU(),
            nn.Conv2d(taps, taps, 1),
            nn.ReLU(),
            nn.Conv2d(taps, taps, 1),
            nn.Sigmoid(),
        )
        self.global_bias = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(in_channels, out_channels, 1),
            nn.ReLU(),
            nn.Conv2d(out_channels, out_channels, 1),
        )

    def forward(self, x: Tensor) -> Tensor:
        h, w = x.shape[-2:]
        k = self.kernel_size
        tap_weights = self.tap_attention(x)  # N x k^2 x H x W, taps row-major as the kernel's
        padded = F.pad(x, (k // 2,) * 4)
        out = self.global_bias(x)  # N x m x 1 x 1, broadcast by the first tap
        for tap in range(k * k):
            dy, dx = divmod(tap, k)
            response = F.conv2d(
                padded[..., dy : dy + h, dx : dx + w], self.weight[:, :, dy : dy + 1, dx : dx + 1]
            )
            out = torch.addcmul(out, tap_weights[:, tap : tap + 1], response)
        return out


class LACResBlock(nn.Module):
    """x + LAConv(ReLU(LAConv(x))), width preserved (the reference's ``LACRB``)."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = LAConv2d(channels, channels)
        self.act = nn.ReLU()
        self.conv2 = LAConv2d(channels, channels)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv2(self.act(self.conv1(x)))


REFERENCE_BLOCKS = 5


def lagconv_reference_names(blocks: int) -> dict[str, str]:
    """The reference's names -> ours: ``head_conv.0`` -> ``head``, ``RB1``.. -> ``blocks.0``..,
    ``tail_conv`` -> ``tail``; inside each layer ``attention1`` -> ``tap_attention`` and
    ``attention3`` -> ``global_bias`` (``weight`` and the Sequential indices are kept)."""
    layers = {"head_conv.0": "head", "tail_conv": "tail"}
    for i in range(blocks):
        for conv in ("conv1", "conv2"):
            layers[f"RB{i + 1}.{conv}"] = f"blocks.{i}.{conv}"
    names = dict(layers)
    for ref, ours in layers.items():
        names[f"{ref}.attention1"] = f"{ours}.tap_attention"
        names[f"{ref}.attention3"] = f"{ours}.global_bias"
    return names


@MODELS.register
class LAGConv(nn.Module):
    """LAGConv (the reference's LACNET). forward(lr N x C x h x w (only checked), up N x C x H x W,
    guide N x Cg x H x W) -> fused N x C x H x W = up + learned detail, in the scale of ``up``.

    width: feature channels (paper 32); blocks: residual blocks (paper 5). The head sees
    concat[guide, up] (Cg + C channels, guide first as the reference); ``ratio`` is only checked
    (``up`` is already at H x W). Faithful to the reference, which is fixed to 8 bands and a PAN
    (reproduces its outputs for given weights, tested); the deliberate generalisation is any
    band count and any guide band count (the head takes Cg + C channels, the tail gives C).
    """

    reference_names: ClassVar[dict[str, str]] = lagconv_reference_names(REFERENCE_BLOCKS)
    """The reference's state-dict names (its 5 blocks) -> ours."""

    def __init__(self, lr_channels: int, guide_channels: int, ratio: int, width: int = 32, blocks: int = 5):
        super().__init__()
        checked_ratio("LAGConv", ratio)
        if width < 1 or blocks < 0:
            raise UserInputError(f"LAGConv needs width >= 1 and blocks >= 0, got {width} and {blocks}")
        self.lr_channels = lr_channels
        self.guide_channels = guide_channels
        self.head = LAConv2d(guide_channels + lr_channels, width)
        self.act = nn.ReLU()
        self.blocks = nn.Sequential(*(LACResBlock(width) for _ in range(blocks)))
        self.tail = LAConv2d(width, lr_channels)

    def forward(self, lr: Tensor, up: Tensor, guide: Tensor) -> Tensor:
        check_fusion_inputs(lr, up, guide, self.lr_channels, self.guide_channels)
        features = self.act(self.head(torch.cat((guide, up), dim=1)))
        return up + self.tail(self.blocks(features))
