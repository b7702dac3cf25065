"""Shared test fixtures."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

GOLDEN = Path(__file__).parent / "golden"
ROOT = Path(__file__).resolve().parents[1]
# one torch thread per process: on a small, shared CPU several threads spin against each other
SCRIPT_ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="session")
def golden_values() -> dict:
    """Scalar outputs of the MATLAB toolbox (``tests/golden/values.json``)."""
    return json.loads((GOLDEN / "values.json").read_text())


def load_golden(name: str) -> dict[str, np.ndarray]:
    """Arrays of ``tests/golden/<name>.npz`` as a plain dict."""
    with np.load(GOLDEN / f"{name}.npz") as data:
        return {key: data[key] for key in data.files}


def load_script(name: str):
    """Import train.py / test.py by path ('test' would clash with the standard library's package)."""
    spec = importlib.util.spec_from_file_location(f"ramsf_script_{name}", ROOT / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def script_command(script: str, *args: str) -> list[str]:
    """``python <script>.py ARGS`` of this repository (train or test), for subprocess."""
    return [sys.executable, str(ROOT / f"{script}.py"), *args]


def run_script(script: str, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run train.py or test.py in a subprocess; stdout and stderr are captured as text."""
    return subprocess.run(
        script_command(script, *args),
        cwd=ROOT,
        env=SCRIPT_ENV,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def error_lines(proc: subprocess.CompletedProcess) -> list[str]:
    """The lines of stdout and stderr that start with ``error:``."""
    return [line for line in (proc.stdout + proc.stderr).splitlines() if line.startswith("error:")]
