"""train.py and test.py end to end on the tiny fixtures: resume, TensorBoard, results files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from tests.conftest import ROOT, load_script
from utils.jsonio import strict_json

FIXTURES = ROOT / "tests" / "data" / "pancollection"


train_script = load_script("train")
test_script = load_script("test")


def options_file(tmp_path: Path, name: str, **train) -> str:
    tree = {
        "name": name,
        "task": "pansharpening",
        "log_root": str(tmp_path / "logs"),
        "data": {
            "scale": 2047,
            "train": str(FIXTURES / "train_wv3_tiny.h5"),
            "valid": str(FIXTURES / "train_wv3_tiny.h5"),
            "test_reduced": [str(FIXTURES / "train_wv3_tiny.h5")],
            "test_full": [str(FIXTURES / "test_wv3_OrigScale_tiny.h5")],
            "augment": True,
            "sensor": "WV3",
        },
        "model": {"name": "TinyFusion"},
        "train": {
            "batch_size": 2,
            "iterations": 40,
            "log_every": 5,
            "save_every": 7,
            "optimizer": {"name": "Adam", "lr": 1e-3},
            "scheduler": {"name": "MultiStepLR", "milestones": [15, 30], "gamma": 0.5},
            **train,
        },
        "val": {"every": 10, "unit": "iteration", "images": 1},
        "test": {"dim_cut": 0},
    }
    path = tmp_path / f"{name}.yml"
    path.write_text(yaml.safe_dump(tree))
    return str(path)


def latest_state(tmp_path: Path, name: str) -> dict:
    (path,) = (tmp_path / "logs" / "pansharpening" / name).glob("*/checkpoints/latest.pth")
    return torch.load(path, weights_only=True)


def assert_states_equal(a, b) -> None:
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for key in a:
            assert_states_equal(a[key], b[key])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            assert_states_equal(x, y)
    elif torch.is_tensor(a):
        assert torch.equal(a, b)
    else:
        assert a == b


def test_resume_equals_straight_run(tmp_path):
    straight = options_file(tmp_path, "straight")
    train_script.main(["--option_path", straight])
    split = options_file(tmp_path, "split")
    train_script.main(["--option_path", split, "--stop-after", "20"])
    assert latest_state(tmp_path, "split")["step"] == 20
    train_script.main(["--option_path", split])  # resume: auto continues the same run folder
    a, b = latest_state(tmp_path, "straight"), latest_state(tmp_path, "split")
    assert a["step"] == b["step"] == 40
    for key in ("model", "optimizer", "scheduler", "best", "history"):
        assert_states_equal(a[key], b[key])
    assert len(list((tmp_path / "logs" / "pansharpening" / "split").iterdir())) == 1


def test_event_files_hold_scalars_and_images(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    train_script.main(["--option_path", options_file(tmp_path, "tb", iterations=20)])
    (run,) = (tmp_path / "logs" / "pansharpening" / "tb").iterdir()
    events = EventAccumulator(str(run), size_guidance={"images": 0, "scalars": 0}).Reload()
    scalars, images = set(events.Tags()["scalars"]), set(events.Tags()["images"])
    assert {"train/loss", "train/lr", "val/SAM", "val/ERGAS", "val/Q2n"} <= scalars
    assert "val/image_0" in images  # one figure per validation image (val.images: 1)
    figure = events.Images("val/image_0")[-1]
    assert figure.width >= 1200 and figure.height >= 300  # lr | up | fused | gt | error, readable
    # the hparams page reads the run's own curves: no extra single-point runs or scalar cards
    assert not [p for p in run.iterdir() if p.is_dir() and p.name != "checkpoints"]
    assert not [t for t in scalars if t.startswith("hparam")]
    lrs = [e.value for e in events.Scalars("train/lr")]
    assert lrs[0] == pytest.approx(1e-3) and lrs[-1] == pytest.approx(5e-4)  # milestone 15
    for name in ("options.yml", "command.txt", "environment.txt", "train.log"):
        assert (run / name).is_file()


def test_test_script_writes_results(tmp_path):
    path = options_file(tmp_path, "scored", iterations=10)
    train_script.main(["--option_path", path])
    results = test_script.main(["--option_path", path])
    (run,) = (tmp_path / "logs" / "pansharpening" / "scored").iterdir()
    saved = json.loads((run / "test_results.json").read_text())
    assert saved == strict_json(results)  # NaN (Q_avg of 16 x 16 images) stored as null
    reduced = saved["files"][str(FIXTURES / "train_wv3_tiny.h5")]["methods"]
    assert set(reduced) == {"TinyFusion", "EXP (input up)"}
    assert {"SAM", "ERGAS", "Q2n", "SCC"} <= set(reduced["TinyFusion"]["mean"])
    full = saved["files"][str(FIXTURES / "test_wv3_OrigScale_tiny.h5")]["methods"]["TinyFusion"]
    assert {"D_lambda", "D_s", "QNR", "HQNR"} <= set(full["mean"])
    assert (run / "test_results.csv").read_text().startswith("file,resolution,method,index,mean,std")


def test_unknown_option_exits_2_with_one_line(tmp_path):
    path = Path(options_file(tmp_path, "typo"))
    path.write_text(path.read_text().replace("batch_size:", "batchsize:"))
    proc = subprocess.run(
        [sys.executable, "train.py", "--option_path", str(path)], cwd=ROOT, capture_output=True, text=True
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0
    assert "unknown option 'train.batchsize'" in proc.stderr and "batch_size" in proc.stderr


def test_fused_images_are_saved(tmp_path):
    import h5py

    path = options_file(tmp_path, "saved", iterations=2)
    train_script.main(["--option_path", path])
    test_script.main(["--option_path", path, "--set", "test.save_images=h5", "--set", "test.baseline=false"])
    (run,) = (tmp_path / "logs" / "pansharpening" / "saved").iterdir()
    files = sorted((run / "fused").glob("train_wv3_tiny_*.h5"))
    assert len(files) == 4
    with h5py.File(files[0], "r") as handle, h5py.File(FIXTURES / "train_wv3_tiny.h5", "r") as data:
        fused = handle["fused"][()]
        assert fused.shape == data["gt"].shape[1:]
        assert abs(fused.mean() - data["lms"][0].mean()) < 0.2 * data["lms"][0].mean()  # DN scale


def poison_after(monkeypatch, good_steps: int) -> None:
    """Make the model's training output NaN from training step ``good_steps + 1`` on."""
    import engine.trainer

    calls = {"n": 0}
    real = engine.trainer.fuse

    def fuse(model, batch, auxiliary=()):
        calls["n"] += 1
        fused = real(model, batch, auxiliary)
        return fused * float("nan") if calls["n"] > good_steps else fused

    monkeypatch.setattr(engine.trainer, "fuse", fuse)


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, capsys, monkeypatch):
    poison_after(monkeypatch, 5)
    path = options_file(tmp_path, "diverges", iterations=30, save_every=1)
    with pytest.raises(SystemExit) as stop:
        train_script.main(["--option_path", path])
    assert stop.value.code == 2
    assert "the loss became nan at step 6" in capsys.readouterr().err
    state = latest_state(tmp_path, "diverges")
    assert state["step"] == 5
    assert all(torch.isfinite(v).all() for v in state["model"].values())


def test_non_finite_loss_can_skip_the_batch(tmp_path, monkeypatch):
    poison_after(monkeypatch, 5)
    path = options_file(tmp_path, "skips", iterations=8, save_every=1, nonfinite_loss="skip")
    train_script.main(["--option_path", path])
    state = latest_state(tmp_path, "skips")
    assert state["step"] == 8
    assert all(torch.isfinite(v).all() for v in state["model"].values())


def test_resume_refuses_changed_training_options(tmp_path, capsys):
    path = options_file(tmp_path, "changed", iterations=4)
    train_script.main(["--option_path", path, "--stop-after", "2"])
    with pytest.raises(SystemExit) as stop:
        train_script.main(["--option_path", path, "--set", "train.optimizer.lr=0.01"])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert "train.optimizer.lr 0.001 -> 0.01" in err and "train.resume: none" in err
    train_script.main(["--option_path", path, "--set", "train.log_every=1"])  # logging may change
    assert latest_state(tmp_path, "changed")["step"] == 4
    assert train_script.main(["--option_path", path]) is not None  # finished: nothing to do
    assert latest_state(tmp_path, "changed")["step"] == 4


def test_resume_from_a_path_refuses_other_options_and_another_optimizer(tmp_path, capsys):
    """train.resume: PATH is checked too: against the options of the run folder the checkpoint
    sits in, and, for a file outside a run folder, against the optimizer state it holds (loading
    it would have put the saved settings in place of the options', or failed inside step)."""
    path = options_file(tmp_path, "source", iterations=4)
    train_script.main(["--option_path", path, "--stop-after", "2"])
    (latest,) = (tmp_path / "logs" / "pansharpening" / "source").glob("*/checkpoints/latest.pth")
    bare = tmp_path / "bare.pth"
    bare.write_bytes(latest.read_bytes())
    capsys.readouterr()  # the first training's progress bar
    attempts = [
        (latest, ["train.optimizer.lr=0.01"], "train.optimizer.lr 0.001 -> 0.01"),
        (bare, ["train.optimizer.name=SGD"], "momentum None -> 0.9"),
        (bare, ["train.optimizer.lr=0.01"], "initial_lr 0.001 -> 0.01"),
    ]
    for source, overrides, expected in attempts:
        sets = [x for o in [f"train.resume={source}", *overrides] for x in ("--set", o)]
        with pytest.raises(SystemExit) as stop:
            train_script.main(["--option_path", options_file(tmp_path, "resumed", iterations=4), *sets])
        assert stop.value.code == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and expected in err[0], err
    train_script.main(
        ["--option_path", options_file(tmp_path, "resumed", iterations=4), "--set", f"train.resume={bare}"]
    )
    assert latest_state(tmp_path, "resumed")["step"] == 4


def test_worker_errors_are_reported_on_one_line():
    from utils.errors import UserInputError, one_line

    wrapped = UserInputError(
        "Caught UserInputError in DataLoader worker process 0.\nOriginal Traceback (most recent call "
        'last):\n  File "x.py", line 1\nutils.errors.UserInputError: f.h5: sample 3 has NaN pixels'
    )
    assert one_line(wrapped) == "f.h5: sample 3 has NaN pixels"
    assert one_line(PermissionError(13, "Permission denied", "/x")).startswith("Permission denied: '/x'")


def test_dataset_type_comes_from_the_registry(tmp_path, capsys):
    path = options_file(tmp_path, "dstype", iterations=2)
    with pytest.raises(SystemExit):
        train_script.main(["--option_path", path, "--set", "data.type=FusionH5Datset"])
    assert "did you mean 'FusionH5Dataset'" in capsys.readouterr().err


def test_bf16_autocast_trains_and_fp16_needs_a_gpu(tmp_path, capsys):
    """train.amp: bf16 runs on the CPU (float32 loss and weights, loss close to float32's);
    fp16 on the CPU is refused with one line."""
    path = options_file(tmp_path, "amp", iterations=3, save_every=3)
    full = train_script.main(
        ["--option_path", path, "--set", "data.valid=null", "--set", "log_root=" + str(tmp_path / "a")]
    )
    half = train_script.main(
        [
            "--option_path",
            path,
            "--set",
            "data.valid=null",
            "--set",
            "train.amp=bf16",
            "--set",
            "log_root=" + str(tmp_path / "b"),
        ]
    )
    assert full == half == {}  # no validation file: no metrics history
    a = torch.load(next((tmp_path / "a").rglob("latest.pth")), weights_only=True)["model"]
    b = torch.load(next((tmp_path / "b").rglob("latest.pth")), weights_only=True)["model"]
    assert all(v.dtype == torch.float32 for v in b.values())
    diffs = [(a[k] - b[k]).abs().max().item() for k in a]
    assert 0 < max(diffs) < 1e-2  # bf16 rounding changes the steps a little, not the direction
    with pytest.raises(SystemExit) as stop:
        train_script.main(["--option_path", path, "--set", "train.amp=fp16", "--set", "train.resume=none"])
    assert stop.value.code == 2
    assert "fp16 needs a CUDA device" in capsys.readouterr().err


def test_amp_auto_follows_the_devices_native_bf16(monkeypatch):
    """train.amp: auto is bf16 where the CPU lists bf16 units (AMX, AVX-512 BF16), else float32."""
    import engine.training_parts as parts

    cpu = torch.device("cpu")
    monkeypatch.setattr(parts, "cpu_flags", lambda: {"avx2", "fma"})
    assert parts.resolve_amp(cpu, "auto") == "none"
    assert isinstance(parts.autocast(cpu, "auto"), type(parts.autocast(cpu, "none")))
    for flag in ("avx512_bf16", "amx_bf16"):
        monkeypatch.setattr(parts, "cpu_flags", lambda flag=flag: {"avx2", flag})
        assert parts.resolve_amp(cpu, "auto") == "bf16"
        with parts.autocast(cpu, "auto"):
            assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.bfloat16
    assert parts.resolve_amp(cpu, "none") == "none" and parts.resolve_amp(cpu, "bf16") == "bf16"
    assert not parts.grad_scaler(cpu, "auto").is_enabled()


def test_export_releases_weights_that_score_like_the_run(tmp_path):
    """python -m engine.export: weights and record only, the run's provenance beside them, and
    the same test indices as the run's own best.pth."""
    from engine.export import main as export_main

    path = options_file(tmp_path, "released", iterations=6, save_every=3)
    train_script.main(["--option_path", path])
    (run,) = (tmp_path / "logs" / "pansharpening" / "released").iterdir()
    out = tmp_path / "release" / "model.pth"
    export_main([str(run), str(out), "--test", path])
    state = torch.load(out, weights_only=True)
    assert {"model", "model_record"} <= set(state) and "optimizer" not in state
    assert out.stat().st_size < (run / "checkpoints" / "best.pth").stat().st_size
    info = json.loads(out.with_suffix(".json").read_text())
    assert info["command"] and "name: released" in info["options"] and info["commit"]
    direct = test_script.main(["--option_path", path])  # the run's best.pth
    for entry in direct["files"].values():
        kind = "reduced" if entry["resolution"] == "reduced resolution" else "full"
        for key, value in entry["methods"]["TinyFusion"]["mean"].items():
            if value == value:  # NaN (Q_avg of 16 x 16 images) is null in the JSON
                assert info["test"][kind][key] == pytest.approx(value, abs=1e-12), key
    with pytest.raises(SystemExit) as stop:
        export_main([str(tmp_path / "nothing"), str(out)])
    assert stop.value.code == 2
