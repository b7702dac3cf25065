"""BDPN: its H/2 image against the reference, its pyramid at ratios 2 and 8, the refused ratios and
sizes, and the multi-scale loss (hand-computed value, refusal, a training run through train.py)."""

from __future__ import annotations

import pytest
import torch

from engine.evaluation import fuse
from engine.losses import LOSSES, CompositeLoss, auxiliary_needs
from models import MODELS
from tests.conftest import load_script
from tests.peer_oracles import CASES, load_oracle
from tests.test_models import fusion_inputs
from tests.test_peer_oracles import oracle_model
from tests.test_train_and_test_scripts import latest_state, options_file
from utils.errors import UserInputError

AUX_KEYS = {"case1": "fused_aux", "case2": "fused_aux2"}


def tiny_bdpn(bands: int = 3, guide_bands: int = 1, ratio: int = 4) -> torch.nn.Module:
    torch.manual_seed(0)
    return MODELS.build("BDPN", lr_channels=bands, guide_channels=guide_bands, ratio=ratio, width=8, blocks=1)


@pytest.mark.parametrize("case", sorted(CASES))
def test_auxiliary_output_reproduces_the_reference(case):
    oracle = load_oracle("BDPN")
    model = oracle_model("BDPN", oracle)
    lr, up, guide, fused = (oracle[key] for key in CASES[case])
    batch = {"lr": lr, "up": up, "guide": guide}
    with torch.no_grad():
        out = fuse(model, batch, ("fused_half",))
    assert float((out - fused).abs().max()) < 1e-6
    assert float((batch["fused_half"] - oracle[AUX_KEYS[case]]).abs().max()) < 1e-6


def test_ratio_2_has_one_level_and_no_auxiliary_output():
    model = tiny_bdpn(ratio=2)
    assert len(model.guide_levels) == len(model.lr_steps) == 1 and model.auxiliary_outputs == ()
    lr, up, guide = fusion_inputs(3, 1, 2, 16)
    fused, extras = model(lr, up, guide, auxiliary=True)
    assert fused.shape == up.shape and extras == {}


@pytest.mark.parametrize("height, width", [(32, 32), (30, 27)])
def test_ratio_8_has_three_levels_and_two_auxiliary_outputs(height, width):
    model = tiny_bdpn(bands=4, guide_bands=3, ratio=8)
    assert model.auxiliary_outputs == ("fused_half", "fused_quarter")
    lr, up, guide = fusion_inputs(4, 3, 8, height, width)
    fused, extras = model(lr, up, guide, auxiliary=True)
    assert fused.shape == up.shape
    assert extras["fused_half"].shape == (2, 4, -(-height // 2), -(-width // 2))
    assert extras["fused_quarter"].shape == (2, 4, -(-height // 4), -(-width // 4))
    assert torch.equal(model(lr, up, guide), fused)


def test_a_guide_of_ratio_times_lr_is_not_padded_and_others_are():
    model = tiny_bdpn(ratio=4)
    lr, up, guide = fusion_inputs(3, 1, 4, 18, 16)  # lr 5 x 4: the guide is padded to 20 x 16
    with torch.no_grad():
        fused = model(lr, up, guide)
        padded = torch.nn.functional.pad(guide, (0, 0, 0, 2), mode="replicate")
        whole = model(lr, torch.zeros(2, 3, 20, 16), padded)
    assert fused.shape == up.shape and torch.equal(fused, whole[..., :18, :])


@pytest.mark.parametrize("ratio", [3, 6, 16, 2.5])
def test_other_ratios_are_refused_in_one_line(ratio):
    with pytest.raises(UserInputError) as error:
        MODELS.build("BDPN", lr_channels=4, guide_channels=1, ratio=ratio)
    message = str(error.value)
    assert "\n" not in message and "BDPN" in message and repr(ratio) in message and "2, 4 and 8" in message


def test_lr_that_is_not_ceil_of_the_guide_over_the_ratio_is_refused():
    model = tiny_bdpn(ratio=4)
    lr, up, guide = fusion_inputs(3, 1, 4, 16)
    with pytest.raises(UserInputError, match=r"ceil\(H / 4\)"):
        model(lr[..., :3, :], up, guide)


def test_half_scale_l1_equals_its_hand_computed_value():
    # MATLAB's antialiased bicubic shrinks a 2 x 2 block by 2 to its mean (symmetric weights)
    gt = torch.tensor([[[[1.0, 2.0], [3.0, 6.0]], [[0.0, 4.0], [4.0, 0.0]]]], dtype=torch.float64)
    half = torch.tensor([[[[2.5]], [[1.0]]]], dtype=torch.float64)  # targets 3.0 and 2.0
    loss = LOSSES.build("L1_half")(torch.zeros(1, 2, 2, 2), {"gt": gt, "fused_half": half})
    assert float(loss) == pytest.approx((0.5 + 1.0) / 2, abs=1e-12)
    flat = torch.full((1, 2, 8, 8), 0.25, dtype=torch.float64)
    quarter = LOSSES.build("L1_quarter")(flat, {"gt": flat, "fused_quarter": torch.zeros(1, 2, 2, 2)})
    assert float(quarter) == pytest.approx(0.25, abs=1e-12)  # a constant shrinks to itself


def test_composite_loss_trains_both_scales_through_fuse():
    model = tiny_bdpn(ratio=4)
    loss = CompositeLoss([("L1", 1.0), ("L1_half", 0.5)])
    assert auxiliary_needs(loss, model, "BDPN") == ("fused_half",)
    lr, up, guide = fusion_inputs(3, 1, 4, 16)
    batch = {"lr": lr, "up": up, "guide": guide, "gt": up.clone()}
    value = loss(fuse(model, batch, ("fused_half",)), batch)
    assert set(loss.parts) == {"L1", "L1_half"}
    assert float(value.detach()) == pytest.approx(loss.parts["L1"] + 0.5 * loss.parts["L1_half"], rel=1e-6)
    value.backward()
    assert all(p.grad is not None for p in model.parameters())
    assert auxiliary_needs(CompositeLoss([("L1", 1.0)]), model, "BDPN") == ()


@pytest.mark.parametrize("name, ratio", [("BDPN", 2), ("FusionNet", 4)])
def test_a_loss_needing_a_missing_output_is_refused_in_one_line(name, ratio):
    model = MODELS.build(name, lr_channels=3, guide_channels=1, ratio=ratio)
    with pytest.raises(UserInputError) as error:
        auxiliary_needs(CompositeLoss([("L1", 1.0), ("L1_half", 1.0)]), model, name)
    message = str(error.value)
    assert "\n" not in message and "train.loss" in message and name in message and "fused_half" in message


def test_train_py_runs_bdpn_with_the_pyramid_loss(tmp_path, capsys):
    loss = [{"name": "L1", "weight": 1.0}, {"name": "L1_half", "weight": 0.5}]
    path = options_file(tmp_path, "bdpn", iterations=2, loss=loss)
    small = ["--set", "model.name=BDPN", "--set", "model.width=8", "--set", "model.blocks=1"]
    train = load_script("train")
    metrics = train.main(["--option_path", path, *small])
    assert metrics["step"] == 2 and latest_state(tmp_path, "bdpn")["model_record"]["name"] == "BDPN"
    with pytest.raises(SystemExit) as stop:  # TinyFusion has no H/2 image
        train.main(["--option_path", path, "--set", "name=tiny_half"])
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "train.loss" in err[-1] and "TinyFusion" in err[-1]
