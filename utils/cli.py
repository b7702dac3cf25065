"""Command-line helpers: an argument parser whose errors are one line, and value parsers."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from typing import NoReturn

from utils.errors import UserInputError


class OneLineParser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` whose usage errors raise a one-line :class:`UserInputError`
    (printed as ``error: ...`` with exit status 2 by :func:`utils.errors.exit_on_user_error`)
    that points to the command's ``--help``."""

    def error(self, message: str) -> NoReturn:
        raise UserInputError(f"{message} (see {self.prog} --help)")


def int_at_least(minimum: int) -> Callable[[str], int]:
    """An argparse ``type`` that accepts integers >= ``minimum`` only."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = minimum - 1
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got '{text}'")
        return value

    return parse


def positive_float(text: str) -> float:
    """An argparse ``type``: a finite, strictly positive number."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a positive number, got '{text}'")
    return value
