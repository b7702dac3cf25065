"""The fast building blocks (models/blocks.py) and train.py's fused Adam equal the stock modules."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from engine.options import OptimizerOptions
from engine.training_parts import build_optimizer
from models.blocks import PADDINGS, Conv3x3, SharedPReLU


def _prelu_pair(slope: float, dtype: torch.dtype) -> tuple[nn.Module, nn.Module]:
    ours, stock = SharedPReLU(init=slope).to(dtype), nn.PReLU(num_parameters=1, init=slope).to(dtype)
    return ours, stock


def _grads(module: nn.Module, x: torch.Tensor, weight: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Output, input gradient and slope gradient of sum(weight * module(x))."""
    x = x.clone().requires_grad_()
    out = module(x)
    grad_x, grad_slope = torch.autograd.grad((weight * out).sum(), [x, module.weight])
    return out, grad_x, grad_slope


@pytest.mark.parametrize("slope", [0.25, 0.7, -0.3])  # lerp takes its other branch at >= 0.5
@pytest.mark.parametrize("channels_last", [False, True])
def test_shared_prelu_equals_nn_prelu_in_float64(slope, channels_last):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 5, 6, 7, dtype=torch.float64, generator=gen)
    x[0, 0, 0, :4] = 0.0  # the kink: both take the slope branch there
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    weight = torch.randn(x.shape, dtype=torch.float64, generator=gen)
    ours, stock = _prelu_pair(slope, torch.float64)
    for a, b in zip(_grads(ours, x, weight), _grads(stock, x, weight), strict=True):
        assert a.shape == b.shape
        assert torch.allclose(a, b, rtol=1e-13, atol=1e-13)


def test_shared_prelu_hand_values():
    ours = SharedPReLU(init=0.5)
    x = torch.tensor([-2.0, 0.0, 3.0])
    out, grad_x, grad_slope = _grads(ours, x, torch.tensor([1.0, 2.0, 3.0]))
    assert out.tolist() == [-1.0, 0.0, 3.0]
    assert grad_x.tolist() == [0.5, 1.0, 3.0]  # slope * weight where x <= 0, weight where x > 0
    assert grad_slope.tolist() == [-2.0]  # sum of weight * min(x, 0)


def test_shared_prelu_under_bf16_autocast_matches_nn_prelu():
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(2, 8, 5, 5, generator=gen).to(torch.bfloat16)
    weight = torch.randn(x.shape, generator=gen).to(torch.bfloat16)
    ours, stock = _prelu_pair(0.25, torch.float32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got, want = _grads(ours, x, weight), _grads(stock, x, weight)
    assert got[0].dtype == want[0].dtype == torch.bfloat16
    assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])
    assert got[2].dtype == torch.float32  # the float32 parameter's gradient
    assert torch.allclose(got[2], want[2].float(), rtol=2e-2)


@pytest.mark.parametrize("padding", PADDINGS)
def test_conv3x3_equals_nn_conv2d(padding):
    torch.manual_seed(0)
    ours = Conv3x3(3, 4, padding)
    stock = nn.Conv2d(3, 4, 3, padding=1, padding_mode=padding)
    stock.load_state_dict(ours.state_dict())
    assert set(ours.state_dict()) == {"weight", "bias"}
    x = torch.randn(2, 3, 7, 6, dtype=torch.float64)
    ours, stock = ours.double(), stock.double()
    assert torch.allclose(ours(x), stock(x), rtol=0, atol=1e-13)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got, want = ours.float()(x.float()), stock.float()(x.float())
    assert got.dtype == torch.bfloat16 and torch.equal(got, want)


def test_conv3x3_pads_in_the_input_dtype_under_autocast():
    """No float32 copy of a bf16 activation: every op inside the convolution sees bf16 only."""
    seen: list[torch.dtype] = []

    class Dtypes(torch.utils._python_dispatch.TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            if isinstance(out, torch.Tensor) and out.dim() == 4:
                seen.append(out.dtype)
            return out

    conv = Conv3x3(4, 4, "reflect")
    x = torch.randn(1, 4, 6, 6).to(torch.bfloat16)
    with torch.autocast("cpu", dtype=torch.bfloat16), Dtypes():
        conv(x)
    assert seen and set(seen) == {torch.bfloat16}


@pytest.mark.parametrize("name", ["Adam", "AdamW"])
def test_train_adam_is_fused_and_equals_the_stock_update(name):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 2))
    twin = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 2))
    twin.load_state_dict(model.state_dict())
    options = OptimizerOptions(name=name, lr=1e-2, weight_decay=0.01)
    ours = build_optimizer(model.parameters(), options)
    cls = torch.optim.Adam if name == "Adam" else torch.optim.AdamW
    stock = cls(twin.parameters(), lr=1e-2, weight_decay=0.01, foreach=False)
    assert ours.defaults["fused"] is True
    x = torch.randn(16, 6)
    for _ in range(5):
        for net, optimizer in ((model, ours), (twin, stock)):
            optimizer.zero_grad()
            net(x).square().mean().backward()
            optimizer.step()
    for a, b in zip(model.parameters(), twin.parameters(), strict=True):
        assert torch.allclose(a, b, rtol=0, atol=1e-6)
    stock.load_state_dict(ours.state_dict())  # the same state layout: checkpoints move between them
