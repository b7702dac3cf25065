"""utils.memory.keep_freed_memory: glibc's malloc keeps freed blocks, so a training step stops
page-faulting (measured in fresh processes, as train.py runs)."""

from __future__ import annotations

import json
import platform
import subprocess
import sys
from pathlib import Path

import pytest

from utils.memory import KEEP_SETTINGS, M_MMAP_THRESHOLD, M_TOP_PAD, M_TRIM_THRESHOLD, keep_freed_memory

ROOT = Path(__file__).resolve().parents[1]
GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"


def test_the_settings_are_glibcs_parameters_within_its_limits():
    # malloc.h: M_TRIM_THRESHOLD -1, M_TOP_PAD -2, M_MMAP_THRESHOLD -3; the mmap threshold may not
    # exceed HEAP_MAX_SIZE / 2 = 32 MiB on 64-bit systems (mallopt refuses larger values)
    assert (M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD) == (-1, -2, -3)
    assert KEEP_SETTINGS[M_MMAP_THRESHOLD] == 32 * 2**20
    assert KEEP_SETTINGS[M_TRIM_THRESHOLD] > 2 * KEEP_SETTINGS[M_MMAP_THRESHOLD]


@pytest.mark.skipif(GLIBC, reason="the no-op branch: this C library is glibc")
def test_other_c_libraries_are_left_alone():
    assert keep_freed_memory() is False


def worker(mode: str) -> dict:
    """bench/bench_allocator.py's measurement in a fresh process (8 steps of the demo's RAMSF at batch 4)."""
    command = [
        sys.executable,
        str(ROOT / "bench" / "bench_allocator.py"),
        "--worker",
        mode,
        "--steps",
        "8",
        "--batch",
        "4",
    ]
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not GLIBC, reason="keep_freed_memory changes glibc's malloc only")
def test_a_training_step_stops_page_faulting():
    kept, default = worker("keep"), worker("default")
    assert kept["applied"] is True and default["applied"] is False
    # measured on the development VMs: 1000-2300 minor faults per step by default, 10-100 kept
    message = f"kept: {kept['faults']:.0f} faults per step (default {default['faults']:.0f})"
    assert kept["faults"] < 300, message
