"""What a checkpoint records about its model, so it can be rebuilt and checked against new data."""

from __future__ import annotations

import inspect
from collections.abc import Iterable
from pathlib import Path

from torch import nn

from data.datasets import FusionData
from engine.checkpoint import load_checkpoint, load_model_weights
from engine.options import Options, model_kwargs
from models import MODELS
from utils.errors import UserInputError


def is_training_free(name: str) -> bool:
    """True for registered methods that have nothing to train (the classical baselines)."""
    return not getattr(MODELS.get(name), "needs_training", True)


def training_free_record(name: str, kwargs: dict, data: FusionData, sensor: str) -> dict:
    """The record of a training-free method sized by ``data``; ``sensor`` fills its MTF preset."""
    kwargs = dict(kwargs)
    if "sensor" in inspect.signature(MODELS.get(name)).parameters:
        kwargs.setdefault("sensor", sensor)
    return sized_record(name, kwargs, data)


def legacy_defaults(name: str) -> dict:
    """Options of model ``name`` whose default changed, with their old defaults.

    A model class lists them in ``LEGACY_DEFAULTS`` (e.g. RAMSF's ``border`` and ``padding``). New
    records name the current value of each such option explicitly; a record without one was
    written before the change, and :func:`build_from_record` gives it the old default, so old
    checkpoints keep the behaviour they were trained with.
    """
    return dict(getattr(MODELS.get(name), "LEGACY_DEFAULTS", {}))


def current_defaults(name: str, keys: Iterable[str]) -> dict:
    """The signature defaults of ``keys`` in the constructor of model ``name``."""
    parameters = inspect.signature(MODELS.get(name)).parameters
    return {key: parameters[key].default for key in keys}


def sized_record(name: str, kwargs: dict, data: FusionData) -> dict:
    """Name, keyword options (with the current value of every option whose default changed, see
    :func:`legacy_defaults`), and the band counts and ratio of ``data`` (a dataset)."""
    changed = legacy_defaults(name)
    kwargs = {**current_defaults(name, changed), **kwargs}
    return {
        "name": name,
        "kwargs": kwargs,
        "lr_channels": data.lr_channels,
        "guide_channels": data.guide_channels,
        "ratio": data.ratio,
    }


def model_record(options: Options, data: FusionData) -> dict:
    """Model name, options, band counts and ratio (taken from the training ``data``)."""
    name, kwargs = model_kwargs(options)
    if is_training_free(name):
        raise UserInputError(
            f"{name} is a training-free method: nothing to train, score it with "
            "python test.py --option_path ... (or list it in compare.methods)"
        )
    return sized_record(name, kwargs, data)


def record_kwargs(record: dict) -> dict:
    """The keyword options ``record`` builds its model with: the recorded ones, and the old default
    of every option whose default changed that the record lacks (it predates the change)."""
    return {**legacy_defaults(record["name"]), **record["kwargs"]}


def build_from_record(record: dict) -> nn.Module:
    """The registered model of ``record``, sized by its band counts and ratio (options a record
    lacks: see :func:`record_kwargs`)."""
    return MODELS.build(
        record["name"],
        lr_channels=record["lr_channels"],
        guide_channels=record["guide_channels"],
        ratio=record["ratio"],
        **record_kwargs(record),
    )


def check_resumable(stored: dict, record: dict, path: str) -> None:
    """A checkpoint with record ``stored`` can continue the training of model ``record``: the same
    value of every option whose default changed (an old checkpoint lacking one has its old default)."""
    if stored.get("name") != record["name"] or not isinstance(stored.get("kwargs"), dict):
        return
    theirs, ours = record_kwargs(stored), record_kwargs(record)
    for key in legacy_defaults(record["name"]):
        if theirs.get(key) != ours.get(key):
            raise UserInputError(
                f"checkpoint '{path}' was trained with model.{key}: {theirs.get(key)} but the options "
                f"give {ours.get(key)}: set model.{key}: {theirs.get(key)} to resume it"
            )


def check_against_record(data: FusionData, record: dict, path: str, what: str) -> None:
    """``data`` (a dataset) must have the band counts and ratio of ``record``."""
    for attr, label in (
        ("lr_channels", "bands"),
        ("guide_channels", "guide bands"),
        ("ratio", "ratio"),
    ):
        if getattr(data, attr) != record[attr]:
            raise UserInputError(
                f"{what} file '{path}' has {label} {getattr(data, attr)} but the model is built for "
                f"{record[attr]}: use files of the same sensor and ratio as the training data"
            )


SIZING = ("lr_channels", "guide_channels", "ratio")


def model_options(record: dict) -> dict:
    """Every constructor option of the record's model: the signature defaults, then the record's."""
    parameters = inspect.signature(MODELS.get(record["name"])).parameters
    defaults = {
        k: p.default
        for k, p in parameters.items()
        if k not in SIZING and p.default is not inspect.Parameter.empty
    }
    return {**defaults, **record_kwargs(record)}


def record_differences(stored: dict, record: dict) -> list[str]:
    """``['model.hidden 4 -> 8', 'ratio 4 -> 2']``: what differs from ``stored`` to ``record``."""
    if stored.get("name") != record["name"] or not isinstance(stored.get("kwargs"), dict):
        return [f"model.name {stored.get('name')} -> {record['name']}"]
    changed = [f"{k} {stored.get(k)} -> {record[k]}" for k in SIZING if stored.get(k) != record[k]]
    theirs, ours = model_options(stored), model_options(record)
    keys = sorted(set(theirs) | set(ours))
    return changed + [
        f"model.{k} {theirs.get(k)!r} -> {ours.get(k)!r}" for k in keys if theirs.get(k) != ours.get(k)
    ]


def recorded_checkpoint(path: str | Path, what: str) -> tuple[dict, dict]:
    """(state, model record) of a checkpoint written by train.py; any other file is a one-line
    UserInputError naming ``what`` (the option or the kind of file) and ``path``."""
    state = load_checkpoint(path)
    record = state.get("model_record")
    if not isinstance(record, dict):
        raise UserInputError(
            f"{what} '{path}' has no model record (not written by train.py): "
            "load released weights with models.state_dicts.load_reference_checkpoint instead"
        )
    return state, record


def load_initial_weights(model: nn.Module, record: dict, path: str) -> None:
    """``train.init_from``: load the weights of checkpoint ``path`` (only them) into ``model``,
    whose record must be the checkpoint's (name, options, band counts, ratio), else one line."""
    state, stored = recorded_checkpoint(path, "train.init_from")
    differences = record_differences(stored, record)
    if differences:
        raise UserInputError(
            f"train.init_from '{path}' holds another model than the options build "
            f"(checkpoint -> options: {'; '.join(differences[:4])}): set the model options and data "
            "to the checkpoint's, or train from scratch (train.init_from: null)"
        )
    load_model_weights(model, state, path)
