"""Registries: one per kind (model, dataset, loss), filled by decorating a class or function.

A YAML entry ``{name: RAMSF, width: 64}`` becomes ``MODELS.build("RAMSF", width=64)``.
Unknown names are refused with the closest registered name suggested.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import pkgutil
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from utils.errors import UserInputError

T = TypeVar("T")


def suggest(name: str, choices: Iterable[str]) -> str:
    """Return ``" (did you mean 'x'?)"`` for the closest choice, or an empty string."""
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.5)
    return f" (did you mean '{close[0]}'?)" if close else ""


class Registry:
    """Maps names to constructors of one kind of object."""

    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, Callable[..., Any]] = {}

    def register(self, obj: T | None = None, *, name: str | None = None) -> T | Callable[[T], T]:
        """Register ``obj`` under ``name`` (default: its ``__name__``); usable as a decorator."""

        def add(item: T) -> T:
            key = name or item.__name__
            if key in self._items and self._items[key] is not item:
                raise ValueError(f"{self.kind} '{key}' is registered twice")
            self._items[key] = item
            return item

        return add if obj is None else add(obj)

    def get(self, name: str) -> Callable[..., Any]:
        if name not in self._items:
            known = ", ".join(sorted(self._items))
            raise UserInputError(f"unknown {self.kind} '{name}'{suggest(name, self._items)}; known: {known}")
        return self._items[name]

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: str) -> bool:
        return name in self._items

    def build(self, name: str, **kwargs) -> Any:
        """Call the constructor registered as ``name`` with ``kwargs``; unknown keywords are refused."""
        ctor = self.get(name)
        params = inspect.signature(ctor).parameters
        takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
        if not takes_any:
            for key in kwargs:
                if key not in params:
                    raise UserInputError(
                        f"{self.kind} '{name}' has no option '{key}'{suggest(key, params)}; "
                        f"valid: {', '.join(k for k in params if k != 'self')}"
                    )
        try:
            return ctor(**kwargs)
        except (TypeError, ValueError) as exc:  # e.g. a string where the model wants a number
            raise UserInputError(f"{self.kind} '{name}' cannot be built with {kwargs}: {exc}") from None


def import_all_modules(package: str) -> None:
    """Import every module of ``package`` so that their registration decorators run."""
    pkg = importlib.import_module(package)
    for info in pkgutil.iter_modules(pkg.__path__):
        if not info.name.startswith("_"):
            importlib.import_module(f"{package}.{info.name}")
