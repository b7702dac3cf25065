"""The frame artefact of RAMSF (issue 11): the edge-error ratio, constant images, the demo crops."""

from __future__ import annotations

import math
import os
from pathlib import Path

import pytest
import torch

from data.demo import ensure_demo
from engine.checkpoint import load_checkpoint, load_model_weights
from engine.model_record import build_from_record, check_resumable, sized_record, training_free_record
from metrics.border import EDGES, edge_error_ratios
from models import MODELS
from tests.conftest import ROOT
from utils.errors import UserInputError

NARROW = dict(width=16, guide_width=16, mlp_hidden=(32, 16), stage1_width=8)
RELEASED = dict(border="zero", padding="zeros")
CHECKPOINT_ENV = "RAMSF_DEMO_CHECKPOINT"
SHIPPED = ROOT / "checkpoints" / "landsat8_long.pth"
CLASSICAL = ("BT-H", "GSA", "BDSD-PC", "PRACS", "MTF-GLP-HPM", "MTF-GLP-FS", "AWLP")


def test_edge_error_ratios_by_hand():
    gt = torch.zeros(2, 2, 10, 10)
    fused = torch.ones(2, 2, 10, 10)
    fused[..., 0, :] = 3  # top row three times the interior's error of 1
    fused[1] *= 2  # the second image: twice the errors, the same ratios
    ratios = edge_error_ratios(fused, gt)
    assert set(ratios) == set(EDGES)
    expected = {"top": 3.0, "bottom": 1.0, "left": 1.2, "right": 1.2}  # left: (3 + 9 * 1) / 10
    for edge, value in expected.items():
        assert ratios[edge].dtype == torch.float64 and ratios[edge].shape == (2,)
        torch.testing.assert_close(ratios[edge], torch.full((2,), value, dtype=torch.float64))
    one_in = edge_error_ratios(fused, gt, depth=1)
    torch.testing.assert_close(one_in["top"], torch.ones(2, dtype=torch.float64))
    margin = edge_error_ratios(fused, gt, margin=0)  # interior = the whole image: mean 1.2
    torch.testing.assert_close(margin["top"], torch.full((2,), 2.5, dtype=torch.float64))
    with pytest.raises(ValueError):
        edge_error_ratios(fused, gt[..., :9])
    with pytest.raises(ValueError):
        edge_error_ratios(fused, gt, margin=5)


def flat_frame_deviation(model: torch.nn.Module, ratio: int, size: int = 12) -> dict[str, float]:
    """Residual of ``model`` on constant inputs: mean |outermost line - the same line shifted by a
    whole period (lcm(2, ratio)) to the centre| per edge, relative to the mean |residual|.

    The residual of a constant image repeats with that period (query phase, Haar blocks), so a
    model without a frame artefact gives 0 on every edge."""
    period = math.lcm(2, ratio)
    big = size * ratio
    lr = torch.full((1, 4, size, size), 0.3)
    up, guide = torch.full((1, 4, big, big), 0.3), torch.full((1, 1, big, big), 0.5)
    with torch.no_grad():
        res = (model.eval()(lr, up, guide) - up)[0]
    start = big // 2 // period * period
    tile = res[:, start : start + period, start : start + period]
    reference = tile.repeat(1, big // period + 1, big // period + 1)[:, :big, :big]
    dev = (res - reference).abs().mean(0)
    scale = float(res.abs().mean())
    lines = {"top": dev[0], "bottom": dev[-1], "left": dev[:, 0], "right": dev[:, -1]}
    return {edge: float(line.mean()) / scale for edge, line in lines.items()}


@pytest.mark.parametrize("ratio", [2, 4])
def test_constant_image_has_no_frame_with_the_defaults(ratio):
    torch.manual_seed(0)
    model = MODELS.build("RAMSF", lr_channels=4, guide_channels=1, ratio=ratio, **NARROW)
    deviation = flat_frame_deviation(model, ratio)
    limit = 1e-5 if ratio == 2 else 5e-3  # ratio 4: the max-pooled guide of stage 1 is near-periodic
    assert max(deviation.values()) < limit, deviation


def test_constant_image_has_a_frame_with_the_released_borders():
    """The released zero border (and zero padding): the outermost lines differ from the interior
    by about the residual's size already before training, on a flat image."""
    torch.manual_seed(0)
    model = MODELS.build("RAMSF", lr_channels=4, guide_channels=1, ratio=2, **NARROW, **RELEASED)
    deviation = flat_frame_deviation(model, 2)
    assert min(deviation.values()) > 0.1, deviation


def demo_checkpoint() -> Path | None:
    """The trained demo checkpoint: ``$RAMSF_DEMO_CHECKPOINT`` or the shipped file, if any."""
    given = os.environ.get(CHECKPOINT_ENV)
    if given:
        return Path(given)
    return SHIPPED if SHIPPED.is_file() else None


def edge_errors(fused: torch.Tensor, gt: torch.Tensor) -> dict[str, float]:
    """Mean absolute error (over bands and images) of the outermost line of each edge, and of
    the interior (4 pixels in): N x C x H x W tensors, the same scale."""
    error = (fused.double() - gt.double()).abs().mean(dim=1)
    lines = {"top": error[:, 0], "bottom": error[:, -1], "left": error[:, :, 0], "right": error[:, :, -1]}
    return {**{e: float(v.mean()) for e, v in lines.items()}, "interior": float(error[:, 4:-4, 4:-4].mean())}


def test_demo_frame_against_the_input_and_the_classical_methods():
    """The shipped checkpoint on the demo's 4 test crops: its outermost lines are closer to the
    reference than those of the interpolated input and of every classical method on every edge
    (the shipped long checkpoint: 0.56x / 0.76x / 0.63x / 0.82x the best classical method's,
    top / bottom / left / right), and its interior well below theirs.

    The issue's stricter goal, RAMSF's edge/interior ratio at most the best classical method's on
    every edge, is met on the top, left and bottom edges, not on the right one (0.761 against
    0.731; README, "Borders"): RAMSF's interior is much better (the ratio's denominator); the
    ratios are printed here."""
    path = demo_checkpoint()
    if path is None:
        pytest.skip(
            f"no trained demo checkpoint: set {CHECKPOINT_ENV} to a best.pth of "
            "`python train.py --option_path option.yml` or ship checkpoints/landsat8_long.pth"
        )
    from engine.options import load_options

    options = load_options(ROOT / "option.yml")
    paths = ensure_demo("landsat8", ROOT / "datasets" / "demo")
    data = options.data.dataset(str(paths["test_reduced"]), require_gt=True)
    samples = [data[i] for i in range(len(data))]
    batch = {k: torch.stack([s[k] for s in samples]) for k in ("lr", "up", "guide", "gt")}
    state = load_checkpoint(path)
    model = build_from_record(state["model_record"])
    load_model_weights(model, state, str(path))
    with torch.no_grad():
        fused = model.eval()(batch["lr"], batch["up"], batch["guide"])
        ours, ratios = edge_errors(fused, batch["gt"]), edge_error_ratios(fused, batch["gt"])
        up = edge_errors(batch["up"], batch["gt"])
        best = dict.fromkeys((*EDGES, "interior"), math.inf)
        for name in CLASSICAL:
            method = build_from_record(training_free_record(name, {}, data, options.data.sensor))
            theirs = edge_errors(method(batch["lr"], batch["up"], batch["guide"]), batch["gt"])
            best = {e: min(best[e], theirs[e]) for e in best}
    print({e: (round(float(ratios[e].mean()), 3), round(ours[e] / best[e], 3)) for e in EDGES})
    assert all(ours[e] < up[e] for e in EDGES), (ours, up)
    assert all(ours[e] < best[e] for e in EDGES), (ours, best)
    assert ours["interior"] < 0.9 * best["interior"]  # and the interior well below every method's


class Sized:
    lr_channels, guide_channels, ratio = 4, 1, 2


def test_records_name_the_border_options_and_old_records_keep_the_released_ones():
    new = sized_record("RAMSF", dict(NARROW), Sized())
    assert {k: new["kwargs"][k] for k in RELEASED} == {"border": "replicate", "padding": "reflect"}
    old = {**new, "kwargs": dict(NARROW)}  # a checkpoint written before the border options
    model = build_from_record(old)
    assert model.csfpa.stages[0].border == "zero"
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (3, 3)]
    assert convs and all(m.padding_mode == "zeros" for m in convs)
    rebuilt = build_from_record(new)
    assert rebuilt.csfpa.stages[0].border == "replicate"
    assert all(m.padding_mode == "reflect" for m in rebuilt.modules() if isinstance(m, torch.nn.Conv2d))
    check_resumable(new, new, "same.pth")
    with pytest.raises(UserInputError, match=r"trained with model.border: zero.*set model.border: zero"):
        check_resumable(old, new, "old.pth")
