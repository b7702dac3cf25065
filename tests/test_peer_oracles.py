"""Every deep peer against its reference implementation: the oracle weights of
``../shared/golden/peers/<Name>.npz`` load through the class's ``reference_names`` (aliases
included) and reproduce the reference's ``fused`` in float64 at both input sizes.

A registered model with ``reference_names`` (RAMSF aside: tests/test_ramsf_reference.py) is
picked up here by itself; its defaults, updated by its ``reference_options``, must build the
reference's configuration for 8 bands, a PAN and ratio 4.
"""

from __future__ import annotations

import pytest
import torch

from models import MODELS
from models.state_dicts import load_renamed_state_dict
from tests.peer_oracles import CASES, PEERS, load_oracle, parameter_count, reference_state_dict

PEER_NAMES = sorted(
    name for name in MODELS.names() if name != "RAMSF" and getattr(MODELS.get(name), "reference_names", None)
)


def oracle_model(name: str, oracle: dict) -> torch.nn.Module:
    """The peer built as the reference (8 bands, PAN, ratio 4), float64, oracle weights loaded."""
    cls = MODELS.get(name)
    model = MODELS.build(
        name, lr_channels=8, guide_channels=1, ratio=4, **getattr(cls, "reference_options", {})
    )
    return load_renamed_state_dict(model.double().eval(), reference_state_dict(oracle), source=f"{name}.npz")


def test_every_oracle_has_its_model():
    if not PEERS.is_dir():
        pytest.skip(
            f"{PEERS} is absent: the peer oracles live in ../shared/golden/peers, not in the repository"
        )
    assert sorted(path.stem for path in PEERS.glob("*.npz")) == PEER_NAMES


@pytest.mark.parametrize("name", PEER_NAMES)
def test_parameter_count_equals_reference(name):
    oracle = load_oracle(name)
    meta = oracle["meta"]
    unused = sum(oracle[f"weight::{key}"].numel() for key in meta["unused_params"])
    assert parameter_count(oracle_model(name, oracle)) == meta["n_params"] - unused


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("name", PEER_NAMES)
def test_reproduces_reference_output(name, case):
    oracle = load_oracle(name)
    model = oracle_model(name, oracle)
    lr, up, guide, fused = (oracle[key] for key in CASES[case])
    with torch.no_grad():
        out = model(lr, up, guide)
    error = float((out - fused).abs().max())
    assert error < 1e-6
    assert error < 1e-5 * float(fused.abs().max())  # relative too: GPPNN's outputs are about 0.07
