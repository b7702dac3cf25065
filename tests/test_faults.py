"""Faults, end to end: a training process killed at a random step resumes onto the weights of an
uninterrupted run; a kill during a checkpoint write never leaves an unreadable checkpoint; a
diverging run stops with one line and keeps its last good checkpoint."""

from __future__ import annotations

import io
import itertools
import multiprocessing
import os
import random
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from test_train_and_test_scripts import assert_states_equal, latest_state, options_file

from engine.checkpoint import load_checkpoint, save_atomic
from tests.conftest import ROOT, SCRIPT_ENV, error_lines, run_script, script_command

SEED = 20240611  # chooses the kill moments
SETTINGS = ("--set", "deterministic=true", "--set", "tensorboard=false", "--set", "device=cpu")


def wait_for_step(proc: subprocess.Popen, runs: Path, step: int, timeout: float = 300) -> int:
    """Poll the ``latest.pth`` under ``runs`` until it holds ``step`` or later; returns its step.

    Every read must succeed: the checkpoint is replaced atomically while training writes it.
    """
    deadline = time.monotonic() + timeout
    seen = None
    while time.monotonic() < deadline:
        assert proc.poll() is None, "training ended before it could be killed: raise its iterations"
        found = sorted(runs.glob("*/checkpoints/latest.pth"))
        if found and found[-1].stat().st_mtime_ns != seen:
            seen = found[-1].stat().st_mtime_ns
            current = int(load_checkpoint(found[-1])["step"])
            if current >= step:
                return current
        time.sleep(0.005)
    pytest.fail(f"no checkpoint of step {step} within {timeout} s")


def test_killed_training_resumes_onto_the_uninterrupted_run(tmp_path):
    total = 60
    paths = {}
    for name in ("straight", "killed"):
        (tmp_path / name).mkdir()
        paths[name] = options_file(tmp_path / name, "run", iterations=total, save_every=1)
    procs = {
        name: subprocess.Popen(
            script_command("train", "--option_path", paths[name], *SETTINGS),
            cwd=ROOT,
            env=SCRIPT_ENV,
            stdout=(tmp_path / name / "output.txt").open("w"),
            stderr=subprocess.STDOUT,
        )
        for name in ("straight", "killed")
    }
    runs = tmp_path / "killed" / "logs" / "pansharpening" / "run"
    kill_at = random.Random(SEED).randint(3, total // 2)
    wait_for_step(procs["killed"], runs, kill_at)
    os.kill(procs["killed"].pid, signal.SIGKILL)
    assert procs["killed"].wait(timeout=60) == -signal.SIGKILL
    saved = latest_state(tmp_path / "killed", "run")["step"]
    assert kill_at <= saved < total

    resumed = run_script("train", "--option_path", paths["killed"], *SETTINGS)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert f"resumed from {runs}" in resumed.stdout and f"at step {saved}/{total}" in resumed.stdout
    assert procs["straight"].wait(timeout=300) == 0, (tmp_path / "straight" / "output.txt").read_text()

    straight, killed = latest_state(tmp_path / "straight", "run"), latest_state(tmp_path / "killed", "run")
    assert straight["step"] == killed["step"] == total
    for key in ("model", "optimizer", "scheduler", "best", "history"):
        assert_states_equal(straight[key], killed[key])
    (run,) = runs.iterdir()  # the resumed run continued in its own folder
    (other,) = (tmp_path / "straight" / "logs" / "pansharpening" / "run").iterdir()
    best = [torch.load(r / "checkpoints" / "best.pth", weights_only=True) for r in (other, run)]
    assert_states_equal(best[0]["model"], best[1]["model"])
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["best.pth", "latest.pth"]


SIZE = 1 << 20  # float32 values per saved state: 4 MB
CHUNK = 1 << 18


def saved_state(index: int) -> dict:
    return {"index": index, "weights": torch.from_numpy(np.full(SIZE, index, dtype=np.float32))}


def slow_saver(path: str, first: int, done) -> None:
    """Save states ``first``, ``first + 1``, ... through save_atomic until killed, each written
    in chunks with pauses so that a kill lands in the middle of a write; ``done`` is the last
    index whose save returned."""
    fast_save = torch.save

    def slow_save(obj, handle) -> None:
        buffer = io.BytesIO()
        fast_save(obj, buffer)
        data = buffer.getvalue()
        for start in range(0, len(data), CHUNK):
            handle.write(data[start : start + CHUNK])
            time.sleep(0.002)

    torch.save = slow_save  # in this child process only
    for index in itertools.count(first):
        save_atomic(saved_state(index), path)
        done.value = index


def temporary_files(folder: Path) -> list[Path]:
    return [p for p in folder.iterdir() if p.name != "latest.pth"]


def test_a_kill_during_a_checkpoint_write_leaves_a_readable_checkpoint(tmp_path):
    path = tmp_path / "checkpoints" / "latest.pth"
    context = multiprocessing.get_context("fork")  # no second torch import: the child is a copy
    done = context.Value("q", -1)
    rng = random.Random(SEED)
    first, interrupted = 0, 0
    for _ in range(6):
        child = context.Process(target=slow_saver, args=(str(path), first, done))
        child.start()
        deadline = time.monotonic() + 60
        while done.value < first and time.monotonic() < deadline:
            time.sleep(0.002)
        time.sleep(rng.uniform(0.0, 0.05))
        os.kill(child.pid, signal.SIGKILL)
        child.join()
        assert done.value >= first, "the saver made no checkpoint in 60 s"
        state = load_checkpoint(path)
        index = state["index"]
        # the last save that returned, or the next one when the kill came after its rename
        assert index in (done.value, done.value + 1)
        assert torch.equal(state["weights"], saved_state(index)["weights"])
        leftovers = temporary_files(path.parent)
        assert len(leftovers) <= 1  # an earlier leftover is removed by the next save
        assert all(p.name.startswith(".latest.pth.") and p.suffix == ".tmp" for p in leftovers)
        assert [p.name for p in path.parent.glob("*.pth")] == ["latest.pth"]
        interrupted += len(leftovers)
        first = index + 1
    assert interrupted >= 1, "no kill landed during a write: the test did not test anything"
    save_atomic(saved_state(first), path)
    assert temporary_files(path.parent) == []
    assert load_checkpoint(path)["index"] == first


def test_a_diverging_run_stops_with_one_line_and_keeps_the_last_good_checkpoint(tmp_path):
    path = options_file(tmp_path, "diverges", iterations=10, save_every=1)
    proc = run_script(
        "train",
        "--option_path",
        path,
        *SETTINGS,
        "--set",
        "train.optimizer.lr=1e36",
        "--set",
        "data.valid=null",
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 2, output
    assert "Traceback" not in output
    (line,) = error_lines(proc)
    assert "the loss became inf at step 2" in line
    assert "the last good checkpoint is kept" in line and "lower train.optimizer.lr" in line
    state = latest_state(tmp_path, "diverges")
    assert state["step"] == 1
    assert all(torch.isfinite(v).all() for v in state["model"].values())
