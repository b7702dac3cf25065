"""The fast query Function (models/query_mlp.py) computes the plain oracle's function and gradients."""

from __future__ import annotations

import pytest
import torch
from torch.func import functional_call

from models import MODELS
from models.csfpa import QueryStage, implicit_query, make_mlp
from tests.test_models import fusion_inputs

# ratio, border, (H, W), batch, chunk: odd sizes, several images, chunks of one row to many images
CASES = [
    (2, "zero", (8, 10), 2, 1000),
    (2, "clamp", (7, 9), 3, 9),
    (3, "clamp", (9, 7), 2, 5),
    (3, "zero", (11, 13), 1, 40),
    (4, "zero", (13, 11), 3, 30),
    (4, "clamp", (16, 12), 2, 192),
    (8, "zero", (17, 24), 1, 100),
    (8, "clamp", (16, 24), 2, 10**6),
    (2, "replicate", (9, 8), 2, 12),
    (4, "replicate", (12, 13), 1, 64),
]


def _case(ratio, border, size, batch, dtype, seed=0):
    """(feat N x 6 x h x w, guide N x 5 x H x W, mlp 13 -> 16 -> 8 -> 4+1), inputs with gradients."""
    gen = torch.Generator().manual_seed(seed)
    height, width = size
    h, w = -(-height // ratio), -(-width // ratio)
    torch.manual_seed(seed)
    mlp = make_mlp(6 + 5 + 2, (16, 8), 5).to(dtype)
    feat = torch.randn(batch, 6, h, w, dtype=dtype, generator=gen).requires_grad_()
    guide = torch.randn(batch, 5, height, width, dtype=dtype, generator=gen).requires_grad_()
    return feat, guide, mlp


def _run(feat, guide, mlp, border, chunk, factored):
    """Output and gradients (feat, guide, parameters) of a nonlinear loss of the query."""
    out = implicit_query(feat, guide, mlp, border, chunk, factored)
    loss = (out * torch.cos(out)).mean()
    return out, torch.autograd.grad(loss, [feat, guide, *mlp.parameters()])


@pytest.mark.parametrize(
    "dtype, out_tol, grad_tol", [(torch.float32, 1e-5, 1e-4), (torch.float64, 1e-12, 1e-10)]
)
@pytest.mark.parametrize("ratio, border, size, batch, chunk", CASES)
def test_fast_equals_the_plain_oracle(ratio, border, size, batch, chunk, dtype, out_tol, grad_tol):
    feat, guide, mlp = _case(ratio, border, size, batch, dtype)
    plain, plain_grads = _run(feat, guide, mlp, border, chunk, False)
    fast, fast_grads = _run(feat, guide, mlp, border, chunk, "fast")
    assert fast.shape == plain.shape and fast.dtype == dtype
    assert (fast - plain).abs().max() < out_tol
    for a, b in zip(fast_grads, plain_grads, strict=True):
        assert a.shape == b.shape
        assert (a - b).abs().max() < grad_tol
    with torch.no_grad():  # inference runs the same blocks without autograd
        assert (implicit_query(feat, guide, mlp, border, chunk, "fast") - plain).abs().max() < out_tol


def test_fast_channels_last_inputs_and_gradients_into_both_inputs():
    feat, guide, mlp = _case(4, "zero", (12, 12), 2, torch.float64)
    last = [t.detach().contiguous(memory_format=torch.channels_last).requires_grad_() for t in (feat, guide)]
    out, grads = _run(*last, mlp, "zero", 50, "fast")
    ref, ref_grads = _run(feat, guide, mlp, "zero", 50, False)
    assert (out - ref).abs().max() < 1e-12
    assert max((a - b).abs().max() for a, b in zip(grads, ref_grads, strict=True)) < 1e-12


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny tensors: threads only add overhead (and contention on a shared CPU)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("border, chunk", [("zero", 4), ("clamp", 30), ("replicate", 7)])
def test_gradcheck_float64(border, chunk):
    """Row blocks (chunk 4: one row of 4) and whole-image blocks (chunk 30: two images of 12)."""
    gen = torch.Generator().manual_seed(3)
    torch.manual_seed(3)
    stage = QueryStage(3, 2, 2, (5,), border, query_chunk=chunk, factored_query="fast").double()
    feat = torch.randn(2, 3, 2, 2, dtype=torch.float64, generator=gen, requires_grad=True)
    guide = torch.randn(2, 2, 3, 4, dtype=torch.float64, generator=gen, requires_grad=True)
    names = [name for name, _ in stage.named_parameters()]
    weights = [p.detach().clone().requires_grad_() for p in stage.parameters()]

    def query(feat, guide, *weights):
        return functional_call(stage, dict(zip(names, weights, strict=True)), (feat, guide))

    assert torch.autograd.gradcheck(query, (feat, guide, *weights), eps=1e-6, atol=1e-7, fast_mode=True)


def test_ramsf_default_is_fast_and_equals_plain_model():
    narrow = dict(
        lr_channels=5, guide_channels=1, ratio=4, width=8, guide_width=8, mlp_hidden=(16, 8), stage1_width=4
    )
    fast = MODELS.build("RAMSF", **narrow, query_chunk=50)
    assert all(stage.factored_query == "fast" for stage in fast.csfpa.stages)
    plain = MODELS.build("RAMSF", **narrow, factored_query=False, channels_last=False)
    plain.load_state_dict(fast.state_dict())
    inputs = fusion_inputs(5, 1, 4, 21, 18)
    out, ref = fast(*inputs), plain(*inputs)
    assert (out - ref).abs().max() < 1e-5
    out.square().mean().backward()
    ref.square().mean().backward()
    for (name, a), b in zip(fast.named_parameters(), plain.parameters(), strict=True):
        assert (a.grad - b.grad).abs().max() < 1e-4, name


def test_bf16_autocast_on_cpu_runs_and_is_close():
    feat, guide, mlp = _case(4, "zero", (12, 12), 2, torch.float32)
    ref = implicit_query(feat, guide, mlp, "zero", 50, False)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = implicit_query(feat, guide, mlp, "zero", 50, "fast")
    assert out.dtype == torch.bfloat16
    assert torch.isfinite(out).all()
    assert (out.float() - ref).abs().max() < 0.05 * ref.abs().max()
    out.float().square().mean().backward()
    for t in (feat, guide, *mlp.parameters()):
        assert t.grad is not None and t.grad.dtype == torch.float32 and torch.isfinite(t.grad).all()
