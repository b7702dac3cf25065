"""Access to the reference implementations' outputs in ``../shared/golden/peers/`` (24 MB, kept
out of the repository; its README describes each file). Tests that need them skip, saying why,
where the folder is absent."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from tests.conftest import ROOT

PEERS = ROOT.parent / "shared" / "golden" / "peers"
CASES = {"case1": ("ms", "lms", "pan", "fused"), "case2": ("ms2", "lms2", "pan2", "fused2")}
"""Case -> the npz keys of (lr, up, guide, fused): lr = ms, up = lms (bicubic x 4), guide = pan."""


def load_oracle(method: str) -> dict:
    """The arrays of ``<method>.npz`` as float64 tensors, ``meta`` as a dict; skips if absent."""
    path = PEERS / f"{method}.npz"
    if not path.is_file():
        pytest.skip(f"{path} is absent: the peer oracles (24 MB) are kept in ../shared/golden/peers")
    with np.load(path) as data:
        arrays = {key: torch.from_numpy(data[key]) for key in data.files if key != "meta"}
        arrays["meta"] = json.loads(str(data["meta"]))
    return arrays


def reference_state_dict(oracle: dict) -> dict[str, torch.Tensor]:
    """Every reference state-dict name -> tensor, the aliases of ``meta`` included (as the
    reference's own ``state_dict()`` lists them: the same tensor under both names)."""
    weights = {key.split("::", 1)[1]: value for key, value in oracle.items() if key.startswith("weight::")}
    for alias, stored in oracle["meta"]["state_dict_aliases"].items():
        weights[alias] = weights[stored]
    return weights


def parameter_count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
