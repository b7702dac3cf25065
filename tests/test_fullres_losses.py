"""The full-resolution losses (Z-PNN's spectral and spatial consistencies): zero where the
consistency holds exactly, hand-computed values, the threshold's two extremes, and falling
under training on the full-resolution fixture."""

from __future__ import annotations

import math

import pytest
import torch

from data.datasets import FusionH5Dataset
from engine.consistency import local_correlation
from engine.losses import LOSSES, CompositeLoss
from models import MODELS
from protocols.degrade import mtf_decimate, mtf_filter, wald_protocol
from protocols.mtf import sensor_kernel
from tests.conftest import ROOT
from utils.errors import UserInputError

FULL = ROOT / "tests" / "data" / "pancollection" / "test_wv3_OrigScale_tiny.h5"


def scene(bands: int, size: int, ratio: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """A float64 image and its Wald-degraded pair: {'image', 'lr', 'up', 'guide'}."""
    generator = torch.Generator().manual_seed(seed)
    image = torch.rand(2, bands, size, size, generator=generator, dtype=torch.float64)
    guide = image.mean(1, keepdim=True)
    lr, _ = wald_protocol(image, guide, ratio)
    up = torch.nn.functional.interpolate(lr, scale_factor=ratio, mode="bicubic")
    return {"image": image, "lr": lr, "up": up, "guide": guide}


@pytest.mark.parametrize("sensor, bands, ratio", [("none", 3, 2), ("WV3", 8, 4), ("QB", 4, 4)])
def test_spectral_is_zero_for_an_image_that_degrades_to_lr(sensor, bands, ratio):
    generator = torch.Generator().manual_seed(1)
    image = torch.rand(2, bands, 32, 32, generator=generator, dtype=torch.float64)
    lr, _ = wald_protocol(image, image[:, :1], ratio, sensor)
    loss = LOSSES.build("SpectralConsistency", sensor=sensor)
    assert float(loss(image, {"lr": lr})) < 1e-14
    assert float(loss(image + 0.01, {"lr": lr})) > 1e-3


def test_spectral_by_hand_on_a_constant_image():
    """A constant image stays constant under replicate padding: each band degrades to c times its
    kernel's sum (the toolbox's kernels are not renormalised: about 0.999)."""
    fused = torch.full((1, 3, 8, 8), 2.0, dtype=torch.float64)
    lr = torch.ones(1, 3, 4, 4, dtype=torch.float64)
    sums = sensor_kernel("none", 2, 3).sum(dim=(1, 2))
    expected = float((2 * sums - 1).abs().mean())
    assert 0.99 < expected < 1.0
    value = LOSSES.build("SpectralConsistency")(fused, {"lr": lr})
    assert float(value) == pytest.approx(expected, abs=1e-12)


def test_spectral_uses_explicit_gains():
    data = scene(2, 16, 2)
    lr = mtf_decimate(data["image"], 2, gains=[0.2, 0.4])
    assert float(LOSSES.build("SpectralConsistency", gains=[0.2, 0.4])(data["image"], {"lr": lr})) < 1e-14
    assert float(LOSSES.build("SpectralConsistency")(data["image"], {"lr": lr})) > 1e-4


@pytest.mark.parametrize("threshold", [True, False])
def test_spatial_is_zero_for_guide_equal_bands(threshold):
    data = scene(3, 32, 2)
    fused = torch.cat([data["guide"], 2 * data["guide"] + 0.1, 0.5 * data["guide"]], dim=1)
    loss = LOSSES.build("SpatialConsistency", threshold=threshold)
    assert float(loss(fused, data)) < 1e-12
    assert float(LOSSES.build("SpatialConsistency", threshold=False)(data["image"], data)) > 0.1


def test_spatial_by_hand():
    """2 x 3 pixels, window 2: two windows. Left: F = (0, 1, 2, 4), G = (0, 1, 1, 0), rho =
    -0.125 / sqrt(2.1875 * 0.25) = -1/sqrt(35); right: F = (1, 3, 4, 4), G = (1, 0, 0, 1),
    rho = -0.25 / sqrt(1.5 * 0.25) = -1/sqrt(6). Loss = mean(1 - rho)."""
    fused = torch.tensor([[[[0.0, 1, 3], [2, 4, 4]]]], dtype=torch.float64)
    guide = torch.tensor([[[[0.0, 1, 0], [1, 0, 1]]]], dtype=torch.float64)
    batch = {"lr": fused, "up": fused, "guide": guide}
    value = LOSSES.build("SpatialConsistency", window=2, threshold=False)(fused, batch)
    assert float(value) == pytest.approx(1 + (1 / math.sqrt(35) + 1 / math.sqrt(6)) / 2, abs=1e-12)


def test_local_correlation_equals_pearson_on_every_window():
    generator = torch.Generator().manual_seed(2)
    x = torch.rand(1, 2, 7, 6, generator=generator, dtype=torch.float64)
    y = torch.rand(1, 1, 7, 6, generator=generator, dtype=torch.float64)
    rho = local_correlation(x, y, 3)
    assert rho.shape == (1, 2, 5, 4)
    for band in range(2):
        for i in range(5):
            for j in range(4):
                pair = torch.stack(
                    [x[0, band, i : i + 3, j : j + 3].flatten(), y[0, 0, i : i + 3, j : j + 3].flatten()]
                )
                assert float(rho[0, band, i, j]) == pytest.approx(
                    float(torch.corrcoef(pair)[0, 1]), abs=1e-12
                )


def test_spatial_threshold_extremes():
    """An ``up`` perfectly correlated with the low-passed guide sets the threshold to 0 (every
    distance counts); an anti-correlated one sets it to 2 (nothing counts)."""
    data = scene(3, 32, 2, seed=3)
    low = mtf_filter(data["guide"].expand(-1, 3, -1, -1), sensor_kernel("none", 2, 3))
    plain = LOSSES.build("SpatialConsistency", threshold=False)(data["image"], data)
    thresholded = LOSSES.build("SpatialConsistency")
    assert float(thresholded(data["image"], {**data, "up": 3 * low + 1})) == pytest.approx(
        float(plain), abs=1e-12
    )
    assert float(thresholded(data["image"], {**data, "up": 1 - low})) == 0.0


@pytest.mark.parametrize("name", ["SpectralConsistency", "SpatialConsistency"])
def test_each_loss_falls_when_training_on_the_full_resolution_fixture(name):
    data = FusionH5Dataset(str(FULL), 2047)
    batch = {k: torch.stack([data[i][k] for i in range(len(data))]) for k in ("lr", "up", "guide")}
    torch.manual_seed(0)
    model = MODELS.build("TinyFusion", lr_channels=8, guide_channels=1, ratio=4, hidden=8)
    loss = CompositeLoss([(name, 1.0)], defaults={"sensor": "WV3"})
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    values = []
    for _ in range(25):
        value = loss(model(batch["lr"], batch["up"], batch["guide"]), batch)
        optimizer.zero_grad()
        value.backward()
        optimizer.step()
        values.append(float(value.detach()))
    assert values[-1] < 0.9 * values[0], values


def test_composite_fills_the_sensor_and_reports_what_needs_gt():
    loss = CompositeLoss(
        [("L1", 1.0), ("SpectralConsistency", 1.0), ("SpatialConsistency", 0.3, {"window": 4})],
        defaults={"sensor": "WV3"},
    )
    assert loss.losses[1].sensor == "WV3" and loss.losses[2].window == 4
    assert loss.needing("gt") == ["L1"] and loss.needs == {"gt", "lr", "up", "guide"}
    with pytest.raises(UserInputError, match="sensor 'WV3' has 8 MS gains but the image has 9 bands"):
        loss.check(9, 4)
    with pytest.raises(UserInputError, match="option 'window' must be an integer >= 2"):
        LOSSES.build("SpatialConsistency", window=1)


def test_a_loss_named_twice_is_logged_once_per_term():
    """Two terms of one loss (here L1 at weights 1 and 0.5) were one ``parts`` entry, the second
    overwriting the first in TensorBoard; now L1_1 and L1_2, each its own value."""
    loss = CompositeLoss([("L1", 1.0), ("L1", 0.5), ("SAM", 0.1)])
    gt = torch.rand(2, 3, 8, 8) + 0.1
    fused = gt + 0.25
    value = loss(fused, {"gt": gt})
    assert list(loss.parts) == ["L1_1", "L1_2", "SAM"]
    assert loss.parts["L1_1"] == loss.parts["L1_2"] == pytest.approx(0.25, rel=1e-6)
    assert float(value) == pytest.approx(1.5 * 0.25 + 0.1 * loss.parts["SAM"], rel=1e-6)
