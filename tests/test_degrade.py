"""MTF kernels, MATLAB-compatible resizing, 23-tap interpolation and the Wald protocol."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import protocols.degrade as degrade
from protocols.degrade import decimate, mtf_filter, mtf_pan, wald_protocol
from protocols.mtf import SENSOR_GAINS, mtf_kernel, sensor_gains, sensor_kernel
from protocols.resize import (
    INTERP_BLOCK,
    INTERP_REACH,
    TAPS_23,
    _interp23_block_matrix,
    filter_axis,
    imresize_matlab,
    interp23tap,
    upsample,
)
from tests.conftest import load_golden
from utils.errors import UserInputError

GOLDEN_TOL = 1e-12  # relative to the array's largest magnitude; measured errors are < 1e-14


def _t(array: np.ndarray) -> torch.Tensor:
    """Golden C x H x W (or H x W) array as a 1 x C x H x W float64 tensor."""
    x = torch.from_numpy(np.asarray(array, dtype=np.float64))
    return x[None] if x.dim() == 3 else x[None, None]


def _rel_err(result: torch.Tensor, expected: np.ndarray) -> float:
    """Largest absolute deviation over the largest magnitude of ``expected``."""
    got = result.detach().cpu().numpy().reshape(expected.shape)
    return float(np.abs(got - expected).max() / np.abs(expected).max())


def _check_crops(result: torch.Tensor, golden: dict, prefix: str) -> None:
    """Compare ``result`` (1 x C x H x W) with the ``_corner48`` and ``_centre48`` crops."""
    c = result.shape[-1] // 2
    assert _rel_err(result[..., :48, :48], golden[f"{prefix}_corner48"]) < GOLDEN_TOL
    centre = result[..., c - 24 : c + 24, c - 24 : c + 24]
    assert _rel_err(centre, golden[f"{prefix}_centre48"]) < GOLDEN_TOL


def _response(kernel: np.ndarray, freq: float) -> float:
    """Frequency response of a k x k kernel at (0, freq) cycles per pixel (zero-padded DFT)."""
    n = np.arange(kernel.shape[-1]) - kernel.shape[-1] // 2
    return float((kernel.sum(axis=0) * np.exp(-2j * np.pi * n * freq)).sum().real)


# ---------------------------------------------------------------- MTF kernels


@pytest.mark.parametrize("key", sorted(load_golden("mtf_kernels")))
def test_mtf_kernels_match_golden(key: str) -> None:
    expected = load_golden("mtf_kernels")[key]
    sensor, ratio = key.rsplit("_r", 1)
    kernel = sensor_kernel(sensor, int(ratio), expected.shape[0])
    assert kernel.dtype == torch.float64 and kernel.shape == expected.shape
    assert np.abs(kernel.numpy() - expected).max() < 1e-12


def test_mtf_kernel_symmetry_sum_and_response() -> None:
    gains = list(SENSOR_GAINS["WV3"][0])
    kernel = sensor_kernel("WV3", 4, 8).numpy()
    np.testing.assert_allclose(kernel, kernel.transpose(0, 2, 1), atol=1e-15)
    np.testing.assert_allclose(kernel, kernel[:, ::-1, ::-1], atol=1e-15)
    golden = load_golden("mtf_kernels")["WV3_r4"]
    np.testing.assert_allclose(kernel.sum(axis=(1, 2)), golden.sum(axis=(1, 2)), atol=1e-12)
    assert np.all(np.abs(kernel.sum(axis=(1, 2)) - 0.9988) < 5e-4)  # not renormalised
    for ratio in (2, 3, 4, 8):
        for gain in (0.15, 0.3, gains[2]):
            k = mtf_kernel(ratio, [gain]).numpy()[0]
            at_nyquist = _response(k, 1.0 / (2 * ratio))
            assert abs(at_nyquist - gain) < 0.02
            # The toolbox's (N - 1) in alpha puts G at 20/41 of the LR Nyquist frequency, so the
            # response at 1/(2r) is G ** (20.5 / 20) ** 2, slightly below G.
            assert abs(at_nyquist - gain ** (20.5 / 20) ** 2) < 2e-3
            assert abs(_response(k, 20.0 / (41 * ratio)) - gain) < 2e-3


def test_sensor_gains_tables_and_band_counts() -> None:
    assert sensor_gains("WV2", 8) == ([0.35] * 7 + [0.27], 0.11)
    assert sensor_gains("geoeye-1", 4) == ([0.23] * 4, 0.16)
    assert sensor_gains("wv4", 4) == ([0.23] * 4, 0.16)
    assert sensor_gains("GF2", 5) == ([0.3] * 5, 0.15)
    assert sensor_gains("None", 7) == ([0.3] * 7, 0.15)
    assert sensor_gains("WV3", 4)[0] == [0.325, 0.355, 0.360, 0.350]  # toolbox: first bands
    assert sensor_gains("QB", 2, gains=[0.5, 0.4]) == ([0.5, 0.4], 0.15)
    with pytest.raises(UserInputError, match="pass gains"):
        sensor_gains("QB", 8)
    with pytest.raises(UserInputError, match="one per band"):
        sensor_gains("QB", 4, gains=[0.3, 0.3])
    with pytest.raises(UserInputError, match=r"\(0, 1\)"):
        sensor_gains("QB", 2, gains=[0.3, 1.2])
    with pytest.raises(UserInputError, match="did you mean 'IKONOS'"):
        sensor_gains("IKONOS2", 4)
    with pytest.raises(UserInputError, match="odd"):
        mtf_kernel(4, [0.3], size=40)


# ---------------------------------------------------------------- resizing


@pytest.mark.parametrize("case, ratio", [("wv3like_syn", 4), ("landsat8_crop", 2)])
def test_imresize_pan_matches_golden(case: str, ratio: int) -> None:
    golden = load_golden(case)
    result = imresize_matlab(_t(golden["in_PAN"]), 1 / ratio)
    if "out_PAN_LR" in golden:
        assert _rel_err(result, golden["out_PAN_LR"]) < GOLDEN_TOL
    else:
        _check_crops(result, golden, "out_PAN_LR")


def test_imresize_hand_computed_1d() -> None:
    x = torch.tensor([3.0, -1, 4, 1, -5, 9, 2, 6, 5, 3, 5, 8], dtype=torch.float64)
    image = x.reshape(1, 1, 1, -1).expand(1, 1, 2, -1)
    tail = x[None, None, 1:]  # windows of x[1:] at stride 2 are centred on 2j + 0.5
    # no antialias, scale 1/2: output j sits at 2j + 0.5; cubic(0.5) = 0.5625, cubic(1.5) = -0.0625
    plain = imresize_matlab(image, 0.5, antialias=False)[0, 0]
    taps = torch.tensor([-0.0625, 0.5625, 0.5625, -0.0625], dtype=torch.float64)
    assert torch.allclose(plain[:, 1:5], F.conv1d(tail, taps[None, None], stride=2)[0])
    # antialias: kernel 0.5 * cubic(t / 2) at distances 0.5, 1.5, 2.5, 3.5, hand-evaluated
    half = [0.43359375, 0.11328125, -0.03515625, -0.01171875]
    wide = torch.tensor(half[::-1] + half, dtype=torch.float64)
    smooth = imresize_matlab(image, 0.5)[0, 0, 0]
    assert torch.allclose(smooth[2:4], F.conv1d(tail, wide[None, None], stride=2)[0, 0])
    # symmetric padding at the left edge: x[-1], x[-2], x[-3] = x[0], x[1], x[2]
    edge = (wide[:3] * x[[2, 1, 0]]).sum() + (wide[3:] * x[:5]).sum()
    assert smooth[0].item() == pytest.approx(edge.item(), abs=1e-14)


@pytest.mark.parametrize("scale", [0.25, 0.5])
def test_imresize_matches_torch_antialiased_bicubic_inside(scale: float) -> None:
    # torch's antialiased bicubic uses a = -0.5 and the same widened, normalised kernel; it only
    # differs at the borders (no symmetric padding)
    x = torch.rand(2, 3, 48, 40, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    ours = imresize_matlab(x, scale)
    ref = F.interpolate(x, scale_factor=scale, mode="bicubic", antialias=True, align_corners=False)
    assert ours.shape == ref.shape == (2, 3, int(48 * scale), int(40 * scale))
    assert (ours - ref)[..., 4:-4, 4:-4].abs().max() < 1e-12


def test_imresize_bilinear_upscale_matches_torch() -> None:
    x = torch.rand(1, 2, 9, 7, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    ours = imresize_matlab(x, 2.0, method="bilinear")
    ref = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
    assert (ours - ref).abs().max() < 1e-12


def test_imresize_sizes_nearest_and_constant() -> None:
    x = torch.arange(30, dtype=torch.float64).expand(1, 1, 4, 30)
    assert imresize_matlab(x, output_size=(3, 11)).shape == (1, 1, 3, 11)
    assert imresize_matlab(torch.zeros(1, 1, 10, 7), 1 / 3).shape == (1, 1, 4, 3)  # ceil
    for ratio in (2, 3, 4, 5, 6):
        picked = imresize_matlab(x, 1 / ratio, method="nearest")[0, 0, 0, :3]
        assert picked.tolist() == [ratio // 2 + ratio * j for j in range(3)]
    const = torch.full((1, 2, 17, 23), 7.5, dtype=torch.float64)
    for scale in (0.25, 1 / 3, 0.5, 2.0, 3.0):
        assert (imresize_matlab(const, scale) - 7.5).abs().max() < 1e-12


# ---------------------------------------------------------------- interpolation


def test_23tap_kernel() -> None:
    half = [0.5, 0.305334091185, 0, -0.072698593239, 0, 0.021809577942, 0, -0.005192756653]
    half += [0, 0.000807762146, 0, -0.000060081482]
    assert TAPS_23.shape == (23,)
    np.testing.assert_array_equal(TAPS_23, TAPS_23[::-1])
    np.testing.assert_allclose(TAPS_23[11:], 2 * np.array(half), rtol=0, atol=0)
    # centre tap 1 and zeros at the other even offsets: the samples are kept as they are
    assert TAPS_23[1::2].tolist() == [0.0] * 5 + [1.0] + [0.0] * 5
    assert TAPS_23[::2].sum() == pytest.approx(1.0, abs=1e-9)  # odd offsets: unit DC gain


@pytest.mark.parametrize("case, ratio", [("wv3like_syn", 4), ("landsat8_crop", 2)])
def test_interp23tap_matches_golden(case: str, ratio: int) -> None:
    golden = load_golden(case)
    _check_crops(interp23tap(_t(golden["out_MS_LR"]), ratio), golden, "out_EXP")


def _zero_insert_reference(x: torch.Tensor, ratio: int) -> torch.Tensor:
    """interp23tap.m literally: zero grid, samples at 2:2:end then 1:2:end, circular filtering."""
    taps = torch.from_numpy(TAPS_23)
    for step in range(int(np.log2(ratio))):
        grid = x.new_zeros(*x.shape[:-2], 2 * x.shape[-2], 2 * x.shape[-1])
        start = 1 if step == 0 else 0
        grid[..., start::2, start::2] = x
        for dim in (-1, -2):
            n = grid.shape[dim]
            index = torch.arange(-11, n + 11) % n  # wraps several times on tiny images
            windows = grid.index_select(dim, index).unfold(dim, 23, 1)
            grid = (windows * taps).sum(-1)
        x = grid
    return x


@pytest.mark.parametrize("ratio, size", [(2, (7, 12)), (4, (5, 6)), (8, (3, 4))])
def test_interp23tap_equals_zero_insertion_definition(ratio: int, size: tuple[int, int]) -> None:
    gen = torch.Generator().manual_seed(5)
    x = torch.rand(2, 3, *size, dtype=torch.float64, generator=gen)
    assert (interp23tap(x, ratio) - _zero_insert_reference(x, ratio)).abs().max() < 1e-14


@pytest.mark.parametrize("ratio, size", [(2, (37, 70)), (4, (65, 33)), (8, (34, 9))])
def test_interp23tap_blocks_equal_zero_insertion(ratio: int, size: tuple[int, int]) -> None:
    # several blocks per axis, lengths not multiples of the block: windows, wrap and trimming
    assert max(size) > INTERP_BLOCK
    x = torch.rand(1, 2, *size, dtype=torch.float64, generator=torch.Generator().manual_seed(9))
    assert (interp23tap(x, ratio) - _zero_insert_reference(x, ratio)).abs().max() < 1e-13


@pytest.mark.parametrize("ratio", [1, 2, 4, 8, 64])
def test_interp23_block_matrix_reach_and_shift_invariance(ratio: int) -> None:
    matrix = _interp23_block_matrix(3, ratio)
    assert matrix.shape == (3 * ratio, 3 + 2 * INTERP_REACH)
    # the outermost input of every window has no weight: no tap falls outside the window
    assert matrix[:, 0].abs().max() == 0 and matrix[:, -1].abs().max() == 0
    # each block sample's outputs are the previous sample's, shifted by one input
    assert torch.equal(matrix[ratio:, 1:], matrix[:-ratio, :-1])
    assert (matrix.sum(dim=1) - 1).abs().max() < 1e-8  # a constant stays constant


@pytest.mark.parametrize("mode", ["circular", "symmetric", "replicate"])
def test_filter_axis_matches_padded_conv(mode: str) -> None:
    gen = torch.Generator().manual_seed(6)
    x = torch.rand(1, 2, 6, 9, dtype=torch.float64, generator=gen)
    taps = torch.rand(7, dtype=torch.float64, generator=gen)
    pads = {
        "circular": [6, 7, 8, 0, 1, 2, 3, 4, 5, 6, 7, 8, 0, 1, 2],
        "symmetric": [2, 1, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 8, 7, 6],
        "replicate": [0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 8, 8, 8],
    }
    rows = x[..., pads[mode]]
    expected = F.conv1d(rows.reshape(-1, 1, 15), taps[None, None]).reshape(1, 2, 6, 9)
    assert (filter_axis(x, taps, -1, mode) - expected).abs().max() < 1e-14
    transposed = filter_axis(x.transpose(-1, -2), taps, -2, mode).transpose(-1, -2)
    assert (transposed - expected).abs().max() < 1e-14


@pytest.mark.parametrize("ratio", [2, 4, 8])
def test_interp23tap_keeps_samples_at_decimation_grid(ratio: int) -> None:
    x = torch.rand(1, 2, 6, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(ratio))
    up = interp23tap(x, ratio)  # log2(ratio) passes: the size tells a 16x loop apart at ratio 8
    assert up.shape == (1, 2, 6 * ratio, 5 * ratio)
    assert (decimate(up, ratio) - x).abs().max() < 1e-12


@pytest.mark.parametrize("ratio", [2, 3, 4, 6, 8])
def test_upsample_constant_and_ramp_alignment(ratio: int) -> None:
    const = torch.full((1, 3, 5, 4), -2.25, dtype=torch.float64)
    methods = ["auto", "bicubic", "cubic-aligned"] + (["23tap"] if ratio in (2, 4, 8) else [])
    for method in methods:
        assert (upsample(const, ratio, method) + 2.25).abs().max() < 1e-8
    size = 32 * ratio  # the 23-tap's circular wrap spoils about 10 LR pixels at each border
    rows = torch.arange(size, dtype=torch.float64) - size / 2
    ramp = (3.0 * rows[:, None] - 2.0 * rows[None, :]).expand(1, 1, size, size)
    back = upsample(decimate(ramp, ratio), ratio)
    inner = slice(12 * ratio, -12 * ratio)
    assert (back - ramp)[..., inner, inner].abs().max() < 1e-6
    # MATLAB's enlarging imresize is half a pixel off the decimation grid for even ratios:
    # it returns the ramp at (i + 0.5, j + 0.5)
    shift = upsample(decimate(ramp, ratio), ratio, "bicubic") - ramp
    expected = 0.0 if ratio % 2 else 0.5 * (3.0 - 2.0)
    assert shift[..., inner, inner].mean().item() == pytest.approx(expected, abs=1e-6)


# ---------------------------------------------------------------- filtering and the Wald protocol


def test_mtf_filter_matches_direct_replicate_correlation() -> None:
    gen = torch.Generator().manual_seed(2)
    x = torch.rand(2, 3, 9, 8, dtype=torch.float64, generator=gen)
    kernel = torch.rand(3, 5, 5, dtype=torch.float64, generator=gen)
    padded = F.pad(x, (2, 2, 2, 2), mode="replicate")
    windows = padded.unfold(2, 5, 1).unfold(3, 5, 1)  # N x C x H x W x 5 x 5
    direct = (windows * kernel[None, :, None, None]).sum(dim=(-1, -2))
    assert (mtf_filter(x, kernel) - direct).abs().max() < 1e-13
    shared = mtf_filter(x, kernel[:1])
    assert (shared - mtf_filter(x, kernel[:1].expand(3, 5, 5))).abs().max() == 0
    # a kernel larger than the image still pads by replication
    big = mtf_filter(torch.full((1, 1, 4, 4), 2.0, dtype=torch.float64), mtf_kernel(4, [0.3]))
    assert (big - 2.0 * mtf_kernel(4, [0.3]).sum()).abs().max() < 1e-12


def test_chunks_cover_every_band_once() -> None:
    assert degrade._chunks(2, 5, 2) == [
        (slice(i, i + 1), slice(b, b + 2)) for i in range(2) for b in (0, 2, 4)
    ]
    assert degrade._chunks(5, 2, 5) == [(slice(i, i + 2), slice(0, 2)) for i in (0, 2, 4)]
    assert degrade._chunks(3, 4, 0) == degrade._chunks(3, 4, 1)  # at least one band


@pytest.mark.parametrize("elements", [1, 2 * 14 * 14, 2**40])
def test_mtf_filter_and_wald_independent_of_chunking(elements: int, monkeypatch: pytest.MonkeyPatch) -> None:
    # FFT grid of 9 x 8 images with a 5 x 5 kernel: 14 x 14, so 1, 2 or all bands per chunk
    gen = torch.Generator().manual_seed(7)
    x = torch.rand(2, 3, 9, 8, dtype=torch.float64, generator=gen)
    kernel = torch.rand(3, 5, 5, dtype=torch.float64, generator=gen)
    padded = F.pad(x, (2, 2, 2, 2), mode="replicate")
    windows = padded.unfold(2, 5, 1).unfold(3, 5, 1)
    direct = (windows * kernel[None, :, None, None]).sum(dim=(-1, -2))
    monkeypatch.setattr(degrade, "FFT_CHUNK_ELEMENTS", elements)
    assert (mtf_filter(x, kernel) - direct).abs().max() < 1e-13
    strided = degrade._correlate(x, kernel, 3, 1)
    assert strided.shape == (2, 3, 3, 3)
    assert (strided - direct[..., 1::3, 1::3]).abs().max() < 1e-13


def test_mtf_pan_matches_golden() -> None:
    golden = load_golden("wv3like_syn")
    _check_crops(mtf_pan(_t(golden["in_PAN"]), "WV3", 4), golden, "out_PAN_LP")


@pytest.mark.parametrize(
    "case, ms_key, ratio, sensor",
    [("wv3like_syn", "in_MSHR", 4, "WV3"), ("landsat8_crop", "in_MS", 2, "none")],
)
def test_wald_protocol_matches_golden(case: str, ms_key: str, ratio: int, sensor: str) -> None:
    golden = load_golden(case)
    ms_lr, pan_lr = wald_protocol(_t(golden[ms_key]), _t(golden["in_PAN"]), ratio, sensor)
    assert _rel_err(ms_lr, golden["out_MS_LR"]) < GOLDEN_TOL
    if "out_PAN_LR" in golden:
        assert _rel_err(pan_lr, golden["out_PAN_LR"]) < GOLDEN_TOL
    else:
        _check_crops(pan_lr, golden, "out_PAN_LR")


def test_wald_protocol_composition_and_modes() -> None:
    gen = torch.Generator().manual_seed(3)
    ms = torch.rand(2, 4, 18, 12, dtype=torch.float64, generator=gen)
    pan = torch.rand(2, 1, 18, 12, dtype=torch.float64, generator=gen)
    ms_lr, pan_lr = wald_protocol(ms, pan, 3, "QB", pan_mode="mtf")
    assert ms_lr.shape == (2, 4, 6, 4) and pan_lr.shape == (2, 1, 6, 4)
    assert (ms_lr - decimate(mtf_filter(ms, sensor_kernel("QB", 3, 4)), 3)).abs().max() < 1e-13
    assert (pan_lr - decimate(mtf_pan(pan, "QB", 3), 3)).abs().max() < 1e-13
    gains = [0.2, 0.25, 0.3, 0.35]
    custom, _ = wald_protocol(ms, pan, 3, "QB", ms_gains=gains)
    assert (custom - decimate(mtf_filter(ms, mtf_kernel(3, gains)), 3)).abs().max() < 1e-13


def test_dtype_and_device_follow_input() -> None:
    gen = torch.Generator().manual_seed(4)
    ms = torch.rand(1, 3, 16, 16, dtype=torch.float64, generator=gen) * 2047
    pan = torch.rand(1, 1, 16, 16, dtype=torch.float64, generator=gen) * 2047
    ref_ms, ref_pan = wald_protocol(ms, pan, 4)
    ms32, pan32 = wald_protocol(ms.float(), pan.float(), 4)
    assert ms32.dtype == pan32.dtype == torch.float32 and ms32.device == ms.device
    assert (ms32.double() - ref_ms).abs().max() / 2047 < 1e-5
    assert (pan32.double() - ref_pan).abs().max() / 2047 < 1e-5
    for result in (upsample(ms32, 4), upsample(ms32, 3), imresize_matlab(ms32, 0.5)):
        assert result.dtype == torch.float32 and result.device == ms.device


def test_user_errors() -> None:
    x = torch.zeros(1, 2, 8, 8, dtype=torch.float64)
    pan = torch.zeros(1, 1, 8, 8, dtype=torch.float64)
    cases = [
        lambda: upsample(x, 4, "lanczos"),
        lambda: interp23tap(x, 3),
        lambda: upsample(x, 0),
        lambda: imresize_matlab(x, 0.5, method="cubic"),
        lambda: imresize_matlab(x, 0.5, output_size=(4, 4)),
        lambda: imresize_matlab(x, -1.0),
        lambda: imresize_matlab(x[0], 0.5),
        lambda: imresize_matlab(x.long(), 0.5),
        lambda: interp23tap(x[..., :0], 4),
        lambda: wald_protocol(x, pan, 3),
        lambda: wald_protocol(x, pan, 2, pan_mode="bicubic"),
        lambda: wald_protocol(x, torch.zeros(1, 1, 12, 12), 2),
        lambda: wald_protocol(x, pan, 2, "WV9"),
        lambda: mtf_filter(x, torch.zeros(3, 5, 5)),
        lambda: mtf_filter(x, torch.zeros(2, 4, 4)),
        lambda: mtf_kernel(0, [0.3]),
    ]
    for call in cases:
        with pytest.raises(UserInputError):
            call()
