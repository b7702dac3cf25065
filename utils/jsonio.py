"""Strict JSON: NaN and infinities become ``null`` (JSON has no NaN), never ``NaN`` tokens."""

from __future__ import annotations

import json
import math
from typing import Any


def strict_json(value: Any) -> Any:
    """``value`` (nested dicts, lists, tuples, floats) with NaN and infinities replaced by None."""
    if isinstance(value, dict):
        return {k: strict_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [strict_json(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def dumps_strict(value: Any, indent: int = 1) -> str:
    """``json.dumps`` of :func:`strict_json` (``value``); refuses anything that is still not JSON."""
    return json.dumps(strict_json(value), indent=indent, allow_nan=False)
