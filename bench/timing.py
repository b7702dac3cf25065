"""Wall-clock timing shared by the bench scripts."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import torch

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
