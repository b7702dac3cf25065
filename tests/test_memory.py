"""utils.memory.keep_freed_memory: glibc's malloc keeps freed blocks, so a training step stops
page-faulting (measured in fresh processes, as train.py runs)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from utils import memory

ROOT = Path(__file__).resolve().parents[1]
GLIBC = memory.is_glibc()


def run(code: str) -> str:
    """stdout of ``python -c code`` in a fresh process at the repository root."""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    return done.stdout


@pytest.mark.skipif(not GLIBC, reason="keep_freed_memory changes glibc's malloc only")
def test_glibc_accepts_every_setting():
    # mallopt returns 0 for a refused value (glibc answers 1 even to an unknown parameter, so
    # what the settings do is checked by the page faults below)
    assert run("from utils.memory import keep_freed_memory; print(keep_freed_memory())").strip() == "True"


def test_other_c_libraries_are_left_alone(monkeypatch):
    called = []
    monkeypatch.setattr(memory, "is_glibc", lambda: False)
    monkeypatch.setattr(memory.ctypes, "CDLL", lambda *args: called.append(args))
    assert memory.keep_freed_memory() is False and not called


def worker(mode: str) -> dict:
    """bench/bench_allocator.py's measurement in a fresh process (8 steps of the demo's RAMSF at batch 4)."""
    command = [sys.executable, str(ROOT / "bench" / "bench_allocator.py"), "--worker", mode]
    command += ["--steps", "8", "--batch", "4"]
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not GLIBC, reason="keep_freed_memory changes glibc's malloc only")
def test_a_training_step_stops_page_faulting():
    kept, default = worker("keep"), worker("default")
    assert kept["applied"] is True and default["applied"] is False
    # measured on the development VMs at batch 4: 2400-3700 minor faults per step by default,
    # 16-100 kept
    message = f"kept: {kept['faults']:.0f} faults per step, default {default['faults']:.0f}"
    assert kept["faults"] < 300 and default["faults"] > 5 * kept["faults"], message


def test_huge_pages_are_asked_for_unless_the_environment_says_otherwise(monkeypatch):
    monkeypatch.delenv("THP_MEM_ALLOC_ENABLE", raising=False)
    memory.use_huge_pages()
    assert memory.os.environ["THP_MEM_ALLOC_ENABLE"] == "1"
    monkeypatch.setenv("THP_MEM_ALLOC_ENABLE", "0")
    memory.use_huge_pages()
    assert memory.os.environ["THP_MEM_ALLOC_ENABLE"] == "0"
