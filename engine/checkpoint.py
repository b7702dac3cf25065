"""Checkpoints written atomically and read safely.

A checkpoint is written to a temporary file in the same folder, flushed to disk, then renamed
over the target (``os.replace`` is atomic on POSIX and Windows), so a kill during the write
leaves the previous checkpoint intact. Such a kill leaves the temporary ``.<name>.*.tmp`` file
behind; the next save of the same checkpoint deletes it (one writer per checkpoint path), and
nothing looks for checkpoints under those names. Reading uses ``torch.load(weights_only=True)``:
no arbitrary pickled objects are ever executed.
"""

from __future__ import annotations

import glob
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from models.state_dicts import load_renamed_state_dict
from utils.checkpoint_file import read_checkpoint_file
from utils.errors import UserInputError


def save_atomic(state: dict[str, Any], path: str | Path) -> None:
    """Write ``state`` with ``torch.save`` to ``path`` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_leftovers(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save(state, handle)
            handle.flush()
            os.fsync(handle.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp made it private; give it the usual permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if hasattr(os, "O_DIRECTORY"):
        dir_fd = os.open(path.parent, os.O_DIRECTORY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def remove_leftovers(path: Path) -> None:
    """Delete the temporary files of ``path`` left by earlier writes that were killed."""
    for stale in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        stale.unlink(missing_ok=True)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint on the CPU with ``weights_only=True``; unreadable files are a user error."""
    state = read_checkpoint_file(
        path,
        "give a PyTorch state-dict file saved by this framework or the authors",
        missing="train first or set test.checkpoint",
    )
    if not isinstance(state, dict):
        raise UserInputError(f"checkpoint '{path}' does not hold a dictionary of tensors")
    return state


def model_weights(state: dict[str, Any], averaged: bool = True) -> dict[str, Any]:
    """The state dict of the network in a checkpoint: with ``averaged``, the weights' moving
    average where training kept one (``train.ema_decay``: the weights it validated), else
    ``state['model']`` (the trained weights), or ``state`` itself for a file of weights only."""
    if averaged and isinstance(state.get("model_ema"), dict):
        return state["model_ema"]["weights"]
    return state.get("model", state)


def load_model_weights(
    model: torch.nn.Module, state: dict[str, Any], source: str, averaged: bool = True
) -> None:
    """Load :func:`model_weights` of ``state`` (our names) into ``model``; a mismatch is one line
    naming the keys. averaged=False: the trained weights, never their average (resuming)."""
    load_renamed_state_dict(
        model,
        model_weights(state, averaged),
        table={},
        source=f"checkpoint '{source}'",
        hint="it is from another model or other options: check model.name and its options",
    )
