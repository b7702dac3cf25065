"""Every registered model (shapes, gradients) and the RAMSF pieces (Haar, sizes, chunking, border)."""

from __future__ import annotations

import inspect

import pytest
import torch
import torch.nn.functional as F

from models import MODELS
from models.haar import haar_analysis, haar_synthesis
from utils.errors import UserInputError

SMALL = dict(width=8, guide_width=8, mlp_hidden=(16, 8), stage1_width=4)
TASKS = {  # name: (bands, guide bands, ratio, H)
    "8band_pan_r4": (8, 1, 4, 16),
    "102band_pan_r4": (102, 1, 4, 16),
    "31band_rgb_r8": (31, 3, 8, 32),
}


def fusion_inputs(
    bands: int,
    guide_bands: int,
    ratio: int,
    height: int,
    width: int | None = None,
    batch: int = 2,
    seed: int = 0,
):
    """Random (lr, up, guide) in [0, 1]: lr N x C x ceil(H/r) x ceil(W/r), up bilinear to H x W."""
    width = height if width is None else width
    gen = torch.Generator().manual_seed(seed)
    low = (-(-height // ratio), -(-width // ratio))
    lr = torch.rand(batch, bands, *low, generator=gen)
    up = F.interpolate(lr, size=(height, width), mode="bilinear", align_corners=False)
    guide = torch.rand(batch, guide_bands, height, width, generator=gen)
    return lr, up, guide


def small_model(name: str, bands: int, guide_bands: int, ratio: int, **options):
    """``MODELS.build`` with the narrow widths of SMALL where the model has such options."""
    params = inspect.signature(MODELS.get(name)).parameters
    narrow = {k: v for k, v in SMALL.items() if k in params}
    torch.manual_seed(0)
    return MODELS.build(
        name, lr_channels=bands, guide_channels=guide_bands, ratio=ratio, **{**narrow, **options}
    )


@pytest.mark.parametrize("task", sorted(TASKS))
@pytest.mark.parametrize("name", MODELS.names())
def test_every_model_shapes_and_gradients(name, task):
    bands, guide_bands, ratio, height = TASKS[task]
    model = small_model(name, bands, guide_bands, ratio)
    lr, up, guide = fusion_inputs(bands, guide_bands, ratio, height)
    fused = model(lr, up, guide)
    assert fused.shape == up.shape
    assert torch.isfinite(fused).all()
    assert fused.dtype == up.dtype
    if not getattr(model, "needs_training", True):  # classical methods: no parameters
        assert not list(model.parameters())
        return
    (fused - 0.5).abs().mean().backward()
    for pname, param in model.named_parameters():
        assert param.grad is not None, pname
        assert torch.isfinite(param.grad).all(), pname
        assert param.grad.abs().sum() > 0, pname


@pytest.mark.parametrize(
    "bands, guide_bands, expected",
    [(8, 1, 666_350), (4, 1, 661_226), (31, 3, 696_965), (102, 1, 786_764)],
)
def test_ramsf_parameter_counts(bands, guide_bands, expected):
    model = MODELS.build("RAMSF", lr_channels=bands, guide_channels=guide_bands, ratio=4)
    assert sum(p.numel() for p in model.parameters()) == expected
    fused_ll = MODELS.build("RAMSF", lr_channels=bands, guide_channels=guide_bands, ratio=4, ll_fusion=True)
    assert sum(p.numel() for p in fused_ll.parameters()) == expected + 2 * 64 * 64 + 64


@pytest.mark.parametrize("size", [(8, 10), (7, 9)])
def test_haar_round_trip(size):
    x = torch.randn(2, 3, *size, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    bands = haar_analysis(x)
    assert bands[0].shape == (2, 3, (size[0] + 1) // 2, (size[1] + 1) // 2)
    assert (haar_synthesis(torch.cat(bands, dim=1), size) - x).abs().max() < 1e-12
    energy = sum((b**2).sum() for b in haar_analysis(x[..., :6, :8]))
    assert torch.isclose(energy, (x[..., :6, :8] ** 2).sum())  # orthonormal
    x32 = x.float()
    assert (haar_synthesis(torch.cat(haar_analysis(x32), 1), size) - x32).abs().max() < 1e-6


def test_haar_of_hand_computed_blocks():
    block = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])  # a=1, b=3 (below a), c=2, e=4
    ll, hl, lh, hh = (band.item() for band in haar_analysis(block))
    assert (ll, hl, lh, hh) == (5.0, 1.0, 2.0, 0.0)
    odd = torch.tensor([[[[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]]])  # reflect pad: 4th column = 2nd
    ll, hl, _, _ = haar_analysis(odd)
    assert ll.flatten().tolist() == [6.0, 8.0] and hl.flatten().tolist() == [1.0, -1.0]


@pytest.mark.parametrize("ratio", [2, 3, 4, 6, 8])
@pytest.mark.parametrize("size", [(64, 64), (63, 63), (65, 48)])
def test_ramsf_ratios_and_sizes(ratio, size):
    model = small_model("RAMSF", 4, 1, ratio)
    lr, up, guide = fusion_inputs(4, 1, ratio, *size, batch=1)
    with torch.no_grad():
        fused = model(lr, up, guide)
    assert fused.shape == up.shape
    assert torch.isfinite(fused).all()


def test_ramsf_stage_count():
    assert len(small_model("RAMSF", 4, 1, 2).csfpa.stages) == 1
    assert len(small_model("RAMSF", 4, 1, 8).csfpa.stages) == 2
    three = small_model("RAMSF", 4, 1, 8, stages=3)
    lr, up, guide = fusion_inputs(4, 1, 8, 40, 32, batch=1)
    with torch.no_grad():
        assert three(lr, up, guide).shape == up.shape


def test_chunked_query_equals_unchunked_and_follows_dtype():
    model = small_model("RAMSF", 5, 2, 4, query_chunk=37)
    whole = small_model("RAMSF", 5, 2, 4, query_chunk=10**9)
    whole.load_state_dict(model.state_dict())
    inputs = fusion_inputs(5, 2, 4, 24, 20)
    with torch.no_grad():
        assert (model(*inputs) - whole(*inputs)).abs().max() < 1e-6
        fused64 = model.double()(*(x.double() for x in inputs))
    assert fused64.dtype == torch.float64
    assert (fused64 - whole(*inputs)).abs().max() < 1e-5


@pytest.mark.parametrize(
    "ratio, border", [(2, "zero"), (4, "zero"), (3, "clamp"), (8, "zero"), (2, "replicate"), (4, "replicate")]
)
def test_factored_query_equals_the_plain_oracle(ratio, border):
    """The fast first-layer factorisation computes the plain per-neighbour MLP's function."""
    fast = MODELS.build(
        "RAMSF", lr_channels=6, guide_channels=1, ratio=ratio, border=border, factored_query=True
    )
    plain = MODELS.build(
        "RAMSF", lr_channels=6, guide_channels=1, ratio=ratio, border=border, factored_query=False
    )
    plain.load_state_dict(fast.state_dict())
    inputs = fusion_inputs(6, 1, ratio, 24, 24, batch=1)
    with torch.no_grad():
        assert (fast(*inputs) - plain(*inputs)).abs().max() < 1e-5
    fast(*inputs).square().mean().backward()
    plain(*inputs).square().mean().backward()
    for (name, a), b in zip(fast.named_parameters(), plain.parameters(), strict=True):
        assert torch.allclose(a.grad, b.grad, rtol=1e-4, atol=1e-6), name


def test_clamp_border_differs_only_near_borders():
    zero = small_model("RAMSF", 4, 1, 4, border="zero")
    clamp = small_model("RAMSF", 4, 1, 4, border="clamp")
    clamp.load_state_dict(zero.state_dict())
    inputs = fusion_inputs(4, 1, 4, 32)
    with torch.no_grad():
        diff = (zero(*inputs) - clamp(*inputs)).abs().amax(dim=(0, 1))
    # stage 1 (8 -> 16) changes its outer ring only; stage 2 (16 -> 32) spreads it to 3 pixels
    assert diff[3:-3, 3:-3].max() < 1e-6
    for strip in (diff[0], diff[-1], diff[:, 0], diff[:, -1]):
        assert strip.min() > 1e-6


def test_ramsf_batch_one_at_256():
    model = small_model("RAMSF", 8, 1, 4)
    lr, up, guide = fusion_inputs(8, 1, 4, 256, batch=1)
    with torch.no_grad():
        fused = model(lr, up, guide)
    assert fused.shape == (1, 8, 256, 256) and torch.isfinite(fused).all()


@pytest.mark.parametrize(
    "options, message",
    [
        (dict(border="mirror"), "border must be one of"),
        (dict(padding="circular"), "padding must be one of"),
        (dict(width=10), "multiple of 4"),
        (dict(stages=3), "stages=3 does not fit ratio 4"),
        (dict(query_chunk=0), "query_chunk"),
        (dict(ratio=2.5), "integer ratio"),
    ],
)
def test_ramsf_bad_options_are_user_errors(options, message):
    with pytest.raises(UserInputError, match=message):
        MODELS.build("RAMSF", lr_channels=8, guide_channels=1, **{"ratio": 4, **options})


def test_ramsf_bad_inputs_are_user_errors():
    model = small_model("RAMSF", 8, 1, 4)
    lr, up, guide = fusion_inputs(8, 1, 4, 16)
    with pytest.raises(UserInputError, match="built for 8 bands"):
        model(lr[:, :4], up[:, :4], guide)
    with pytest.raises(UserInputError, match="swapped"):
        model(up, lr, guide)
    with pytest.raises(UserInputError, match="guide band"):
        model(lr, up, guide.expand(-1, 3, -1, -1))
