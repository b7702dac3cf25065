"""RAMSF against the released reference network: golden outputs for given weights, and loading."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from models import MODELS
from models.ramsf import RELEASED_NAME_MAP
from models.state_dicts import load_reference_checkpoint, load_renamed_state_dict, rename
from tests.conftest import load_golden
from utils.errors import UserInputError

NARROW = dict(width=16, guide_width=16, mlp_hidden=(32, 16), stage1_width=8)
RELEASED = dict(border="zero", padding="zeros")  # the authors' borders (RAMSF.LEGACY_DEFAULTS)
CASES = {"ramsf_reference_wv3": 4, "ramsf_reference_cave_x8": 8}


def golden_case(name: str):
    """(model built for the case, released state dict, inputs (lr, up, guide), fused)."""
    data = load_golden(name)
    weights = {k.split("::", 1)[1]: torch.from_numpy(v) for k, v in data.items() if "::" in k}
    lr, up, guide = (torch.from_numpy(data[k]) for k in ("lr", "up", "guide"))
    model = MODELS.build(
        "RAMSF",
        lr_channels=lr.shape[1],
        guide_channels=guide.shape[1],
        ratio=CASES[name],
        **NARROW,
        **RELEASED,
    )
    return model, weights, (lr, up, guide), data["fused"]


def max_error(model: torch.nn.Module, inputs, fused: np.ndarray) -> float:
    with torch.no_grad():
        out = model.eval()(*inputs)
    return float(np.abs(out.numpy() - fused).max())


@pytest.mark.parametrize("name", sorted(CASES))
def test_reproduces_reference_outputs(name):
    model, weights, inputs, fused = golden_case(name)
    load_renamed_state_dict(model, weights)
    assert np.abs(fused - inputs[1].numpy()).max() > 0.1  # the residual is not negligible
    assert max_error(model, inputs, fused) < 1e-5


@pytest.mark.parametrize("name", sorted(CASES))
def test_name_map_covers_released_names(name):
    model, weights, _, _ = golden_case(name)
    inverse = {new: old for old, new in RELEASED_NAME_MAP.items()}
    assert sorted(rename(k, inverse) for k in model.state_dict()) == sorted(weights)
    assert all(rename(rename(k, inverse), RELEASED_NAME_MAP) == k for k in model.state_dict())


def test_load_reference_checkpoint_file(tmp_path):
    model, weights, inputs, fused = golden_case("ramsf_reference_wv3")
    path = tmp_path / "released.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in weights.items()}}, path)
    load_reference_checkpoint(model, path)
    assert max_error(model, inputs, fused) < 1e-5
    plain = tmp_path / "ours.pth"
    torch.save(model.state_dict(), plain)
    again, _, _, _ = golden_case("ramsf_reference_wv3")
    load_reference_checkpoint(again, plain)
    assert max_error(again, inputs, fused) < 1e-5


def test_wrong_shapes_and_keys_are_user_errors(tmp_path):
    _, weights, _, _ = golden_case("ramsf_reference_wv3")
    four_band = MODELS.build("RAMSF", lr_channels=4, guide_channels=1, ratio=4, **NARROW, **RELEASED)
    path = tmp_path / "wv3.pth"
    torch.save(weights, path)
    with pytest.raises(UserInputError, match=r"shape mismatches: blk_8_32\.0\.weight") as info:
        load_reference_checkpoint(four_band, path)
    assert "\n" not in str(info.value)
    partial = {k: v for k, v in weights.items() if not k.startswith("imnet_128")}
    partial["extra.weight"] = torch.zeros(1)
    model, _, _, _ = golden_case("ramsf_reference_wv3")
    with pytest.raises(UserInputError, match=r"missing keys: imnet_128.*unexpected keys: extra"):
        load_renamed_state_dict(model, partial)
    broken = tmp_path / "broken.pth"
    broken.write_bytes(b"not a checkpoint")
    with pytest.raises(UserInputError, match="cannot read checkpoint"):
        load_reference_checkpoint(model, broken)
