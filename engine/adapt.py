"""Target-adaptive fine-tuning: a trained model fine-tuned, with losses that need no ground truth
(the full-resolution consistencies by default, ``adapt.loss``), on random crops of the very scene
it is about to fuse (the target adaptation of Ciotola et al., 2022; docs/fullres.md).

Crops are ``adapt.crop`` guide pixels square (the whole scene when it is smaller, then one crop a
step); each crop's ``up`` is the 23-tap upsampling of its low-resolution pixels with 12 pixels of
mirrored context, as the tiled fusion computes it (:mod:`engine.tiling`). The model is changed
in place: pass a copy (``predict.py`` rebuilds one from the checkpoint, which it never writes).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from engine.losses import CompositeLoss
from engine.options import Options
from engine.tiling import UPSAMPLING_MARGIN, symmetric_index
from engine.training_parts import autocast, grad_scaler
from protocols.resize import upsample
from utils.errors import UserInputError


def adaptation_loss(options: Options, bands: int, ratio: int) -> CompositeLoss:
    """``adapt.loss`` (``sensor`` defaults to ``data.sensor``), refused in one line if a term needs gt."""
    terms = [term.spec() for term in options.adapt.loss]
    loss = CompositeLoss(terms, defaults={"sensor": options.data.sensor})
    needing = loss.needing("gt")
    if needing:
        raise UserInputError(
            f"adapt.loss term {', '.join(needing)} needs ground truth, which a scene to fuse has not: "
            "use losses that need none (SpectralConsistency, SpatialConsistency)"
        )
    loss.check(bands, ratio)
    return loss


def scene_crop(lr: np.ndarray, guide: np.ndarray, ratio: int, row: int, col: int, side: int) -> dict:
    """The crop of ``side`` x ``side`` low-resolution pixels at (row, col) as a sample: lr
    C x side x side, guide G x rs x rs, up C x rs x rs (float32 tensors, the arrays' units)."""
    height, width = lr.shape[1:]
    rows = symmetric_index(row - UPSAMPLING_MARGIN, row + side + UPSAMPLING_MARGIN, height)
    cols = symmetric_index(col - UPSAMPLING_MARGIN, col + side + UPSAMPLING_MARGIN, width)
    context = torch.from_numpy(np.ascontiguousarray(lr[:, rows][:, :, cols]))
    cut = slice(UPSAMPLING_MARGIN * ratio, (UPSAMPLING_MARGIN + side) * ratio)
    up = upsample(context[None].double(), ratio)[0, :, cut, cut].float()
    block = slice(row * ratio, (row + side) * ratio), slice(col * ratio, (col + side) * ratio)
    return {
        "lr": torch.from_numpy(np.ascontiguousarray(lr[:, row : row + side, col : col + side])),
        "up": up,
        "guide": torch.from_numpy(np.ascontiguousarray(guide[:, block[0], block[1]])),
    }


def adapt(
    model: nn.Module,
    lr: np.ndarray,
    guide: np.ndarray,
    ratio: int,
    options: Options,
    steps: int,
    device: torch.device,
    log: Callable[[str], None] = print,
) -> dict:
    """Fine-tune ``model`` (on ``device``) for ``steps`` Adam steps on crops of the scene ``lr``
    (C x h x w) + ``guide`` (G x rh x rw), digital numbers divided by ``data.scale`` inside;
    returns {'steps', 'seconds', 'loss_first', 'loss_last'} and leaves the model in eval mode."""
    opts = options.adapt
    loss = adaptation_loss(options, lr.shape[0], ratio)
    height, width = lr.shape[1:]
    side = min(max(1, opts.crop // ratio), height, width)
    whole = side == height and side == width
    count = 1 if whole else opts.batch_size
    optimizer = torch.optim.Adam(model.parameters(), lr=opts.lr)
    scaler = grad_scaler(device, options.train.amp)
    generator = torch.Generator().manual_seed(options.seed)
    scale = options.data.scale
    losses: list[float] = []
    start = time.perf_counter()
    model.train()
    for step in range(steps):
        rows = torch.randint(0, height - side + 1, (count,), generator=generator).tolist()
        cols = torch.randint(0, width - side + 1, (count,), generator=generator).tolist()
        crops = [scene_crop(lr, guide, ratio, r, c, side) for r, c in zip(rows, cols, strict=True)]
        batch = {k: (torch.stack([c[k] for c in crops]) / scale).to(device) for k in crops[0]}
        with autocast(device, options.train.amp):
            fused = model(batch["lr"], batch["up"], batch["guide"])
        value = loss(fused.float(), batch)
        if not math.isfinite(float(value.detach())):
            raise UserInputError(
                f"the adaptation loss became {float(value.detach())} at step {step + 1}: lower adapt.lr"
            )
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(value).backward()
        scaler.step(optimizer)
        scaler.update()
        losses.append(float(value.detach()))
    model.eval()
    report = {
        "steps": steps,
        "seconds": time.perf_counter() - start,
        "loss_first": losses[0] if losses else math.nan,
        "loss_last": losses[-1] if losses else math.nan,
    }
    if losses:
        log(
            f"adapted {steps} steps on {count} crop(s) of {side * ratio} guide pixels in "
            f"{report['seconds']:.1f} s: loss {report['loss_first']:.5g} -> {report['loss_last']:.5g}"
        )
    return report
