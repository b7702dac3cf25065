"""RAMSF: fused = up + CSFPA(lr, LHSDR(up, guide)), and loading of the authors' released weights.

The released checkpoints name their parameters differently (``blk_1_32.0.weight``,
``DE_pan.conv0.weight``, ``imnet_64.layers.0.weight``, ...). ``RELEASED_NAME_MAP`` maps their module
prefixes to ours (``RAMSF.reference_names``); ``models.state_dicts.load_reference_checkpoint`` reads
such a file (or one saved with our names).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import torch
from torch import Tensor, nn

from models import MODELS
from models.blocks import PADDINGS, check_fusion_inputs, checked_ratio
from models.csfpa import BORDERS, CSFPA, FACTORED_CHOICES
from models.lhsdr import LHSDR
from utils.errors import UserInputError

RELEASED_NAME_MAP: dict[str, str] = {
    "blk_1_32.0": "lhsdr.guide_head.conv",
    "blk_1_32.1": "lhsdr.guide_head.act",
    "blk_8_32.0": "lhsdr.up_head.conv",
    "blk_8_32.1": "lhsdr.up_head.act",
    **{
        f"{old}.conv{i}": f"lhsdr.{new}.conv{i + 1}"
        for old, new in (
            ("DE_pan", "guide_block"),
            ("DE_lms", "up_block"),
            ("DE_HL", "hl_block"),
            ("DE_LH", "lh_block"),
            ("DE_HH", "hh_block"),
            ("DE_HH_HH", "merge_hl_lh"),
            ("DE_PAN", "merge_hh"),
        )
        for i in (0, 1)
    },
    "spatial_encoder.0": "csfpa.detail_encoder.conv",
    "spatial_encoder.1": "csfpa.detail_encoder.act",
    "spectral_encoder.0": "csfpa.spectral_encoder.conv",
    "spectral_encoder.1": "csfpa.spectral_encoder.act",
    "imnet_64.layers": "csfpa.stages.0.mlp",
    "imnet_128.layers": "csfpa.stages.1.mlp",
}
"""Released module prefix -> our module prefix (the parameter's last name part is unchanged)."""


def default_stages(ratio: int) -> int:
    """Number of implicit stages: 1 for ratio 2 (h -> H), else 2 (h -> H/2 -> H, as released)."""
    return 1 if ratio <= 2 else 2


def _check_options(
    ratio: int, width: int, mlp_hidden: Sequence[int], border: str, query_chunk: int, stages: int
) -> None:
    """Raise a one-line UserInputError for RAMSF options that cannot work."""
    if width < 4 or width % 4:
        raise UserInputError(f"RAMSF width must be a positive multiple of 4, got {width}")
    sizes = list(mlp_hidden) if isinstance(mlp_hidden, Sequence) else []
    if not sizes or not all(isinstance(n, int) and n >= 1 for n in sizes):
        raise UserInputError(f"RAMSF mlp_hidden must be a non-empty list of sizes, got {mlp_hidden}")
    if border not in BORDERS:
        raise UserInputError(f"RAMSF border must be one of {', '.join(BORDERS)}, got '{border}'")
    if query_chunk < 1:
        raise UserInputError(f"RAMSF query_chunk must be >= 1, got {query_chunk}")
    if stages < 1 or ratio <= 2 ** (stages - 1):
        raise UserInputError(
            f"RAMSF stages={stages} does not fit ratio {ratio}: the first stage must enlarge "
            f"(ratio > 2^(stages-1)); use stages between 1 and {max_stages(ratio)}"
        )


def max_stages(ratio: int) -> int:
    """Largest stage count whose first stage still enlarges: ratio > 2^(stages-1)."""
    return (ratio - 1).bit_length()


@MODELS.register
class RAMSF(nn.Module):
    """RAMSF (LHSDR + CSFPA). forward(lr N x C x h x w, up N x C x H x W, guide N x Cg x H x W)
    -> fused N x C x H x W, in the inputs' scale (about [0, 1]), as up + a learned residual.

    width: LHSDR and spectral feature width d (multiple of 4); guide_width: width of the encoded
    detail map fed to the MLPs; mlp_hidden: hidden sizes of each stage's MLP; stage1_width:
    channels between stages; ll_fusion: learned fusion of both LL bands instead of the guide's
    alone; border: how a query reads a neighbour cell outside the low-resolution grid,
    'replicate' (default: the edge cell's feature at the outside cell's own centre), 'zero'
    (released: zero feature and zero centre, so its relative coordinate grows with the image size)
    or 'clamp' (LIIF); padding: how every 3x3 convolution pads, 'reflect' (default), 'replicate'
    or 'zeros' (released). With the defaults a constant image gives a frame-free output (issue 11);
    the released weights need border='zero', padding='zeros' (``LEGACY_DEFAULTS``, which also
    rebuild checkpoint records written before these options). query_chunk: query pixels per MLP call
    (bounds memory); stages: number of implicit stages (default 1 for ratio 2, else 2);
    factored_query: which formulation of the query MLP runs, all the same function: 'fast'
    (default: the hand-written autograd Function of models/query_mlp.py, training and inference),
    True (factored first layer through autograd), 'inference' (factored without gradients only),
    False (the plain per-neighbour concatenation, kept as the test oracle);
    channels_last: convolution weights and inputs in N x H x W x C memory order (faster
    convolutions on CPUs and GPUs, and the query's feature gathers read rows directly; the same
    function to float rounding).
    """

    LEGACY_DEFAULTS = {"border": "zero", "padding": "zeros"}
    """Defaults before the border fix (issue 11): a checkpoint record without these keys predates
    it and is rebuilt with them (engine.model_record); the released weights need them too."""

    reference_names: ClassVar[dict[str, str]] = RELEASED_NAME_MAP
    """The released names, for ``models.state_dicts.load_renamed_state_dict``."""

    def __init__(
        self,
        lr_channels: int,
        guide_channels: int,
        ratio: int,
        width: int = 64,
        guide_width: int = 64,
        mlp_hidden: Sequence[int] = (256, 128),
        stage1_width: int = 32,
        ll_fusion: bool = False,
        border: str = "replicate",
        query_chunk: int = 4096,
        stages: int | None = None,
        factored_query: bool | str = "fast",
        channels_last: bool = True,
        padding: str = "reflect",
    ):
        super().__init__()
        ratio = checked_ratio("RAMSF", ratio)
        stages = default_stages(ratio) if stages is None else stages
        _check_options(ratio, width, mlp_hidden, border, query_chunk, stages)
        if factored_query not in FACTORED_CHOICES:
            raise UserInputError(
                f"RAMSF factored_query must be 'fast', true, false or 'inference', got {factored_query!r}"
            )
        if padding not in PADDINGS:
            raise UserInputError(f"RAMSF padding must be one of {', '.join(PADDINGS)}, got '{padding}'")
        self.lr_channels = lr_channels
        self.guide_channels = guide_channels
        self.padding = padding
        self.lhsdr = LHSDR(lr_channels, guide_channels, width, ll_fusion, padding)
        self.csfpa = CSFPA(
            lr_channels,
            width,
            guide_width,
            tuple(mlp_hidden),
            stage1_width,
            stages,
            border,
            query_chunk,
            factored_query,
            padding,
        )

        self.channels_last = channels_last
        if channels_last:
            self.to(memory_format=torch.channels_last)

    def forward(self, lr: Tensor, up: Tensor, guide: Tensor) -> Tensor:
        check_fusion_inputs(lr, up, guide, self.lr_channels, self.guide_channels)
        if self.padding == "reflect" and min(lr.shape[-2:]) < 2:
            raise UserInputError(
                f"RAMSF with padding 'reflect' needs lr of at least 2 x 2 pixels, got "
                f"{tuple(lr.shape[-2:])}: use padding 'replicate' for such small inputs"
            )
        if self.channels_last:
            lr, guide = (x.contiguous(memory_format=torch.channels_last) for x in (lr, guide))
            return up + self.csfpa(lr, self.lhsdr(up.contiguous(memory_format=torch.channels_last), guide))
        return up + self.csfpa(lr, self.lhsdr(up, guide))
