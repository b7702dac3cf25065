"""What the papers fix in the peer networks PNN, PanNet and FusionNet: layer sizes (parameter
counts by hand), receptive field, residual outputs, high-pass inputs and the exact enlargement."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from models import MODELS
from models.pannet import box_highpass, upsampling_deconv
from utils.errors import UserInputError


def conv(c_in: int, c_out: int, k: int) -> int:
    """Parameters of a k x k convolution with bias."""
    return c_in * c_out * k * k + c_out


def build(name: str, bands: int = 8, guide_bands: int = 1, ratio: int = 4, **options):
    torch.manual_seed(0)
    return MODELS.build(name, lr_channels=bands, guide_channels=guide_bands, ratio=ratio, **options).double()


def inputs(bands: int = 8, guide_bands: int = 1, ratio: int = 4, height: int = 24, seed: int = 0):
    """float64 (lr, up, guide): lr N x C x ceil(H/r)^2, up its bilinear enlargement, guide random."""
    gen = torch.Generator().manual_seed(seed)
    low = -(-height // ratio)
    lr = torch.rand(2, bands, low, low, generator=gen, dtype=torch.float64)
    up = F.interpolate(lr, size=(height, height), mode="bilinear", align_corners=False)
    return lr, up, torch.rand(2, guide_bands, height, height, generator=gen, dtype=torch.float64)


def count(model) -> int:
    return sum(p.numel() for p in model.parameters())


def test_parameter_counts_for_8_bands_and_pan():
    blocks = 4 * 2 * conv(32, 32, 3)
    pnn = conv(9, 64, 9) + conv(64, 32, 5) + conv(32, 8, 5)
    pannet = (8 * 8 * 8 * 8 + 8) + conv(9, 32, 3) + blocks + conv(32, 8, 3)  # deconv kernel 2 x ratio
    fusionnet = conv(8, 32, 3) + blocks + conv(32, 8, 3)
    assert (pnn, pannet, fusionnet) == (104_360, 83_024, 78_632)
    assert count(build("PNN")) == pnn
    assert count(build("PanNet")) == pannet
    assert count(build("FusionNet")) == fusionnet
    assert count(build("FusionNet", bands=31, guide_bands=3)) == conv(3, 31, 1) + conv(31, 32, 3) + (
        blocks + conv(32, 31, 3)
    )


def test_pnn_receptive_field_is_17_pixels():
    """9 x 9, 5 x 5, 5 x 5: a guide pixel reaches exactly 8 pixels away, no further."""
    model = build("PNN")
    lr, up, guide = inputs(height=40)
    poked = guide.clone()
    poked[:, :, 20, 20] += 1.0
    with torch.no_grad():
        changed = (model(lr, up, poked) - model(lr, up, guide)).abs().amax(dim=(0, 1)) > 0
    rows, cols = changed.any(dim=1).nonzero().flatten(), changed.any(dim=0).nonzero().flatten()
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (12, 28, 12, 28)


@pytest.mark.parametrize("name", ["PNN", "PanNet", "FusionNet"])
def test_zeroed_last_conv_gives_up_or_zero(name):
    """PanNet and FusionNet add the detail to ``up``; PNN outputs the image itself unless residual."""
    model = build(name)
    last = model.body[-1] if name == "PNN" else model.trunk[-1]
    torch.nn.init.zeros_(last.weight)
    torch.nn.init.zeros_(last.bias)
    lr, up, guide = inputs()
    with torch.no_grad():
        fused = model(lr, up, guide)
    assert torch.equal(fused, torch.zeros_like(up) if name == "PNN" else up)
    if name == "PNN":
        model.residual = True
        with torch.no_grad():
            assert torch.equal(model(lr, up, guide), up)


def test_box_highpass_borders_by_hand():
    """reflect mirrors around the edge pixel (OpenCV's default), replicate repeats it."""
    row = torch.tensor([[[[0.0, 1.0, 2.0, 3.0, 4.0, 5.0]]]], dtype=torch.float64).expand(1, 1, 6, 6)
    # 5 x 5 mean at column 0: reflect reads columns 2 1 0 1 2 -> 6 / 5; replicate 0 0 0 1 2 -> 3 / 5
    assert box_highpass(row, 5, "reflect")[0, 0, 3, 0] == pytest.approx(0.0 - 6 / 5, abs=1e-15)
    assert box_highpass(row, 5, "replicate")[0, 0, 3, 0] == pytest.approx(0.0 - 3 / 5, abs=1e-15)
    assert torch.equal(box_highpass(row, 5, "reflect")[..., 2:4], box_highpass(row, 5, "replicate")[..., 2:4])


def test_box_highpass_of_constant_and_impulse():
    assert box_highpass(torch.full((1, 2, 9, 7), 0.37, dtype=torch.float64), 5).abs().max() < 1e-15
    impulse = torch.zeros(1, 1, 11, 11, dtype=torch.float64)
    impulse[0, 0, 5, 5] = 1.0
    expected = torch.zeros(11, 11, dtype=torch.float64)
    expected[3:8, 3:8] = -1 / 25  # the centred 5 x 5 window only
    expected[5, 5] = 1 - 1 / 25
    assert torch.allclose(box_highpass(impulse, 5)[0, 0], expected, atol=1e-15)


@pytest.mark.parametrize("ratio", [2, 3, 4, 6, 8])
def test_transposed_conv_enlarges_by_exactly_the_ratio(ratio):
    deconv = upsampling_deconv(3, ratio)
    assert deconv.kernel_size == (2 * ratio, 2 * ratio)
    for height, width in ((1, 1), (5, 7), (8, 3)):
        out = deconv(torch.zeros(1, 3, height, width))
        assert out.shape[-2:] == (ratio * height, ratio * width)


@pytest.mark.parametrize("ratio, height", [(3, 23), (4, 63), (6, 25), (8, 33)])
def test_pannet_sizes_not_multiple_of_ratio(ratio, height):
    model = build("PanNet", bands=5, guide_bands=2, ratio=ratio)
    lr, up, guide = inputs(5, 2, ratio, height)
    with torch.no_grad():
        assert model(lr, up, guide).shape == up.shape


def test_pannet_sees_only_high_passes_and_keeps_spectra():
    """Offsets of lr and guide vanish in the high-pass; an offset of ``up`` passes straight through."""
    model = build("PanNet")
    lr, up, guide = inputs(seed=3)
    with torch.no_grad():
        shifted = model(lr + 0.25, up + 0.25, guide - 0.5)
        assert (shifted - model(lr, up, guide) - 0.25).abs().max() < 1e-12


@pytest.mark.parametrize("guide_bands", [1, 3])
def test_fusionnet_sees_only_pan_minus_up(guide_bands):
    """A common detail added to ``up`` and to every guide band passes through unchanged (for a
    multi-band guide: at initialisation, where the guide projection is the band mean)."""
    model = build("FusionNet", guide_bands=guide_bands)
    lr, up, guide = inputs(guide_bands=guide_bands, seed=4)
    detail = torch.rand(2, 1, 24, 24, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    with torch.no_grad():
        moved = model(lr, up + detail, guide + detail)
        assert (moved - model(lr, up, guide) - detail).abs().max() < 1e-7  # 1/3 stored in float32


@pytest.mark.parametrize(
    "name, options, message",
    [
        ("PanNet", dict(ratio=2.5), "integer ratio"),
        ("PanNet", dict(highpass_size=4), "odd"),
        ("PNN", dict(width=0), "width"),
        ("FusionNet", dict(blocks=-1), "blocks"),
    ],
)
def test_bad_options_are_user_errors(name, options, message):
    with pytest.raises(UserInputError, match=message):
        MODELS.build(name, lr_channels=8, guide_channels=1, **{"ratio": 4, **options})
