"""FusionNet: detail injection learned from the difference between the PAN and the upsampled MS.

L.-J. Deng, G. Vivone, C. Jin, J. Chanussot, "Detail injection-based deep convolutional neural
networks for pansharpening", IEEE TGRS 59(8):6995-7010, 2021, doi:10.1109/TGRS.2020.3031366.

fused = up + conv3x3(ResBlocks(ReLU(conv3x3(P - up)))), where P is the PAN replicated to the C
bands of ``up``: the network sees the detail a component-substitution / MRA method would inject
and learns the injection, while ``up`` outside the network keeps the spectra.

Multi-band guide (RGB or MS guiding an HS image): P = a learned 1 x 1 convolution of the guide to
C bands, initialised to the guide's band mean (so training starts from the "mean as PAN" variant).
A fixed band mean would subtract the same image from every HS band, although an RGB guide's
bands see different parts of the spectrum and each HS band correlates best with its own mix of
them (the per-band synthetic PAN of hypersharpening, Selva et al., IEEE JSTARS 2015); the
projection learns those mixes end to end for C (Cg + 1) parameters. A one-band guide is
replicated exactly as in the paper, with no extra parameters.
"""

from __future__ import annotations

from typing import ClassVar

from torch import Tensor, nn

from models import MODELS
from models.blocks import check_fusion_inputs
from models.pannet import residual_trunk, trunk_reference_names
from utils.errors import UserInputError


@MODELS.register
class FusionNet(nn.Module):
    """FusionNet. forward(lr N x C x h x w (only checked), up N x C x H x W, guide N x Cg x H x W)
    -> fused N x C x H x W = up + learned detail, in the scale of ``up`` (about [0, 1]).

    width: feature channels (paper 32); blocks: residual blocks (paper 4). ``ratio`` is not
    used: ``up`` is already at H x W. Faithful to PanCollection's FusionNet for a one-band guide
    (reproduces its outputs for given weights, tested).
    """

    reference_names: ClassVar[dict[str, str]] = trunk_reference_names(4)
    """PanCollection's state-dict names (4 blocks, as its FusionNet) -> ours."""

    def __init__(self, lr_channels: int, guide_channels: int, ratio: int, width: int = 32, blocks: int = 4):
        super().__init__()
        if width < 1 or blocks < 0:
            raise UserInputError(f"FusionNet needs width >= 1 and blocks >= 0, got {width} and {blocks}")
        self.lr_channels = lr_channels
        self.guide_channels = guide_channels
        self.projection: nn.Conv2d | None = None
        if guide_channels > 1:
            self.projection = nn.Conv2d(guide_channels, lr_channels, 1)
            nn.init.constant_(self.projection.weight, 1.0 / guide_channels)
            nn.init.zeros_(self.projection.bias)
        self.trunk = residual_trunk(lr_channels, lr_channels, width, blocks)

    def pan_per_band(self, guide: Tensor) -> Tensor:
        """The PAN seen by each band: guide N x Cg x H x W -> N x C x H x W."""
        if self.projection is None:
            return guide.expand(-1, self.lr_channels, -1, -1)
        return self.projection(guide)

    def forward(self, lr: Tensor, up: Tensor, guide: Tensor) -> Tensor:
        check_fusion_inputs(lr, up, guide, self.lr_channels, self.guide_channels)
        return up + self.trunk(self.pan_per_band(guide) - up)
