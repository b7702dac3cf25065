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


def one_line(exc: BaseException) -> str:
    """The message of ``exc`` on one line.

    An error raised in a DataLoader worker is re-raised by torch with the worker's traceback in
    its message; only the original error's own line is kept.
    """
    text = str(exc)
    if "Original Traceback" in text:
        last = text.strip().splitlines()[-1]
        text = last.split(": ", 1)[1] if ": " in last else last
    if isinstance(exc, OSError) and exc.filename is not None:
        text = f"{exc.strerror or text}: '{exc.filename}' (check the path and its permissions)"
    return " ".join(text.split())


def exit_on_user_error(main: Callable[..., T]) -> Callable[..., T]:
    """Wrap a command-line ``main``: a :class:`UserInputError`, or an operating-system error
    (unreadable or unwritable path), prints ``error: ...`` on one line and exits with code 2."""

    @wraps(main)
    def wrapper(*args: object, **kwargs: object) -> T:
        try:
            return main(*args, **kwargs)
        except (UserInputError, OSError) as exc:
            print(f"error: {one_line(exc)}", file=sys.stderr)
            raise SystemExit(EXIT_USER_ERROR) from None

    return wrapper
