"""bench/bench_profile.py: its operator groups (hand values) and one short run on the CPU."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.bench_profile import group_of, grouped  # noqa: E402


def test_operators_fall_into_their_groups():
    times = {
        "aten::mm": 3.0,
        "aten::addmm_": 1.0,
        "aten::convolution_backward": 5.0,
        "aten::index_add_": 0.5,
        "aten::copy_": 0.25,
        "aten::relu_": 2.0,
        "QueryMLPBackward": 1.0,
    }
    assert group_of("aten::addmm") == "matrix products" and group_of("aten::sum") == "other"
    assert grouped(times) == {
        "convolutions": 5.0,
        "matrix products": 4.0,
        "gathers and scatters": 0.5,
        "casts and copies": 0.25,
        "other": 3.0,
    }
    assert sum(grouped(times).values()) == pytest.approx(sum(times.values()))


def test_a_short_profile_runs_and_its_shares_add_up():
    command = [
        sys.executable,
        "bench/bench_profile.py",
        "--amp",
        "none",
        "--size",
        "16",
        "--batch",
        "2",
        "--steps",
        "2",
        "--top",
        "3",
    ]
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    start = lines.index(next(x for x in lines if x.startswith("group")))
    shares = [float(line.split()[-1].rstrip("%")) for line in lines[start + 1 : start + 6]]
    assert sum(shares) == pytest.approx(100, abs=0.3)
    assert "precision float32" in done.stdout
