"""What the papers fix in DiCNN and MSDCNN, derived by hand: layer sizes (parameter counts for
8 bands + PAN and for 4 bands + a 3-band guide), receptive fields, DiCNN's residual on ``up``
and MSDCNN's final ReLU (with and without its ``residual`` option)."""

from __future__ import annotations

import pytest
import torch

from tests.test_peer_models import build, conv, count, inputs
from utils.errors import UserInputError


def dicnn_params(bands: int, guide_bands: int) -> int:
    return conv(bands + guide_bands, 64, 3) + conv(64, 64, 3) + conv(64, bands, 3)


def msdcnn_params(bands: int, guide_bands: int) -> int:
    x = bands + guide_bands
    deep = (
        conv(x, 60, 7)
        + sum(conv(60, 20, k) for k in (3, 5, 7))
        + conv(60, 30, 3)
        + sum(conv(30, 10, k) for k in (3, 5, 7))
        + conv(30, bands, 5)
    )
    shallow = conv(x, 64, 9) + conv(64, 32, 1) + conv(32, bands, 5)
    return deep + shallow


def test_parameter_counts_by_hand():
    assert (dicnn_params(8, 1), msdcnn_params(8, 1)) == (46_792, 228_556)  # PanCollection's counts
    for bands, guide_bands in ((8, 1), (4, 3)):
        assert count(build("DiCNN", bands, guide_bands)) == dicnn_params(bands, guide_bands)
        assert count(build("MSDCNN", bands, guide_bands)) == msdcnn_params(bands, guide_bands)
    # 4 bands + 3-band guide, layer by layer: 4096 + 36928 + 2308; deep 20640 + 99660 + 16230
    # + 24930 + 3004, shallow 36352 + 2080 + 3204
    assert (dicnn_params(4, 3), msdcnn_params(4, 3)) == (43_332, 206_100)


def changed_window(name: str, height: int, at: int) -> tuple[int, int, int, int]:
    """Rows and columns of the output that move when one guide pixel (at, at) moves."""
    model = build(name, bands=4, guide_bands=3)
    lr, up, guide = inputs(4, 3, height=height)
    poked = guide.clone()
    poked[:, 1, at, at] += 1.0
    with torch.no_grad():
        changed = (model(lr, up, poked) - model(lr, up, guide)).abs().amax(dim=(0, 1)) > 0
    rows, cols = changed.any(dim=1).nonzero().flatten(), changed.any(dim=0).nonzero().flatten()
    return int(rows.min()), int(rows.max()), int(cols.min()), int(cols.max())


def test_dicnn_receptive_field_is_7_pixels():
    """Three 3 x 3 layers: 3 pixels each way."""
    assert changed_window("DiCNN", 24, 12) == (9, 15, 9, 15)


def test_msdcnn_receptive_field_is_25_pixels():
    """Deep branch 7, 7 (largest multi-scale kernel), 3, 7, 5: 3 + 3 + 1 + 3 + 2 = 12 pixels
    each way; the shallow branch (9, 1, 5) reaches only 4 + 0 + 2 = 6."""
    assert changed_window("MSDCNN", 48, 24) == (12, 36, 12, 36)


def zero_last_layers(model: torch.nn.Module) -> list[torch.nn.Conv2d]:
    lasts = [model.body[-1]] if hasattr(model, "body") else [model.deep[-1], model.shallow[-1]]
    for layer in lasts:
        torch.nn.init.zeros_(layer.weight)
        torch.nn.init.zeros_(layer.bias)
    return lasts


def test_dicnn_with_zeroed_last_conv_returns_exactly_up():
    model = build("DiCNN", bands=4, guide_bands=3)
    zero_last_layers(model)
    lr, up, guide = inputs(4, 3)
    with torch.no_grad():
        assert torch.equal(model(lr, up, guide), up)


def test_msdcnn_output_is_relu_of_the_branch_sum():
    """No ``up`` by default: zeroed last layers give exactly 0; residual=True gives ``up``
    (non-negative here), clipped at 0 where ``up`` is negative."""
    model = build("MSDCNN")
    lr, up, guide = inputs(seed=2)
    with torch.no_grad():
        fused = model(lr, up, guide)
        raw = model.deep(torch.cat((up, guide), 1)) + model.shallow(torch.cat((up, guide), 1))
        assert (fused >= 0).all() and (raw < 0).any() and torch.equal(fused, raw.clamp(min=0))
        zero_last_layers(model)
        assert torch.equal(model(lr, up, guide), torch.zeros_like(up))
        model.residual = True
        assert torch.equal(model(lr, up, guide), up)
        shifted = up - 0.5
        assert torch.equal(model(lr, shifted, guide), shifted.clamp(min=0))


def test_msdcnn_residual_keeps_the_branches_and_adds_up():
    plain, residual = build("MSDCNN"), build("MSDCNN", residual=True)
    lr, up, guide = inputs(seed=3)
    with torch.no_grad():
        x = torch.cat((up, guide), 1)
        expected = (up + (residual.deep(x) + residual.shallow(x))).clamp(min=0)
        assert torch.equal(residual(lr, up, guide), expected)
    assert count(plain) == count(residual)  # the option adds no parameter


@pytest.mark.parametrize("ratio", [2, 3, 8])
@pytest.mark.parametrize("name", ["DiCNN", "MSDCNN"])
def test_any_ratio_keeps_the_size(name, ratio):
    model = build(name, bands=5, guide_bands=2, ratio=ratio)
    lr, up, guide = inputs(5, 2, ratio, height=23)
    with torch.no_grad():
        assert model(lr, up, guide).shape == up.shape


def test_bad_width_is_a_user_error():
    with pytest.raises(UserInputError, match="width"):
        build("DiCNN", width=0)
