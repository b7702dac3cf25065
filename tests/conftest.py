"""Shared test fixtures."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

GOLDEN = Path(__file__).parent / "golden"


@pytest.fixture(scope="session")
def golden_values() -> dict:
    """Scalar outputs of the MATLAB toolbox (``tests/golden/values.json``)."""
    return json.loads((GOLDEN / "values.json").read_text())


def load_golden(name: str) -> dict[str, np.ndarray]:
    """Arrays of ``tests/golden/<name>.npz`` as a plain dict."""
    with np.load(GOLDEN / f"{name}.npz") as data:
        return {key: data[key] for key in data.files}
