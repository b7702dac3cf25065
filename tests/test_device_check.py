"""bench/device_check.py, the one-go check for a GPU machine, runs clean on the CPU: a mistake in
it would otherwise first show on a lent GPU, whose minutes are few."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_device_check_passes_on_the_cpu():
    command = [sys.executable, "bench/device_check.py", "--device", "cpu", "--skip-bench"]
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=600)
    line = next(x for x in done.stdout.splitlines() if x.startswith("=== summary: "))
    summary = json.loads(line.removeprefix("=== summary: "))
    # models, metrics, bf16 training steps, torchrun with 2 gloo processes, predict.py tiling
    assert summary == {"PASS": 5, "FAIL": 0, "SKIP": 0}, done.stdout[-3000:]
    assert done.returncode == 0
