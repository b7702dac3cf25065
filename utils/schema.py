"""Typed option trees: dataclasses filled from YAML with every key and type checked.

A misspelt key is refused with the closest valid key suggested, a value of the wrong type is
refused with the expected type named: nothing is silently ignored (unlike an untyped dict).
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from typing import Any, Literal, Union, get_args, get_origin

from utils.errors import UserInputError
from utils.registry import suggest

_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


def _type_name(tp: Any) -> str:
    origin = get_origin(tp)
    if origin is Literal:
        return " or ".join(repr(a) for a in get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in get_args(tp))
    if origin in (list, tuple):
        args = get_args(tp)
        return f"a list of {_type_name(args[0])}" if args else "a list"
    if origin is dict:
        return "a mapping"
    if tp is type(None):
        return "null"
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    return getattr(tp, "__name__", str(tp))


def _convert(value: Any, tp: Any, where: str) -> Any:
    """Check ``value`` against the annotation ``tp`` and return it converted (ints to floats)."""
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        for arg in get_args(tp):
            try:
                return _convert(value, arg, where)
            except UserInputError:
                continue
        raise _type_error(value, tp, where)
    if origin is Literal:
        if value in get_args(tp):
            return value
        choices = [str(a) for a in get_args(tp)]
        hint = suggest(str(value), choices)
        raise UserInputError(f"option '{where}' is {value!r}{hint}; allowed: {', '.join(choices)}")
    if tp is type(None):
        if value is None:
            return None
        raise _type_error(value, tp, where)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise _type_error(value, tp, where)
        return from_dict(tp, value, where)
    if origin is list or origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise _type_error(value, tp, where)
        (item_tp,) = get_args(tp)[:1] or (Any,)
        return [_convert(v, item_tp, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise _type_error(value, tp, where)
        return dict(value)
    if tp is float:
        if isinstance(value, str) and _NUMBER.fullmatch(value.strip()):
            return float(value)  # YAML 1.1 reads 3e-4 (no dot) as a string
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _type_error(value, tp, where)
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _type_error(value, tp, where)
        return value
    if isinstance(value, tp):
        return value
    raise _type_error(value, tp, where)


def _type_error(value: Any, tp: Any, where: str) -> UserInputError:
    return UserInputError(
        f"option '{where}' must be {_type_name(tp)}, got {value!r} ({type(value).__name__})"
    )


def from_dict(cls: type, data: dict, where: str = "") -> Any:
    """Build dataclass ``cls`` from ``data``; unknown keys and wrong types raise UserInputError.

    A dataclass whose class attribute ``EXTRA_KEYS`` names one of its dict fields takes keys it
    does not declare into that field (its ``check`` then decides which it accepts).
    """
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    prefix = f"{where}." if where else ""
    extra_field = getattr(cls, "EXTRA_KEYS", None)
    extras = {key: value for key, value in data.items() if key not in fields}
    if extras and extra_field is None:
        key = next(iter(extras))
        raise UserInputError(
            f"unknown option '{prefix}{key}'{suggest(str(key), fields)}; "
            f"valid keys{' of ' + where if where else ''}: {', '.join(fields)}"
        )
    kwargs = {}
    for name, field in fields.items():
        if name in data:
            kwargs[name] = _convert(data[name], hints[name], prefix + name)
        elif field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            raise UserInputError(f"option '{prefix}{name}' is required ({_type_name(hints[name])})")
    if extras:
        kwargs[extra_field] = {**kwargs.get(extra_field, {}), **extras}
    obj = cls(**kwargs)
    check = getattr(obj, "check", None)
    if check is not None:
        check()
    return obj


def to_dict(obj: Any) -> Any:
    """Plain dict/list form of an option tree (for saving the resolved options as YAML)."""
    if dataclasses.is_dataclass(obj):
        extra_field = getattr(obj, "EXTRA_KEYS", None)
        tree = {
            f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj) if f.name != extra_field
        }
        return {**tree, **to_dict(getattr(obj, extra_field))} if extra_field else tree
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj


def set_path(tree: dict, dotted: str, value: Any) -> None:
    """Set ``tree['a']['b'] = value`` for ``dotted = 'a.b'``, creating mappings on the way."""
    node = tree
    parts = dotted.split(".")
    for part in parts[:-1]:
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise UserInputError(f"cannot set '{dotted}': '{part}' is not a mapping")
        node = child
    node[parts[-1]] = value
