"""Every registered model, and every training loss, runs on the ``meta`` device (shapes only);
a device that is not there is refused.

A model that creates a tensor on the CPU inside ``forward`` (instead of on its input's device)
fails here, which is how a CUDA device bug shows without a GPU. Built on the CPU, moved with
``.to("meta")``, inputs on meta; trainable models also run backward.

Skipped, for a legitimate reason: BDSD-PC, whose constrained least squares is an active-set
iteration that stops on a data-dependent test (``if done.all()``), which meta tensors (no values)
cannot answer. The other classical methods' float64 solvers (torch.linalg solve, Cholesky) run on
meta.
"""

from __future__ import annotations

import pytest
import torch

from engine.losses import LOSSES
from engine.training_parts import select_device
from models import MODELS
from tests.test_models import TASKS, fusion_inputs, small_model
from utils.errors import UserInputError

DATA_DEPENDENT = {"BDSD-PC": "active-set least squares stops on a data-dependent test (.item() on meta)"}


def _meta_inputs(task: str):
    bands, guide_bands, ratio, height = TASKS[task]
    return tuple(x.to("meta") for x in fusion_inputs(bands, guide_bands, ratio, height))


@pytest.mark.parametrize("task", sorted(TASKS))
@pytest.mark.parametrize("name", MODELS.names())
def test_model_forward_and_backward_on_meta(name, task):
    if name in DATA_DEPENDENT:
        pytest.skip(f"{name}: {DATA_DEPENDENT[name]}")
    bands, guide_bands, ratio, _ = TASKS[task]
    model = small_model(name, bands, guide_bands, ratio).to("meta")
    lr, up, guide = _meta_inputs(task)
    fused = model(lr, up, guide)
    assert fused.device.type == "meta"
    assert fused.shape == up.shape and fused.dtype == up.dtype
    if not getattr(model, "needs_training", True):
        return
    (fused - 0.5).abs().mean().backward()
    for pname, param in model.named_parameters():
        assert param.grad is not None and param.grad.device.type == "meta", pname
        assert param.grad.shape == param.shape, pname


@pytest.mark.parametrize("factored", ["fast", True, False, "inference"])
def test_every_ramsf_query_formulation_on_meta(factored):
    model = small_model("RAMSF", 8, 1, 4, factored_query=factored, query_chunk=50).to("meta")
    lr, up, guide = _meta_inputs("8band_pan_r4")
    fused = model(lr, up, guide)
    assert fused.device.type == "meta" and fused.shape == up.shape
    fused.square().mean().backward()
    assert all(p.grad is not None and p.grad.device.type == "meta" for p in model.parameters())


def test_data_dependent_skip_list_is_current():
    assert set(DATA_DEPENDENT) <= set(MODELS.names())


@pytest.mark.parametrize("name", LOSSES.names())
def test_loss_forward_and_backward_on_meta(name):
    fused = torch.randn(2, 3, 4, 4, device="meta", requires_grad=True)
    outputs = {  # the model outputs a loss may read: the fused image and its auxiliary images
        "fused_half": torch.randn(2, 3, 2, 2, device="meta", requires_grad=True),
        "fused_quarter": torch.randn(2, 3, 1, 1, device="meta", requires_grad=True),
    }
    batch = {
        "gt": torch.randn(2, 3, 4, 4, device="meta"),
        "up": torch.randn(2, 3, 4, 4, device="meta"),
        "lr": torch.randn(2, 3, 2, 2, device="meta"),
        "guide": torch.randn(2, 1, 4, 4, device="meta"),
        **outputs,
    }
    loss = LOSSES.build(name)(fused, batch)
    assert loss.device.type == "meta" and loss.shape == ()
    loss.backward()
    reached = [t for t in (fused, *outputs.values()) if t.grad is not None]
    assert reached and all(t.grad.shape == t.shape for t in reached)


@pytest.mark.parametrize(
    ("spec", "gpus", "message"),
    [
        ("cuda:3", 2, r"option 'device' is 'cuda:3' but 2 GPU\(s\) are visible: use cuda:0 to cuda:1"),
        ("cuda", 0, r"asks for CUDA but no GPU is visible"),
        ("tpu", 1, r"use auto, cpu, cuda or cuda:N"),
    ],
)
def test_a_device_that_is_not_there_is_refused_in_one_line(monkeypatch, spec, gpus, message):
    """``device: cuda:N`` beyond the visible GPUs failed later in ``.to()`` with a raw
    RuntimeError ("invalid device ordinal"); a GPU count is simulated here."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: gpus > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: gpus)
    with pytest.raises(UserInputError, match=message):
        select_device(spec)
    assert select_device("cpu") == torch.device("cpu")
