"""The weights' moving average (train.ema_decay, engine/ema.py): its formula, what validation,
checkpoints, resuming, test.py and export do with it, and the option's check."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from engine.checkpoint import load_model_weights, model_weights
from engine.ema import WeightAverage
from tests.conftest import run_script
from tests.test_train_and_test_scripts import (
    assert_states_equal,
    latest_state,
    options_file,
    test_script,
    train_script,
)


def best_state(tmp_path: Path, name: str) -> dict:
    (path,) = (tmp_path / "logs" / "pansharpening" / name).glob("*/checkpoints/best.pth")
    return torch.load(path, weights_only=True)


def test_the_average_by_hand():
    net = torch.nn.Linear(2, 1)
    average = WeightAverage(net, decay=0.75)
    values = [1.0, 5.0, -3.0]
    for v in values:
        torch.nn.init.constant_(net.weight, v)
        torch.nn.init.constant_(net.bias, 2 * v)
        average.update(net)
    expected = 0.75 * (0.75 * 1.0 + 0.25 * 5.0) + 0.25 * -3.0  # the first update copies: 0.75
    torch.testing.assert_close(average.module.weight, torch.full((1, 2), expected))
    torch.testing.assert_close(average.module.bias, torch.full((1,), 2 * expected))
    assert average.updates == 3 and not average.module.weight.requires_grad
    assert net.weight.data_ptr() != average.module.weight.data_ptr()  # a copy, not the net itself
    restored = WeightAverage(torch.nn.Linear(2, 1), decay=0.75)
    restored.load_state_dict(average.state_dict(), "by hand")
    assert restored.updates == 3 and torch.equal(restored.module.weight, average.module.weight)
    with pytest.raises(ValueError):
        WeightAverage(net, decay=1.0)


def test_checkpoints_prefer_the_average_for_inference_and_the_trained_weights_to_resume():
    trained, averaged = {"w": torch.ones(1)}, {"w": torch.zeros(1)}
    state = {"model": trained, "model_ema": {"weights": averaged, "updates": 4, "decay": 0.9}}
    assert model_weights(state) is averaged and model_weights(state, averaged=False) is trained
    assert model_weights({"model": trained, "model_ema": None}) is trained
    assert model_weights(trained) is trained  # a file of weights only
    net = torch.nn.Linear(1, 1, bias=False)
    load_model_weights(net, {"model": {"weight": torch.ones(1, 1)}, "model_ema": None}, "x.pth")
    assert float(net.weight.detach()) == 1.0


def test_decay_zero_validates_exactly_like_no_average(tmp_path):
    """With decay 0 the average is the trained weights after every step: the same history."""
    train_script.main(["--option_path", options_file(tmp_path, "plain", iterations=20)])
    train_script.main(["--option_path", options_file(tmp_path, "zero", iterations=20, ema_decay=0.0)])
    plain, zero = latest_state(tmp_path, "plain"), latest_state(tmp_path, "zero")
    assert plain["model_ema"] is None and zero["model_ema"]["updates"] == 20
    assert_states_equal(zero["model_ema"]["weights"], zero["model"])
    assert_states_equal(plain["history"], zero["history"])
    assert_states_equal(plain["model"], zero["model"])


def test_training_with_an_average_resumes_exactly_and_test_and_export_use_it(tmp_path):
    straight = options_file(tmp_path, "straight", ema_decay=0.9)
    train_script.main(["--option_path", straight])
    split = options_file(tmp_path, "split", ema_decay=0.9)
    train_script.main(["--option_path", split, "--stop-after", "20"])
    train_script.main(["--option_path", split])
    a, b = latest_state(tmp_path, "straight"), latest_state(tmp_path, "split")
    for key in ("model", "model_ema", "optimizer", "best", "history"):
        assert_states_equal(a[key], b[key])
    best = best_state(tmp_path, "straight")
    differs = [not torch.equal(best["model_ema"]["weights"][k], v) for k, v in best["model"].items()]
    assert any(differs)  # the average is not the trained weights
    # test.py scores the average: the fixture's validation file is its reduced test file, so
    # best.pth's test SAM is the validation SAM recorded at its step
    files = test_script.main(["--option_path", straight])["files"].values()
    (entry,) = [e for e in files if e["resolution"] == "reduced resolution"]
    recorded = next(h for h in best["history"] if h["step"] == best["best"]["step"])
    assert entry["methods"]["TinyFusion"]["mean"]["SAM"] == pytest.approx(recorded["SAM"], rel=1e-6)
    from engine.export import export

    (run,) = (tmp_path / "logs" / "pansharpening" / "straight").iterdir()
    export(run, tmp_path / "out.pth")
    released = torch.load(tmp_path / "out.pth", weights_only=True)
    assert "model_ema" not in released
    assert_states_equal(released["model"], best["model_ema"]["weights"])


def test_resuming_a_training_without_an_average_with_one_is_one_line(tmp_path, capsys):
    train_script.main(["--option_path", options_file(tmp_path, "source", iterations=4), "--stop-after", "2"])
    (latest,) = (tmp_path / "logs" / "pansharpening" / "source").glob("*/checkpoints/latest.pth")
    bare = tmp_path / "bare.pth"  # outside a run folder: only the file itself can be checked
    bare.write_bytes(latest.read_bytes())
    capsys.readouterr()
    averaged = options_file(tmp_path, "averaged", iterations=4, ema_decay=0.9)
    with pytest.raises(SystemExit) as stop:
        train_script.main(["--option_path", averaged, "--set", f"train.resume={bare}"])
    assert stop.value.code == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "without train.ema_decay" in line and "bare.pth" in line


def test_a_decay_outside_zero_to_one_is_one_line(tmp_path):
    proc = run_script("train", "--option_path", options_file(tmp_path, "bad", ema_decay=1.0))
    assert proc.returncode == 2
    (line,) = [x for x in proc.stderr.splitlines() if x.strip()]
    assert "train.ema_decay" in line and "[0, 1)" in line
