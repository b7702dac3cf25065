"""What a checkpoint records about its model, so it can be rebuilt and checked against new data."""

from __future__ import annotations

import inspect

from torch import nn

from engine.options import Options, model_kwargs
from models import MODELS
from utils.errors import UserInputError


def is_training_free(name: str) -> bool:
    """True for registered methods that have nothing to train (the classical baselines)."""
    return not getattr(MODELS.get(name), "needs_training", True)


def training_free_record(name: str, kwargs: dict, data, sensor: str) -> dict:
    """The record of a training-free method sized by ``data``; ``sensor`` fills its MTF preset."""
    kwargs = dict(kwargs)
    if "sensor" in inspect.signature(MODELS.get(name)).parameters:
        kwargs.setdefault("sensor", sensor)
    return sized_record(name, kwargs, data)


def sized_record(name: str, kwargs: dict, data) -> dict:
    """Name, keyword options, and the band counts and ratio of ``data`` (a dataset)."""
    return {
        "name": name,
        "kwargs": kwargs,
        "lr_channels": data.lr_channels,
        "guide_channels": data.guide_channels,
        "ratio": data.ratio,
    }


def model_record(options: Options, data) -> dict:
    """Model name, options, band counts and ratio (taken from the training ``data``)."""
    name, kwargs = model_kwargs(options)
    if is_training_free(name):
        raise UserInputError(
            f"{name} is a training-free method: nothing to train, score it with "
            "python test.py --option_path ... (or list it in compare.methods)"
        )
    return sized_record(name, kwargs, data)


def build_from_record(record: dict) -> nn.Module:
    """The registered model of ``record``, sized by its band counts and ratio."""
    return MODELS.build(
        record["name"],
        lr_channels=record["lr_channels"],
        guide_channels=record["guide_channels"],
        ratio=record["ratio"],
        **record["kwargs"],
    )


def check_against_record(data, record: dict, path: str, what: str) -> None:
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
