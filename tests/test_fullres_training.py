"""Training without ground truth through the real commands: train.py on a full-resolution file
with the full-resolution losses and validation, train.init_from, predict.py --adapt."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from data.scene import Grid, read_image, write_geotiff
from engine.options import load_options
from engine.tester import load_trained_model
from tests.conftest import ROOT, error_lines, load_script, run_script

FIXTURES = ROOT / "tests" / "data" / "pancollection"
REDUCED, FULL = str(FIXTURES / "train_wv3_tiny.h5"), str(FIXTURES / "test_wv3_OrigScale_tiny.h5")
FULL_LOSSES = [{"name": "SpectralConsistency", "weight": 1.0}, {"name": "SpatialConsistency", "weight": 0.36}]

train_script = load_script("train")
test_script = load_script("test")


def options_file(tmp_path: Path, name: str, training: dict | None = None, **data) -> Path:
    """TinyFusion trained at full resolution on the 8-band WV3 fixture (ratio 4), validated on
    both kinds of file, best checkpoint by QNR."""
    tree = {
        "name": name,
        "task": "pansharpening",
        "device": "cpu",
        "log_root": str(tmp_path / "logs"),
        "data": {
            "scale": 2047,
            "train": FULL,
            "valid": REDUCED,
            "valid_full": FULL,
            "test_reduced": [REDUCED],
            "test_full": [FULL],
            "sensor": "WV3",
            **data,
        },
        "model": {"name": "TinyFusion"},
        "train": {"batch_size": 2, "iterations": 6, "loss": FULL_LOSSES, **(training or {})},
        "val": {"every": 3, "unit": "iteration", "metric": "QNR", "images": 1},
        "test": {"dim_cut": 0},
    }
    path = tmp_path / f"{name}.yml"
    path.write_text(yaml.safe_dump(tree))
    return path


def checkpoint(tmp_path: Path, name: str, which: str = "best") -> Path:
    (path,) = (tmp_path / "logs" / "pansharpening" / name).glob(f"*/checkpoints/{which}.pth")
    return path


def test_gt_less_training_validates_and_tests_end_to_end(tmp_path):
    path = options_file(tmp_path, "full")
    metrics = train_script.main(["--option_path", str(path)])
    assert metrics["step"] == 6
    assert {"SAM", "ERGAS", "D_lambda", "D_s", "QNR", "HQNR"} <= set(metrics)
    state = torch.load(checkpoint(tmp_path, "full"), weights_only=True)
    assert state["metric"] == "QNR" and state["best"]["step"] in (3, 6)
    assert state["best"]["value"] == max(h["QNR"] for h in state["history"])
    results = test_script.main(["--option_path", str(path)])
    full = results["files"][FULL]["methods"]["TinyFusion"]["mean"]
    assert 0 < full["QNR"] <= 1 and 0 <= full["D_lambda"] < 1


def test_gt_less_training_without_reduced_validation(tmp_path):
    path = options_file(tmp_path, "only_full", valid=None)
    metrics = train_script.main(["--option_path", str(path)])
    assert "QNR" in metrics and "SAM" not in metrics


@pytest.mark.parametrize(
    "case, sets, words",
    [
        ("gt_loss", ["train.loss=[{name: L1}, {name: SpectralConsistency}]"], "but the loss L1 needs it"),
        (
            "metric",
            ["data.valid_full=null", "val.metric=HQNR"],
            "val.metric HQNR is scored on data.valid_full",
        ),
        (
            "valid",
            [f"data.valid={FULL}", "data.valid_full=null", "val.metric=SAM"],
            "give it as data.valid_full",
        ),
        (
            "valid_full",
            [f"data.valid_full={REDUCED}"],
            "has ground truth (a reduced-resolution file): give it as data.valid",
        ),
        ("option", ["train.loss=[{name: SpatialConsistency, windw: 4}]"], "(did you mean 'window'?)"),
    ],
)
def test_refusals_are_one_line_with_exit_code_2(tmp_path, case, sets, words):
    path = options_file(tmp_path, case)
    proc = run_script("train", "--option_path", str(path), *[a for s in sets for a in ("--set", s)])
    assert proc.returncode == 2
    (line,) = error_lines(proc)
    assert words in line and "Traceback" not in proc.stderr
    assert not (tmp_path / "logs").exists()  # refused before a run folder was made


def test_init_from_loads_weights_only_and_refuses_another_model(tmp_path):
    first = options_file(tmp_path, "first", {"loss": [{"name": "L1"}]}, train=REDUCED, valid_full=None)
    train_script.main(["--option_path", str(first), "--set", "val.metric=ERGAS"])
    source = checkpoint(tmp_path, "first", "latest")
    tuned = options_file(tmp_path, "tuned", {"init_from": str(source), "iterations": 1})
    tuned_args = ["--option_path", str(tuned), "--set", "train.optimizer.lr=1e-30"]
    train_script.main(tuned_args)
    start, after = torch.load(source, weights_only=True), torch.load(checkpoint(tmp_path, "tuned", "latest"))
    assert after["step"] == 1  # step 0 of a new run, one step taken
    assert after["optimizer"]["state"][0]["step"] == 1  # a fresh optimizer
    for key, value in start["model"].items():
        assert torch.allclose(after["model"][key], value, atol=1e-20)
    proc = run_script("train", *tuned_args, "--set", "model.hidden=8", "--set", "name=other")
    assert proc.returncode == 2
    (line,) = error_lines(proc)
    assert "train.init_from" in line and "model.hidden 4 -> 8" in line


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_predict_adapt_keeps_the_checkpoint_and_writes_adapted_weights(tmp_path):
    path = options_file(tmp_path, "adapt", {"iterations": 2}, valid=None, valid_full=None)
    train_script.main(["--option_path", str(path), "--set", "test.checkpoint=latest"])
    source = checkpoint(tmp_path, "adapt", "latest")
    before = digest(source)
    grid = Grid(x0=0.0, y0=0.0, dx=1.0, dy=1.0)
    rng = np.random.default_rng(0)
    write_geotiff(tmp_path / "pan.tif", rng.integers(200, 1800, (1, 64, 64)).astype(np.uint16), grid)
    write_geotiff(tmp_path / "ms.tif", rng.integers(200, 1800, (8, 16, 16)).astype(np.uint16), grid)
    scene = ["--pan", str(tmp_path / "pan.tif"), "--lr", str(tmp_path / "ms.tif")]
    sets = ["--set", "adapt.crop=32", "--set", "adapt.batch_size=2", "--set", "adapt.lr=1e-2"]

    def predict(out: Path, weights: Path, *extra: str):
        args = ["--option_path", str(path), *scene, "--out", str(out), "--checkpoint", str(weights)]
        return run_script("predict", *args, *sets, *extra)

    out = tmp_path / "fused.tif"
    proc = predict(out, source, "--adapt", "3")
    assert proc.returncode == 0, proc.stderr
    assert "adapted 3 steps on 2 crop(s) of 32 guide pixels" in proc.stdout
    assert digest(source) == before  # the given checkpoint is never written
    adapted = tmp_path / "fused.adapted.pth"
    options = load_options(path)
    model, record = load_trained_model(options, adapted, torch.device("cpu"))
    original, _ = load_trained_model(options, source, torch.device("cpu"))
    assert record == torch.load(source, weights_only=True)["model_record"]
    pairs = zip(model.state_dict().values(), original.state_dict().values(), strict=True)
    assert any(not torch.equal(a, b) for a, b in pairs)
    assert read_image(out).shape == (8, 64, 64)
    again = tmp_path / "again.tif"  # the adapted weights, without adaptation, fuse the same image
    assert predict(again, adapted).returncode == 0
    assert np.abs(read_image(again) - read_image(out)).max() <= 1e-3 * np.abs(read_image(out)).max()
    (tmp_path / "third.adapted.pth").write_bytes(b"keep me")
    kept = predict(tmp_path / "third.tif", source, "--adapt", "1")
    assert kept.returncode == 2 and "adapted weights" in error_lines(kept)[0]
    assert (tmp_path / "third.adapted.pth").read_bytes() == b"keep me"
    assert not (tmp_path / "third.tif").exists()
