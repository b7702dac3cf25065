"""Wall-clock timing shared by the bench scripts, and a training run in its own process."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import torch

from engine.options import load_options
from engine.run_dir import list_runs

T = TypeVar("T")


def timed(fn: Callable[[], T], repeat: int, device: torch.device) -> tuple[T, float]:
    """Result of ``fn()`` and its best wall-clock time in seconds over ``repeat`` runs.

    On a GPU the device is synchronised around each run, so queued kernels are counted.
    """
    best = float("inf")
    for _ in range(repeat):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        result = fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        best = min(best, time.perf_counter() - start)
    return result, best


def train_process(root: Path, option_path: str | Path, sets: list[str]) -> tuple[Path, float]:
    """Train in a fresh ``python train.py`` process of the checkout ``root`` with the option file
    ``option_path`` (relative to root) and the ``--set`` overrides ``sets`` (its output discarded);
    (the run folder it wrote, wall seconds)."""
    command = [sys.executable, str(root / "train.py"), "--option_path", str(root / option_path)]
    for item in sets:
        command += ["--set", item]
    start = time.perf_counter()
    subprocess.run(command, cwd=root, check=True, stdout=subprocess.DEVNULL)
    seconds = time.perf_counter() - start
    return list_runs(load_options(root / option_path, sets))[-1], seconds
