"""An exponential moving average of the network's weights (``train.ema_decay``).

After every optimizer step ``w_avg <- decay * w_avg + (1 - decay) * w`` (the first step copies
``w``), for the parameters and the floating-point buffers alike: PyTorch's own
``torch.optim.swa_utils.AveragedModel`` with ``get_ema_multi_avg_fn`` (one fused lerp over all
tensors), not code of ours. With ``decay`` d the average weighs the last ``1 / (1 - d)`` steps
most (1000 steps for 0.999). Validation, ``best.pth`` and inference then use the averaged
weights; training keeps optimizing the network's own.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from models.state_dicts import load_renamed_state_dict


class WeightAverage:
    """The EMA of ``net``'s weights in a copy of ``net`` (:attr:`module`, the same layout and
    device), updated by :meth:`update` after each optimizer step. decay in [0, 1)."""

    def __init__(self, net: nn.Module, decay: float):
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"decay must be in [0, 1), got {decay}")
        self.decay = decay
        self.averaged = AveragedModel(net, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)
        self.averaged.requires_grad_(False)

    @property
    def module(self) -> nn.Module:
        """The network holding the averaged weights (our parameter names)."""
        return self.averaged.module

    @property
    def updates(self) -> int:
        """How many optimizer steps are averaged in (0: still the initial copy)."""
        return int(self.averaged.n_averaged)

    @torch.no_grad()
    def update(self, net: nn.Module) -> None:
        """Fold ``net``'s current weights into the average (the first call copies them)."""
        self.averaged.update_parameters(net)

    def state_dict(self) -> dict[str, Any]:
        """{'weights': the averaged state dict (our names), 'updates': int, 'decay': float}."""
        return {"weights": self.module.state_dict(), "updates": self.updates, "decay": self.decay}

    def load_state_dict(self, state: dict[str, Any], source: str) -> None:
        """Restore :meth:`state_dict` (a mismatch of names or shapes is one line naming ``source``)."""
        load_renamed_state_dict(
            self.module,
            state["weights"],
            table={},
            source=source,
            hint="it is from another model or other options: check model.name and its options",
        )
        self.averaged.n_averaged.fill_(int(state["updates"]))
