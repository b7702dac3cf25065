"""User-facing errors: one line that says what is wrong and how to fix it, exit code 2."""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import wraps
from typing import TypeVar

T = TypeVar("T")

EXIT_USER_ERROR = 2


class UserInputError(Exception):
    """Bad input from the user (file, option, shape). The message is shown as is, on one line.

    Raise it instead of ``assert`` for anything a user controls: asserts vanish under
    ``python -O`` and print a traceback that does not say what to change.
    """


def exit_on_user_error(main: Callable[..., T]) -> Callable[..., T]:
    """Wrap a command-line ``main`` so a :class:`UserInputError` prints ``error: ...`` and exits 2."""

    @wraps(main)
    def wrapper(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        except UserInputError as exc:
            message = " ".join(str(exc).split())
            print(f"error: {message}", file=sys.stderr)
            raise SystemExit(EXIT_USER_ERROR) from None

    return wrapper
