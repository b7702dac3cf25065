"""LHSDR: low-frequency-driven high-frequency salient detail reconstruction.

Both modalities are encoded at full resolution, split by a Haar transform, their high-frequency
bands are fused per direction (HL, LH, HH) and integrated hierarchically, and the low-frequency
band drives the inverse transform back to a detail map D of width/4 channels at H x W.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from models.blocks import ConvPReLU, ResidualBlock
from models.haar import haar_analysis, haar_synthesis


class LHSDR(nn.Module):
    """Detail map from the upsampled image and the guide; seven residual blocks of ``width``.

    ll_fusion=False (the released model) uses the guide's LL band alone; ll_fusion=True adds the
    paper figure's learned fusion of both LL bands: conv1x1(concat[gLL, uLL], 2 width -> width).
    padding: how every 3x3 convolution pads (``models.blocks.PADDINGS``; 'zeros' as released).
    """

    def __init__(
        self, lr_channels: int, guide_channels: int, width: int, ll_fusion: bool, padding: str = "zeros"
    ):
        super().__init__()
        self.guide_head = ConvPReLU(guide_channels, width, padding)
        self.up_head = ConvPReLU(lr_channels, width, padding)
        self.guide_block = ResidualBlock(width, padding)
        self.up_block = ResidualBlock(width, padding)
        self.hl_block = ResidualBlock(width, padding)
        self.lh_block = ResidualBlock(width, padding)
        self.hh_block = ResidualBlock(width, padding)
        self.merge_hl_lh = ResidualBlock(width, padding)
        self.merge_hh = ResidualBlock(width, padding)
        self.ll_fuse = nn.Conv2d(2 * width, width, 1) if ll_fusion else None

    def forward(self, up: Tensor, guide: Tensor) -> Tensor:
        """up: N x C x H x W, guide: N x Cg x H x W -> D: N x width/4 x H x W."""
        g_ll, g_hl, g_lh, g_hh = haar_analysis(self.guide_block(self.guide_head(guide)))
        u_ll, u_hl, u_lh, u_hh = haar_analysis(self.up_block(self.up_head(up)))
        f_hl = self.hl_block(g_hl + u_hl)
        f_lh = self.lh_block(g_lh + u_lh)
        f_hh = self.hh_block(g_hh + u_hh)
        high = self.merge_hh(self.merge_hl_lh(f_hl + f_lh) + f_hh)
        low = g_ll if self.ll_fuse is None else self.ll_fuse(torch.cat((g_ll, u_ll), dim=1))
        return haar_synthesis(high + low, size=tuple(up.shape[-2:]))
