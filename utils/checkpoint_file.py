"""Reading a PyTorch checkpoint file safely: ``torch.load(weights_only=True)`` on the CPU.

No pickled object other than tensors and plain containers is ever executed; a file that is
missing, corrupt, truncated or would need arbitrary unpickling is one :class:`UserInputError`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from utils.errors import UserInputError


def read_checkpoint_file(path: str | Path, hint: str, missing: str | None = None) -> Any:
    """The object stored in ``path`` (tensors on the CPU). ``hint`` ends the error message of an
    unreadable file with what to give instead, ``missing`` (default ``hint``) that of a missing one."""
    path = Path(path)
    if not path.is_file():
        raise UserInputError(f"checkpoint '{path}' does not exist: {missing or hint}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for corrupt or foreign files
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserInputError(
            f"cannot read checkpoint '{path}': it cannot be read safely ({first[:120]}): {hint}"
        ) from None
