"""torchrun with 2 CPU processes (gloo), stopped and resumed half way, trains to the weights of one
process with the same global batch, and only rank 0 writes the run folder, log and TensorBoard."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from engine.checkpoint import load_checkpoint
from tests.conftest import ROOT

FIXTURE = ROOT / "tests" / "data" / "pancollection" / "train_wv3_tiny.h5"
TOLERANCE = 1e-6  # float summation order differs between one batch of 4 and two of 2


def write_options(tmp_path: Path, log_root: str) -> Path:
    tree = {
        "name": "ddp",
        "task": "pansharpening",
        "device": "cpu",
        "log_root": str(tmp_path / log_root),
        "data": {"scale": 2047, "train": str(FIXTURE), "valid": str(FIXTURE), "augment": True},
        "model": {"name": "TinyFusion", "hidden": 6},
        "train": {
            "batch_size": 4,
            "iterations": 6,
            "save_every": 3,
            "optimizer": {"name": "Adam", "lr": 1e-3},
            "scheduler": {"name": "CosineAnnealingLR"},
        },
        "val": {"every": 3, "unit": "iteration"},
    }
    path = tmp_path / f"{log_root}.yml"
    path.write_text(yaml.safe_dump(tree))
    return path


def run(command: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return done


@pytest.mark.skipif(not torch.distributed.is_gloo_available(), reason="torch built without gloo")
def test_two_processes_match_one(tmp_path):
    two = write_options(tmp_path, "two")
    one = write_options(tmp_path, "one")
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    run([*torchrun, "train.py", "--option_path", str(two), "--stop-after", "3"])
    done = run([*torchrun, "train.py", "--option_path", str(two)])  # resumes at step 3
    assert "resumed from" in done.stdout + done.stderr
    run([sys.executable, "train.py", "--option_path", str(one)])

    runs = list((tmp_path / "two" / "pansharpening" / "ddp").iterdir())
    assert len(runs) == 1  # rank 1 created no folder of its own
    folder = runs[0]
    assert len(list(folder.glob("events.out.tfevents.*"))) == 2  # one per launch, from rank 0 only
    assert (folder / "train.log").read_text().count("run folder:") == 2  # the start and the resume
    assert (done.stdout + done.stderr).count("step 6: validation") == 1  # rank 0 logs alone

    single = load_checkpoint(next((tmp_path / "one").rglob("latest.pth")))
    multi = load_checkpoint(folder / "checkpoints" / "latest.pth")
    assert multi["step"] == single["step"] == 6
    for key, value in single["model"].items():
        assert torch.allclose(multi["model"][key], value, rtol=0, atol=TOLERANCE), key
    for a, b in zip(single["optimizer"]["state"].values(), multi["optimizer"]["state"].values(), strict=True):
        assert torch.allclose(a["exp_avg"], b["exp_avg"], rtol=1e-5, atol=1e-9)
    assert multi["scheduler"] == single["scheduler"]
    for a, b in zip(single["history"], multi["history"], strict=True):  # validation gathered from both ranks
        assert a["ERGAS"] == pytest.approx(b["ERGAS"], rel=1e-6)
