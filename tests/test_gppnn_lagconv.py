"""What the papers and reference codes fix in GPPNN and LAGConv, checked by hand: parameter counts
for other band counts, GPPNN's resampling (bicubic, align_corners=True, explicit sizes), its
gradient-projection composition with hand-set units, that it ignores ``up``, the reference's
optional input normalisation; LAGConv's local-adaptive layer against plain convolutions (every
tap, the global bias) and its residual output."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from models import MODELS
from models.gppnn import resize
from models.lagconv import LAConv2d
from tests.peer_oracles import CASES, load_oracle, parameter_count
from tests.test_peer_oracles import oracle_model
from utils.errors import UserInputError

SATURATE = 40.0
"""sigmoid(40) = 1 - 4e-18 (1 in float64), sigmoid(-40) = 4e-18."""


def build(name: str, bands: int = 8, guide_bands: int = 1, ratio: int = 4, **options):
    torch.manual_seed(0)
    return MODELS.build(name, lr_channels=bands, guide_channels=guide_bands, ratio=ratio, **options).double()


def rand(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def bicubic_ac(x: torch.Tensor, size) -> torch.Tensor:
    return F.interpolate(x, size=tuple(size), mode="bicubic", align_corners=True)


# ----------------------------------------------------------------------------------------- GPPNN


@pytest.mark.parametrize(
    "bands, guide_bands, features, layers", [(31, 3, 64, 8), (8, 1, 64, 8), (5, 2, 16, 3)]
)
def test_gppnn_parameter_count_by_hand(bands, guide_bands, features, layers):
    """Per layer: MS block, three conv3x3 units C -> F -> C (18 C F each); PAN block, conv1x1 units
    C -> F -> Cg, Cg -> F -> C, C -> F -> C: 4 C F + 2 Cg F. No biases."""
    c, g, f = bands, guide_bands, features
    expected = layers * (3 * (9 * c * f + 9 * f * c) + (c * f + f * g) + (g * f + f * c) + 2 * c * f)
    if (bands, guide_bands) == (8, 1):
        assert expected == 238_592  # the reference's count
    model = build("GPPNN", bands, guide_bands, n_feat=features, n_layer=layers)
    assert parameter_count(model) == expected
    assert all(p.dim() == 4 for p in model.parameters())  # convolution kernels only, no bias


def test_gppnn_resampling_is_bicubic_align_corners_true():
    """With align_corners=True, h -> (h - 1) r + 1 keeps every source pixel at r i exactly (the cubic
    kernel is 1 at 0 and 0 at the other integers), and the way back samples every r-th pixel;
    align_corners=False would not."""
    x = rand(1, 2, 5, 7)
    big = resize(x, (13, 19))
    assert torch.equal(big[..., ::3, ::3], x)
    assert torch.equal(resize(big, (5, 7)), x)
    assert not torch.allclose(
        F.interpolate(x, size=(13, 19), mode="bicubic", align_corners=False)[..., ::3, ::3], x
    )


def set_linear_unit(unit: torch.nn.Sequential, matrix: torch.Tensor) -> None:
    """Make conv -> ReLU -> conv compute the pointwise linear map ``matrix`` (out x in) exactly:
    conv1 = [I; -I] at the centre tap, conv2 = [M, -M], since relu(x) - relu(-x) = x."""
    conv1, conv2 = unit[0], unit[2]
    out_c, in_c = matrix.shape
    centre = conv1.kernel_size[0] // 2
    with torch.no_grad():
        conv1.weight.zero_()
        conv2.weight.zero_()
        eye = torch.eye(in_c, dtype=conv1.weight.dtype)
        conv1.weight[:in_c, :, centre, centre] = eye
        conv1.weight[in_c : 2 * in_c, :, centre, centre] = -eye
        conv2.weight[:, :in_c, centre, centre] = matrix
        conv2.weight[:, in_c : 2 * in_c, centre, centre] = -matrix


def test_gppnn_composition_with_hand_set_units():
    """Every unit set to a known linear map: get_lr = identity, get_hr_residual = 2 identity,
    prox = identity in the MS block; get_pan = band mean, get_hr_residual = replicate to every band,
    prox = identity in the PAN block. One layer must then give
    X0 = up(lr), X1 = X0 + up(2 (lr - down(X0))), X2 = X1 + (guide - mean_c X1),
    with up/down bicubic align_corners=True to the explicit sizes (here H is not 3 h)."""
    bands, guide_bands = 3, 1
    model = build("GPPNN", bands, guide_bands, ratio=3, n_feat=2 * bands, n_layer=1)
    eye = torch.eye(bands, dtype=torch.float64)
    ms, pan = model.ms_blocks[0], model.pan_blocks[0]
    set_linear_unit(ms.get_lr, eye)
    set_linear_unit(ms.get_hr_residual, 2 * eye)
    set_linear_unit(ms.prox, eye)
    set_linear_unit(pan.get_pan, torch.full((1, bands), 1.0 / bands, dtype=torch.float64))
    set_linear_unit(pan.get_hr_residual, torch.ones(bands, 1, dtype=torch.float64))
    set_linear_unit(pan.prox, eye)
    lr, guide = rand(2, bands, 7, 9, seed=1), rand(2, guide_bands, 20, 26, seed=2)
    x0 = bicubic_ac(lr, (20, 26))
    x1 = x0 + bicubic_ac(2 * (lr - bicubic_ac(x0, (7, 9))), (20, 26))
    x2 = x1 + (guide - x1.mean(dim=1, keepdim=True))
    assert (x1 - x0).abs().max() > 1e-3  # the MS step does act at this size
    with torch.no_grad():
        fused = model(lr, torch.zeros_like(x0), guide)
    assert (fused - x2).abs().max() < 1e-12


@pytest.mark.parametrize("lr_size, guide_size", [((7, 9), (21, 27)), ((7, 9), (20, 26)), ((6, 5), (12, 9))])
def test_gppnn_any_size_and_ratio(lr_size, guide_size):
    """Sizes where H is not ratio x h (ceil(H / r) = h) still work: every resampling has a target."""
    ratio = -(-guide_size[0] // lr_size[0])
    model = build("GPPNN", 4, 2, ratio=ratio, n_feat=8, n_layer=2)
    lr, guide = rand(2, 4, *lr_size), rand(2, 2, *guide_size, seed=1)
    fused = model(lr, torch.zeros(2, 4, *guide_size, dtype=torch.float64), guide)
    assert fused.shape == (2, 4, *guide_size) and torch.isfinite(fused).all()
    fused.square().mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


def test_gppnn_ignores_up():
    model = build("GPPNN", 4, 1, ratio=2, n_feat=8, n_layer=2)
    lr, guide = rand(1, 4, 6, 6), rand(1, 1, 12, 12, seed=1)
    with torch.no_grad():
        a = model(lr, torch.zeros(1, 4, 12, 12, dtype=torch.float64), guide)
        b = model(lr, rand(1, 4, 12, 12, seed=2), guide)
    assert torch.equal(a, b)


@pytest.mark.parametrize("case", sorted(CASES))
def test_gppnn_reference_pipeline_normalisation_outside_the_model(case):
    """The reference script divides each sample of ms and pan by its own maximum (+ 1e-10) before
    the call; doing that outside the model reproduces its stored ``fused_pipeline``."""
    oracle = load_oracle("GPPNN")
    model = oracle_model("GPPNN", oracle)
    lr, up, guide, _ = (oracle[key] for key in CASES[case])
    expected = oracle["fused_pipeline" + ("2" if case == "case2" else "")]

    def normalise(x):
        return x / (x.amax(dim=(1, 2, 3), keepdim=True) + 1e-10)

    with torch.no_grad():
        fused = model(normalise(lr), up, normalise(guide))
    error = float((fused - expected).abs().max())
    assert error < 1e-6 and error < 1e-5 * float(expected.abs().max())


def test_gppnn_bad_options():
    with pytest.raises(UserInputError, match="n_feat >= 1 and n_layer >= 1"):
        MODELS.build("GPPNN", lr_channels=8, guide_channels=1, ratio=4, n_layer=0)
    with pytest.raises(UserInputError, match="integer ratio"):
        MODELS.build("GPPNN", lr_channels=8, guide_channels=1, ratio=2.5)


# --------------------------------------------------------------------------------------- LAGConv


def laconv_count(n: int, m: int) -> int:
    """weight m n 9 (no bias); tap branch conv3x3 n -> 9, 1x1 9 -> 9 twice (with biases);
    global-bias branch 1x1 n -> m, 1x1 m -> m (with biases)."""
    return 9 * m * n + (81 * n + 9) + 2 * (81 + 9) + (n * m + m) + (m * m + m)


@pytest.mark.parametrize("bands, guide_bands", [(31, 3), (8, 1), (4, 2)])
def test_lagconv_parameter_count_by_hand(bands, guide_bands):
    expected = laconv_count(guide_bands + bands, 32) + 10 * laconv_count(32, 32) + laconv_count(32, bands)
    if (bands, guide_bands) == (8, 1):
        assert expected == 151_397  # the reference's count
    assert parameter_count(build("LAGConv", bands, guide_bands)) == expected


def laconv(n: int = 5, m: int = 4) -> LAConv2d:
    torch.manual_seed(3)
    return LAConv2d(n, m).double()


def saturate_taps(layer: LAConv2d, on: torch.Tensor) -> None:
    """Every tap weight a constant: 1 where ``on`` (9 booleans, row-major taps), else 0 (to 1e-17)."""
    with torch.no_grad():
        for module in layer.tap_attention:
            if isinstance(module, torch.nn.Conv2d):
                module.weight.zero_()
                module.bias.zero_()
        last = layer.tap_attention[4]
        last.bias.copy_(torch.where(on, SATURATE, -SATURATE).to(last.bias))


def zero_global_bias(layer: LAConv2d) -> None:
    with torch.no_grad():
        layer.global_bias[3].weight.zero_()
        layer.global_bias[3].bias.zero_()


def test_laconv_tap_sum_equals_the_unfold_formulation():
    """The reference's formulation: unfold x (channel-major n k^2 patches), scale each tap by its
    per-pixel weight (the same for every channel), contract with weight m x n k^2, add the global
    bias. Random weights, float64, 5 x 5 kernel as well."""
    for k in (3, 5):
        torch.manual_seed(k)
        layer = LAConv2d(5, 4, kernel_size=k).double()
        x = rand(2, 5, 9, 8, seed=k) - 0.5
        n, c, h, w = x.shape
        with torch.no_grad():
            taps = layer.tap_attention(x).reshape(n, 1, k * k, h * w)
            patches = F.unfold(x, k, padding=k // 2).view(n, c, k * k, h * w)
            y = layer.weight.reshape(4, c * k * k) @ (patches * taps).reshape(n, c * k * k, h * w)
            expected = y.view(n, 4, h, w) + layer.global_bias(x)
            assert (layer(x) - expected).abs().max() < 1e-12


def test_laconv_with_unit_taps_and_no_global_bias_is_a_plain_conv():
    layer = laconv()
    saturate_taps(layer, torch.ones(9, dtype=torch.bool))
    zero_global_bias(layer)
    x = rand(2, 5, 9, 11) - 0.5
    with torch.no_grad():
        assert (layer(x) - F.conv2d(x, layer.weight, padding=1)).abs().max() < 1e-12


@pytest.mark.parametrize("tap", range(9))
def test_laconv_each_tap_weight_scales_its_own_kernel_tap(tap):
    """Only tap t on: the layer is the plain conv with every other tap of the kernel zeroed (so the
    per-pixel weights are ordered as the kernel's taps, and shared by every input channel)."""
    layer = laconv()
    saturate_taps(layer, torch.arange(9) == tap)
    zero_global_bias(layer)
    mask = (torch.arange(9) == tap).to(torch.float64).view(1, 1, 3, 3)
    x = rand(2, 5, 8, 7, seed=1) - 0.5
    with torch.no_grad():
        assert (layer(x) - F.conv2d(x, layer.weight * mask, padding=1)).abs().max() < 1e-12


def test_laconv_tap_weights_vary_per_pixel():
    """A tap weight that is a per-pixel map a(p): with only the centre tap, y = a * conv1x1(x)."""
    layer = laconv()
    saturate_taps(layer, torch.arange(9) == 4)
    zero_global_bias(layer)
    x = rand(1, 5, 6, 6, seed=2)
    with torch.no_grad():
        first = layer.tap_attention[0]
        first.weight[4, 0, 1, 1] = 1.0  # the centre tap's logit becomes x[channel 0]
        first.bias[4] = 0.0
        layer.tap_attention[2].weight[4, 4] = 1.0
        layer.tap_attention[4].weight[4, 4] = 1.0
        layer.tap_attention[4].bias[4] = 0.0
        a = torch.sigmoid(x[:, :1])  # relu(relu(x0)) = x0 for x0 >= 0
        expected = a * F.conv2d(x, layer.weight[:, :, 1:2, 1:2])
        assert (layer(x) - expected).abs().max() < 1e-12


def test_laconv_global_bias_by_hand():
    """All taps off: the output is the global bias, W2 relu(W1 mean(x) + b1) + b2, constant per
    sample and output channel."""
    layer = laconv()
    saturate_taps(layer, torch.zeros(9, dtype=torch.bool))
    x = rand(2, 5, 7, 6, seed=4)
    conv1, conv2 = layer.global_bias[1], layer.global_bias[3]
    mean = x.mean(dim=(2, 3))
    hidden = torch.relu(mean @ conv1.weight[:, :, 0, 0].T + conv1.bias)
    bias = hidden @ conv2.weight[:, :, 0, 0].T + conv2.bias
    with torch.no_grad():
        out = layer(x)
    assert (out - bias[:, :, None, None]).abs().max() < 1e-12


def test_lagconv_zeroed_tail_gives_up_and_guide_comes_first():
    model = build("LAGConv", 4, 2, ratio=2, width=8, blocks=2)
    lr, up, guide = rand(2, 4, 5, 5), rand(2, 4, 10, 10, seed=1), rand(2, 2, 10, 10, seed=2)
    assert model.head.weight.shape[1] == 6
    with torch.no_grad():
        before = model(lr, up, guide)
        model.head.weight[:, :2] = 0.0  # the guide's input channels of the kernel
        saturate_taps(model.head, torch.ones(9, dtype=torch.bool))
        model.head.global_bias[1].weight.zero_()
        without_guide = model(lr, up, guide)
        assert torch.equal(without_guide, model(lr, up, rand(2, 2, 10, 10, seed=3)))
        assert not torch.equal(before, without_guide)
        torch.nn.init.zeros_(model.tail.weight)
        zero_global_bias(model.tail)
        assert torch.equal(model(lr, up, guide), up)


def test_lagconv_bad_options():
    with pytest.raises(UserInputError, match="width >= 1 and blocks >= 0"):
        MODELS.build("LAGConv", lr_channels=8, guide_channels=1, ratio=4, width=0)
    with pytest.raises(UserInputError, match="odd kernel_size"):
        LAConv2d(4, 4, kernel_size=2)
