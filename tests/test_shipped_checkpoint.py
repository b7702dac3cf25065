"""The shipped RAMSF checkpoint (checkpoints/): it loads on a fresh clone and reproduces the test
indices documented beside it, through the same test.py a user runs (no training)."""

from __future__ import annotations

import json

import pytest

from tests.conftest import ROOT, load_script

SHIPPED = ROOT / "checkpoints" / "landsat8_long.pth"
PRESET = ROOT / "options" / "landsat8_shipped.yml"
test_script = load_script("test")


def documented() -> dict:
    """The provenance and numbers written beside the checkpoint (checkpoints/landsat8_long.json)."""
    return json.loads(SHIPPED.with_suffix(".json").read_text())


def test_the_checkpoint_and_its_record_ship():
    info = documented()
    assert SHIPPED.stat().st_size < 4_000_000  # weights only, no optimizer state
    for key in ("command", "commit", "options", "step", "validation", "test"):
        assert info.get(key), key
    assert "seed: 42" in info["options"]


def test_test_py_reproduces_the_documented_indices(tmp_path):
    sets = [f"log_root={tmp_path}", f"data.root={ROOT / 'datasets' / 'demo'}", f"test.checkpoint={SHIPPED}"]
    results = test_script.main(["--option_path", str(PRESET), *[a for s in sets for a in ("--set", s)]])
    (entry,) = [e for f, e in results["files"].items() if f.endswith("test_landsat8_multiExm1.h5")]
    means = entry["methods"]["RAMSF"]["mean"]
    expected = documented()["test"]["reduced"]
    for key in ("SAM", "ERGAS", "Q2n"):
        assert means[key] == pytest.approx(expected[key], abs=1e-4), key
    (full,) = [e for f, e in results["files"].items() if "OrigScale" in f]
    expected = documented()["test"]["full"]
    for key in ("QNR", "HQNR"):
        assert full["methods"]["RAMSF"]["mean"][key] == pytest.approx(expected[key], abs=1e-4), key
