"""PanNet: pansharpening in the high-pass domain with a residual network.

J. Yang, X. Fu, Y. Hu, Y. Huang, X. Ding, J. Paisley, "PanNet: A deep network architecture for
pan-sharpening", ICCV 2017.

fused = up + conv3x3(ResBlocks(ReLU(conv3x3(concat[deconv(hp(lr)), hp(guide)])))), where
hp(x) = x - box5x5(x) keeps the spatial detail (the 5 x 5 box filter of the reference data
pipeline, OpenCV's ``boxFilter`` with its default border: reflection without repeating the edge
pixel, ``reflect`` in PyTorch) and ``deconv`` is a learned transposed convolution that
enlarges by exactly ``ratio``. Adding ``up`` outside the network preserves the spectra; the
network only predicts the missing detail. A multi-band guide is high-passed band by band.
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from models import MODELS
from models.blocks import check_fusion_inputs, checked_ratio
from utils.errors import UserInputError

HIGHPASS_BORDERS = ("reflect", "replicate")


def box_highpass(x: Tensor, size: int, border: str = "reflect") -> Tensor:
    """x minus its size x size box-filtered version, N x C x H x W -> same.

    border 'reflect': mirrored without repeating the edge pixel (OpenCV's default, as PanNet's
    reference pipeline; an image of at most size // 2 pixels is replicated instead); 'replicate':
    the edge pixel repeated. A constant image gives exactly zero; ``size`` must be odd so that
    the output is centred.
    """
    pad = size // 2
    mode = "reflect" if border == "reflect" and min(x.shape[-2:]) > pad else "replicate"
    low = F.avg_pool2d(F.pad(x, (pad, pad, pad, pad), mode=mode), size, stride=1)
    return x - low


def upsampling_deconv(channels: int, ratio: int) -> nn.ConvTranspose2d:
    """Transposed conv, N x channels x h x w -> N x channels x (ratio h) x (ratio w), any ratio >= 2.

    Kernel 2 ratio, stride ratio, padding ceil(ratio / 2), output padding ratio mod 2:
    (h - 1) ratio - 2 ceil(ratio / 2) + 2 ratio + ratio mod 2 = ratio h (kernel 8, padding 2 for 4).
    """
    return nn.ConvTranspose2d(
        channels, channels, 2 * ratio, stride=ratio, padding=(ratio + 1) // 2, output_padding=ratio % 2
    )


def fit_size(x: Tensor, size: tuple[int, int]) -> Tensor:
    """Crop (bottom/right) or replicate-pad ``x`` N x C x h x w to N x C x size[0] x size[1].

    The data's lr is ceil(H / ratio) pixels, anchored at the top-left corner, so its enlargement
    can overhang H by up to ratio - 1 pixels; those rows and columns are cut.
    """
    x = x[..., : size[0], : size[1]]
    short = (size[1] - x.shape[-1], size[0] - x.shape[-2])
    return F.pad(x, (0, short[0], 0, short[1]), mode="replicate") if any(short) else x


class ReLUResBlock(nn.Module):
    """x + conv3x3(ReLU(conv3x3(x))), width preserved: N x C x H x W -> same."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.act = nn.ReLU()
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv2(self.act(self.conv1(x)))


def residual_trunk(in_channels: int, out_channels: int, width: int, blocks: int) -> nn.Sequential:
    """conv3x3 -> width, ReLU, ``blocks`` ReLUResBlocks, conv3x3 -> out_channels (the detail)."""
    return nn.Sequential(
        nn.Conv2d(in_channels, width, 3, padding=1),
        nn.ReLU(),
        *(ReLUResBlock(width) for _ in range(blocks)),
        nn.Conv2d(width, out_channels, 3, padding=1),
    )


def trunk_reference_names(blocks: int) -> dict[str, str]:
    """PanCollection's names of a ``residual_trunk`` -> ours: ``conv1``, ``res1``..``resB`` (also
    registered as ``backbone.0``..) with ``conv20``/``conv21`` inside, ``conv3``."""
    names = {"conv1": "trunk.0", "conv3": f"trunk.{blocks + 2}"}
    for i in range(blocks):
        for alias in (f"res{i + 1}", f"backbone.{i}"):
            names[f"{alias}.conv20"] = f"trunk.{i + 2}.conv1"
            names[f"{alias}.conv21"] = f"trunk.{i + 2}.conv2"
    return names


@MODELS.register
class PanNet(nn.Module):
    """PanNet. forward(lr N x C x h x w, up N x C x H x W, guide N x Cg x H x W)
    -> fused N x C x H x W = up + learned detail, in the scale of ``up`` (about [0, 1]).

    width: feature channels (paper 32); blocks: residual blocks (paper 4); highpass_size: odd
    side of the box filter whose output is subtracted to get the high-pass inputs (5);
    highpass_border: how that filter extends the image, 'reflect' (default, the reference's) or
    'replicate' (before the oracle check; ``LEGACY_DEFAULTS`` rebuilds older checkpoints with it).
    Faithful to PanCollection's PanNet (reproduces its outputs for given weights, tested): the
    high-pass is taken inside the network, from ``lr`` and ``guide``, where the reference's data
    pipeline feeds it precomputed; fit_size only acts when H is not ratio x h.
    """

    reference_names: ClassVar[dict[str, str]] = {"deconv": "deconv", **trunk_reference_names(4)}
    """PanCollection's state-dict names (4 blocks, as its PanNet) -> ours."""

    LEGACY_DEFAULTS = {"highpass_border": "replicate"}

    def __init__(
        self,
        lr_channels: int,
        guide_channels: int,
        ratio: int,
        width: int = 32,
        blocks: int = 4,
        highpass_size: int = 5,
        highpass_border: str = "reflect",
    ):
        super().__init__()
        ratio = checked_ratio("PanNet", ratio)
        if width < 1 or blocks < 0:
            raise UserInputError(f"PanNet needs width >= 1 and blocks >= 0, got {width} and {blocks}")
        if highpass_size < 3 or highpass_size % 2 == 0:
            raise UserInputError(f"PanNet highpass_size must be odd and >= 3, got {highpass_size}")
        if highpass_border not in HIGHPASS_BORDERS:
            raise UserInputError(
                f"PanNet highpass_border must be 'reflect' or 'replicate', got '{highpass_border}'"
            )
        self.lr_channels = lr_channels
        self.guide_channels = guide_channels
        self.highpass_size = highpass_size
        self.highpass_border = highpass_border
        self.deconv = upsampling_deconv(lr_channels, ratio)
        self.trunk = residual_trunk(lr_channels + guide_channels, lr_channels, width, blocks)

    def forward(self, lr: Tensor, up: Tensor, guide: Tensor) -> Tensor:
        check_fusion_inputs(lr, up, guide, self.lr_channels, self.guide_channels)
        lr_detail = fit_size(
            self.deconv(box_highpass(lr, self.highpass_size, self.highpass_border)), up.shape[-2:]
        )
        guide_detail = box_highpass(guide, self.highpass_size, self.highpass_border)
        return up + self.trunk(torch.cat((lr_detail, guide_detail), dim=1))
