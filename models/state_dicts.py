"""Loading state dicts whose parameter names differ from ours: the one matcher of the project.

A reference implementation (the authors' RAMSF, PanCollection's networks, ...) names its
parameters its own way. Each model class that can load such weights states the renaming as a
prefix table ``reference_names = {reference prefix: our prefix}`` (whole dotted segments:
``res1`` renames ``res1.conv20.weight`` but not ``res10.conv20.weight``). Several reference
prefixes may map to one of ours: the aliases of a module registered twice (``res1`` and
``backbone.0``); such duplicates must then hold equal tensors. A reference parameter that its
forward never uses is listed in the class's ``reference_unused`` and skipped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from torch import Tensor, nn

from utils.checkpoint_file import read_checkpoint_file
from utils.errors import UserInputError


def rename(name: str, table: Mapping[str, str]) -> str:
    """``name`` with the longest matching prefix of ``table`` replaced; unchanged without a match.

    >>> rename("res1.conv20.weight", {"res1": "trunk.2"})
    'trunk.2.conv20.weight'
    """
    best = ""
    for old in table:
        if (name == old or name.startswith(old + ".")) and len(old) > len(best):
            best = old
    return table[best] + name[len(best) :] if best else name


def reference_table(model: nn.Module) -> dict[str, str]:
    """The model class's ``reference_names`` prefix table ({} when it has none)."""
    return dict(getattr(type(model), "reference_names", {}))


def _describe(names: Sequence[str], limit: int = 4) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" (+{len(names) - limit} more)" if len(names) > limit else "")


def load_renamed_state_dict(
    model: nn.Module,
    state_dict: Mapping[str, Tensor],
    table: Mapping[str, str] | None = None,
    source: str = "checkpoint",
    hint: str = "build the model with the checkpoint's band counts and widths",
) -> nn.Module:
    """Load ``state_dict`` (reference names renamed by ``table``, ours kept) into ``model``.

    ``table`` defaults to the model class's ``reference_names`` (and its ``reference_unused``
    names are then skipped). Every parameter and buffer of
    the model must be given once (or as equal aliases) with its shape; otherwise a one-line
    UserInputError names ``source``, the missing, unexpected, mismatched or conflicting keys
    (in the names of ``state_dict`` where it has them) and ``hint``. Returns the model.
    """
    if table is None:
        table = reference_table(model)
        unused = set(getattr(type(model), "reference_unused", ()))
        state_dict = {k: v for k, v in state_dict.items() if k not in unused}
    mapped: dict[str, Tensor] = {}
    given_as: dict[str, str] = {}
    conflicts = []
    for key, value in state_dict.items():
        ours = rename(key, table)
        if ours in mapped:
            if mapped[ours].shape != value.shape or not torch.equal(mapped[ours], value.to(mapped[ours])):
                conflicts.append(f"{given_as[ours]} vs {key}")
            continue
        mapped[ours], given_as[ours] = value, key
    expected = model.state_dict()
    inverse = {new: old for old, new in reversed(list(table.items()))}
    problems = [
        f"{label}: {_describe(items)}"
        for label, items in (
            ("missing keys", [rename(k, inverse) for k in expected if k not in mapped]),
            ("unexpected keys", [given_as[k] for k in mapped if k not in expected]),
            (
                "shape mismatches",
                [
                    f"{given_as[k]} {tuple(mapped[k].shape)} vs model {tuple(v.shape)}"
                    for k, v in expected.items()
                    if k in mapped and tuple(mapped[k].shape) != tuple(v.shape)
                ],
            ),
            ("aliases with different values", conflicts),
        )
        if items
    ]
    if problems:
        raise UserInputError(f"{source} does not fit the model ({'; '.join(problems)}); {hint}")
    model.load_state_dict(mapped)
    return model


def load_reference_checkpoint(model: nn.Module, path: str | Path) -> nn.Module:
    """Load a checkpoint file of a reference implementation (or ours) into ``model``.

    The file holds a bare state dict, or a dict with a 'state_dict' or 'model' entry;
    'module.' prefixes (DataParallel, DistributedDataParallel) are stripped. Returns the model.
    """
    data = read_checkpoint_file(path, "a torch.save'd state dict is expected")
    for entry in ("state_dict", "model"):
        if isinstance(data, Mapping) and isinstance(data.get(entry), Mapping):
            data = data[entry]
    if not isinstance(data, Mapping) or not all(isinstance(v, Tensor) for v in data.values()):
        raise UserInputError(
            f"checkpoint '{path}' holds no state dict (expected name -> tensor, possibly under "
            "'state_dict' or 'model')"
        )
    stripped = {k[len("module.") :] if k.startswith("module.") else k: v for k, v in data.items()}
    return load_renamed_state_dict(model, stripped, source=f"checkpoint '{path}'")
