"""BDPN: a bidirectional pyramid that injects PAN detail into the MS image level by level.

Y. Zhang, C. Liu, M. Sun, Y. Ou, "Pan-sharpening using an efficient bidirectional pyramid
network", IEEE TGRS 57(8):5549-5563, 2019.

Two pyramids run in opposite directions. The guide branch goes from fine to coarse: a 3x3
convolution to ``width`` features, then at each level a trunk of PReLU residual blocks with a
long skip (features + blocks(features)), 2 x 2 max pooling between levels, and after every
level one shared 3x3 convolution that turns the features into C bands of detail. The lr branch
goes from coarse to fine: at each level a 3x3 convolution to 4 C channels and a pixel shuffle by
2 double the image, and the detail of that level is added. A ratio of 2^L has L levels; the
intermediate images (H/2, H/4, ...) are the auxiliary outputs a multi-scale loss supervises.
"""

from __future__ import annotations

from typing import ClassVar

import torch.nn.functional as F
from torch import Tensor, nn

from models import MODELS
from models.blocks import check_fusion_inputs
from utils.errors import UserInputError

LEVELS_OF_RATIO = {2: 1, 4: 2, 8: 3}
"""Supported ratios -> pyramid levels (one level per factor 2)."""

AUXILIARY_NAMES = ("fused_half", "fused_quarter")
"""Names of the intermediate images, finest first: H/2 x W/2, then H/4 x W/4."""


class PReLUResBlock(nn.Module):
    """x + conv3x3(PReLU(conv3x3(x))), one PReLU slope per block (initial 0.2, as the
    reference): N x C x H x W -> same."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.act = nn.PReLU(num_parameters=1, init=0.2)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv2(self.act(self.conv1(x)))


class LongSkipTrunk(nn.Module):
    """x + blocks(x) with ``blocks`` PReLUResBlocks: N x C x H x W -> same."""

    def __init__(self, channels: int, blocks: int):
        super().__init__()
        self.blocks = nn.Sequential(*(PReLUResBlock(channels) for _ in range(blocks)))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.blocks(x)


def bdpn_reference_names(blocks: int = 10) -> dict[str, str]:
    """PanCollection's names of the two-level BDPN -> ours: ``conv1``, ``res1``..``res<B>``
    (also ``backbone.0``..) for level 1, ``rres1``.. (also ``backbone2.0``..) for level 2, each
    block's ``conv20``/``prelu``/``conv21``, the shared ``conv3``, and ``conv4``/``conv5`` for
    the lr branch's two steps (coarse first)."""
    names = {
        "conv1": "guide_head",
        "conv3": "to_detail",
        "conv4": "lr_steps.0.0",
        "conv5": "lr_steps.1.0",
    }
    for level, (prefix, alias) in enumerate((("res", "backbone"), ("rres", "backbone2"))):
        for i in range(blocks):
            ours = f"guide_levels.{level}.blocks.{i}"
            for ref in (f"{prefix}{i + 1}", f"{alias}.{i}"):
                names.update({f"{ref}.conv20": f"{ours}.conv1", f"{ref}.prelu": f"{ours}.act"})
                names[f"{ref}.conv21"] = f"{ours}.conv2"
    return names


@MODELS.register
class BDPN(nn.Module):
    """BDPN. forward(lr N x C x h x w, up N x C x H x W (only checked), guide N x Cg x H x W)
    -> fused N x C x H x W, in the scale of ``lr`` (about [0, 1]). No interpolated input is
    added: the lr branch enlarges ``lr`` itself.

    ``forward(..., auxiliary=True)`` returns ``(fused, {name: image})`` with the intermediate
    images named in ``self.auxiliary_outputs``: ``fused_half`` (N x C x ceil(H/2) x ceil(W/2))
    for ratios 4 and 8, and ``fused_quarter`` (ceil(H/4) x ceil(W/4)) for ratio 8; none at
    ratio 2. Training reads them through the same call (engine/evaluation.py ``fuse``), so
    DistributedDataParallel synchronises their gradients.

    width: feature channels of the guide branch (paper 64); blocks: residual blocks per level
    (paper 10). Faithful to PanCollection's BDPN at ratio 4 for a one-band guide (reproduces
    its fused image and its H/2 image for given weights, tested); its unused top-level PReLU is
    not built. Generalised: any band count, a Cg-band guide (the first convolution takes Cg
    channels), ratios 2, 4, 8 (1, 2, 3 levels); a guide whose sides are not ``ratio`` x those of
    ``lr`` (lr = ceil(H / ratio), as the data cut it) is replicate-padded at the bottom/right
    to ``ratio`` x lr and the outputs are cropped back.
    """

    reference_names: ClassVar[dict[str, str]] = bdpn_reference_names()
    """PanCollection's state-dict names (ratio 4, 10 blocks per level) -> ours."""

    reference_unused: ClassVar[tuple[str, ...]] = ("prelu.weight",)
    """The reference's top-level PReLU, which its forward never calls."""

    def __init__(self, lr_channels: int, guide_channels: int, ratio: int, width: int = 64, blocks: int = 10):
        super().__init__()
        levels = LEVELS_OF_RATIO.get(ratio) if float(ratio).is_integer() else None
        if levels is None:
            raise UserInputError(
                f"BDPN supports ratios 2, 4 and 8 (one pyramid level per factor 2), got {ratio!r}: "
                "use another model for this data"
            )
        if width < 1 or blocks < 0:
            raise UserInputError(f"BDPN needs width >= 1 and blocks >= 0, got {width} and {blocks}")
        self.lr_channels = lr_channels
        self.guide_channels = guide_channels
        self.ratio = int(ratio)
        self.auxiliary_outputs: tuple[str, ...] = AUXILIARY_NAMES[: levels - 1]
        self.guide_head = nn.Conv2d(guide_channels, width, 3, padding=1)
        self.guide_levels = nn.ModuleList(LongSkipTrunk(width, blocks) for _ in range(levels))  # fine first
        self.to_detail = nn.Conv2d(width, lr_channels, 3, padding=1)  # shared by every level
        self.lr_steps = nn.ModuleList(  # coarse first
            nn.Sequential(nn.Conv2d(lr_channels, 4 * lr_channels, 3, padding=1), nn.PixelShuffle(2))
            for _ in range(levels)
        )

    def padded_guide(self, lr: Tensor, guide: Tensor) -> Tensor:
        """``guide`` replicate-padded at the bottom/right to ratio x the lr's size (unchanged when
        it is that size already); a guide that lr = ceil(H / ratio) does not describe is refused."""
        target = tuple(self.ratio * n for n in lr.shape[-2:])
        size = tuple(guide.shape[-2:])
        if size == target:
            return guide
        if not all(t - self.ratio < s <= t for s, t in zip(size, target, strict=True)):
            raise UserInputError(
                f"BDPN at ratio {self.ratio} needs lr of ceil(H / {self.ratio}) x ceil(W / {self.ratio}) "
                f"pixels for a guide of {size[0]} x {size[1]}, got lr {tuple(lr.shape[-2:])}"
            )
        return F.pad(guide, (0, target[1] - size[1], 0, target[0] - size[0]), mode="replicate")

    def forward(
        self, lr: Tensor, up: Tensor, guide: Tensor, auxiliary: bool = False
    ) -> Tensor | tuple[Tensor, dict[str, Tensor]]:
        check_fusion_inputs(lr, up, guide, self.lr_channels, self.guide_channels)
        features = self.guide_head(self.padded_guide(lr, guide))
        details = []  # fine first
        for level, trunk in enumerate(self.guide_levels):
            features = trunk(F.max_pool2d(features, 2) if level else features)
            details.append(self.to_detail(features))
        images = []  # coarse first
        image = lr
        for step, detail in zip(self.lr_steps, reversed(details), strict=True):
            image = step(image) + detail
            images.append(image)
        height, width = guide.shape[-2:]
        fused = images[-1][..., :height, :width]
        if not auxiliary:
            return fused
        extras = {}
        for k, name in enumerate(self.auxiliary_outputs, start=1):
            factor = 2**k
            extras[name] = images[-1 - k][..., : -(-height // factor), : -(-width // factor)]
        return fused, extras
