"""Quality indices: hand-derived values, invariances, algebra rules and independent ports.

Cross-checks: torchmetrics (SAM in radians, ERGAS with the same ``ratio`` meaning: its source
computes 100 / ratio * sqrt(mean_b (RMSE_b / mean_b)^2), as ERGAS.m; SSIM, which in the
installed version averages the map of reflect-padded inputs over the whole image, so it is
compared with our 'valid' SSIM of the reflect-padded images) and sewar's q2n (H x W x C
arrays, block ``ws`` and ``stride``, no uint16 cast: equal on integer-valued images).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from metrics import (
    FULL_KEYS,
    HIGHER_IS_BETTER,
    REDUCED_KEYS,
    cc,
    cd_conjugate,
    cd_multiply,
    cut_border,
    d_lambda,
    ergas,
    full_resolution_report,
    psnr,
    q2n,
    q_avg,
    qnr,
    reduced_resolution_report,
    sam,
    scc,
    ssim,
    structure_constants,
)
from metrics.q2n import to_uint16_
from protocols.resize import upsample
from utils.errors import UserInputError


def _images(n: int = 2, c: int = 4, h: int = 40, w: int = 48, seed: int = 0) -> torch.Tensor:
    """Smooth positive random images at 11-bit digital-number scale, float64."""
    gen = torch.Generator().manual_seed(seed)
    coarse = torch.rand(n, c, h // 8 + 1, w // 8 + 1, generator=gen, dtype=torch.float64)
    smooth = F.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False)
    return 200 + 1600 * smooth + 40 * torch.rand(n, c, h, w, generator=gen, dtype=torch.float64)


def _noise(like: torch.Tensor, seed: int = 1) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(like.shape, generator=gen, dtype=like.dtype)


# --------------------------------------------------------------------------- SAM, ERGAS, PSNR, CC


def test_sam_orthogonal_parallel_and_zero_pixels() -> None:
    gt = torch.zeros(1, 2, 4, 4, dtype=torch.float64)
    gt[:, 0] = 5.0
    orthogonal = torch.zeros_like(gt)
    orthogonal[:, 1] = 3.0
    assert sam(orthogonal, gt).item() == pytest.approx(90.0, abs=1e-12)
    assert sam(7 * gt, gt).item() == pytest.approx(0.0, abs=1e-6)
    # half the pixels at 90 degrees, one pixel all-zero: excluded from the mean
    mixed = gt.clone()
    mixed[..., :2, :] = orthogonal[..., :2, :]
    mixed[..., 3, 3] = 0.0
    assert sam(mixed, gt).item() == pytest.approx(90.0 * 8 / 15, abs=1e-9)


def test_ergas_identical_and_constant_offset() -> None:
    gt = _images()
    assert torch.equal(ergas(gt, gt, 4), torch.zeros(2, dtype=torch.float64))
    k = torch.tensor([3.0, -5.0, 8.0, 1.0], dtype=torch.float64).view(1, 4, 1, 1)
    means = gt.mean((2, 3))
    expected = (100 / 4) * ((k.view(1, 4) ** 2) / means**2).mean(1).sqrt()
    torch.testing.assert_close(ergas(gt + k, gt, 4), expected, rtol=1e-12, atol=0)


def test_psnr_and_cc_hand_derived() -> None:
    gt = _images()
    assert psnr(gt + 4.0, gt, 2047.0).tolist() == pytest.approx([10 * math.log10(2047**2 / 16)] * 2)
    peak = gt.amax((1, 2, 3))
    torch.testing.assert_close(psnr(gt - 2.0, gt), 10 * torch.log10(peak**2 / 4))
    assert cc(3 * gt + 7, gt).tolist() == pytest.approx([1.0, 1.0], abs=1e-12)
    assert cc(-gt, gt).tolist() == pytest.approx([-1.0, -1.0], abs=1e-12)


def test_torchmetrics_sam_ergas_ssim() -> None:
    tm = pytest.importorskip("torchmetrics.functional.image")
    gt = _images()
    fused = gt + 30 * _noise(gt)
    radians = tm.spectral_angle_mapper(fused, gt, reduction="none").mean((1, 2))
    torch.testing.assert_close(sam(fused, gt), torch.rad2deg(radians), rtol=1e-9, atol=0)
    tm_ergas = tm.error_relative_global_dimensionless_synthesis(fused, gt, ratio=4, reduction="none")
    torch.testing.assert_close(ergas(fused, gt, 4), tm_ergas, rtol=1e-9, atol=0)
    tm_ssim = tm.structural_similarity_index_measure(fused, gt, data_range=2047.0, reduction="none")
    padded = [F.pad(x, (5, 5, 5, 5), mode="reflect") for x in (fused, gt)]
    torch.testing.assert_close(ssim(*padded, 2047.0), tm_ssim, rtol=1e-9, atol=0)


def test_ssim_and_scc_identical_and_invariances() -> None:
    gt = _images()
    assert ssim(gt, gt, 2047.0).tolist() == pytest.approx([1.0, 1.0], abs=1e-12)
    fused = gt + 20 * _noise(gt)
    assert (ssim(fused, gt, 2047.0) < 1).all()
    torch.testing.assert_close(scc(fused, gt), scc(gt, fused), rtol=1e-12, atol=0)
    # Sobel magnitudes scale with the image: SCC(a x, x) = 1; an offset only leaks in through
    # the zero padding of imfilter at the crop's border, so SCC(x + b, x) is just below 1
    assert scc(2.5 * gt, gt).tolist() == pytest.approx([1.0, 1.0], abs=1e-12)
    offset = scc(gt + 100, gt)
    assert ((offset < 1 - 1e-6) & (offset > 0.99)).all()


# --------------------------------------------------------------------------- Q_avg (img_qi)


def test_q_avg_identical_and_flat_windows() -> None:
    gt = _images()
    assert q_avg(gt, gt).tolist() == pytest.approx([1.0, 1.0], abs=1e-12)
    # flat windows: img_qi gives 2 mf mg / (mf^2 + mg^2), and 1 when both are zero
    a = torch.full((1, 1, 40, 40), 300.0, dtype=torch.float64)
    assert q_avg(a, a / 3).item() == pytest.approx(2 * 300 * 100 / (300**2 + 100**2), abs=1e-12)
    assert q_avg(0 * a, 0 * a).item() == 1.0
    assert math.isnan(q_avg(a[..., :20, :20], a[..., :20, :20]).item())


# --------------------------------------------------------------------------- hypercomplex algebra


@pytest.mark.parametrize("size", [2, 4, 8])
def test_cayley_dickson_norm_and_conjugation(size: int) -> None:
    gen = torch.Generator().manual_seed(size)
    x, y = torch.randn(2, 64, size, generator=gen, dtype=torch.float64)
    product = cd_multiply(x, y)
    torch.testing.assert_close(product.norm(dim=-1), x.norm(dim=-1) * y.norm(dim=-1))
    torch.testing.assert_close(cd_conjugate(product), cd_multiply(cd_conjugate(y), cd_conjugate(x)))
    # x conj(x) = |x|^2 (real)
    torch.testing.assert_close(
        cd_multiply(x, cd_conjugate(x)), F.pad(x.norm(dim=-1, keepdim=True) ** 2, (0, size - 1))
    )
    # the toolbox product is a unital Cayley-Dickson product up to the sign flip e_0 e_j = s_j e_j
    table = structure_constants(size)
    signs = table[:, 0, :].diagonal()
    torch.testing.assert_close(table[:, 0, :], torch.diag(signs))
    torch.testing.assert_close(table[:, :, 0], torch.diag(signs))
    assert set(signs.tolist()) <= {1.0, -1.0} and signs[0] == 1

    def unital(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return signs * cd_multiply(a, b)

    unit = F.pad(torch.ones(64, 1, dtype=torch.float64), (0, size - 1))
    torch.testing.assert_close(unital(unit, y), y)
    torch.testing.assert_close(unital(x, unit), x)
    torch.testing.assert_close(unital(x, unital(x, y)), unital(unital(x, x), y))  # alternative
    imaginary = torch.eye(size, dtype=torch.float64)[1:]
    torch.testing.assert_close(unital(imaginary, imaginary), -unit[: size - 1])
    torch.testing.assert_close(torch.einsum("kij,ni,nj->nk", table, x, y), product)


def test_complex_case_and_non_commutativity() -> None:
    x = torch.tensor([1.5, -2.0], dtype=torch.float64)
    y = torch.tensor([0.5, 3.0], dtype=torch.float64)
    z = complex(1.5, -2.0) * complex(0.5, 3.0)
    assert cd_multiply(x, y).tolist() == pytest.approx([z.real, z.imag])
    gen = torch.Generator().manual_seed(0)
    q1, q2 = torch.randn(2, 4, generator=gen, dtype=torch.float64)
    assert not torch.allclose(cd_multiply(q1, q2), cd_multiply(q2, q1))
    with pytest.raises(UserInputError):
        cd_multiply(torch.ones(3), torch.ones(3))


# --------------------------------------------------------------------------- Q2n


def test_q2n_identical_and_decreasing_with_noise() -> None:
    gt = torch.round(_images(1, 8, 64, 64))
    assert q2n(gt, gt).item() == pytest.approx(1.0, abs=1e-12)
    noise = _noise(gt)
    values = [q2n(gt + sigma * noise, gt).item() for sigma in (5, 20, 80, 320)]
    assert all(v < 1 for v in values)
    assert values == sorted(values, reverse=True) and len(set(values)) == 4


def test_q2n_uint16_cast_and_roles() -> None:
    gt = torch.round(_images(1, 4, 64, 64))
    # the toolbox casts to uint16 first: sub-integer differences vanish, [0, 1] data is degenerate
    assert q2n(gt + 0.49, gt - 0.49).item() == pytest.approx(1.0, abs=1e-12)
    x = torch.tensor([-3.0, 0.49, 0.5, 2.5, 65535.4, 7e4, float("nan")], dtype=torch.float64)
    assert to_uint16_(x).tolist() == [0.0, 0.0, 1.0, 3.0, 65535.0, 65535.0, 0.0]
    # the reference's block statistics normalise both images: the roles matter
    fused = gt * torch.linspace(0.5, 1.5, 4, dtype=torch.float64).view(1, 4, 1, 1) + 30 * _noise(gt)
    assert abs(q2n(fused, gt).item() - q2n(gt, fused).item()) > 1e-4


def test_q2n_mirror_extension() -> None:
    """A 40 x 50 image equals its explicit half-sample mirror extension to 64 x 64."""
    gt = torch.round(_images(1, 4, 40, 50))
    fused = torch.round(gt + 25 * _noise(gt))
    mirror = [
        torch.from_numpy(np.pad(x.numpy(), ((0, 0), (0, 0), (0, 24), (0, 14)), mode="symmetric"))
        for x in (fused, gt)
    ]
    assert q2n(fused, gt).item() == pytest.approx(q2n(*mirror).item(), abs=1e-14)


@pytest.mark.parametrize("bands", [4, 5, 8])
def test_q2n_matches_sewar_on_integer_images(bands: int) -> None:
    full_ref = pytest.importorskip("sewar.full_ref")
    gt = torch.round(_images(1, bands, 64, 70, seed=bands))
    fused = torch.clamp(torch.round(gt + 40 * _noise(gt)), min=0)
    expected = full_ref.q2n(gt[0].permute(1, 2, 0).numpy(), fused[0].permute(1, 2, 0).numpy(), 32, 32)
    assert q2n(fused, gt).item() == pytest.approx(expected, rel=1e-9)


# --------------------------------------------------------------------------- QNR family


def _full_resolution_case(n: int = 2, ratio: int = 4) -> dict[str, torch.Tensor]:
    hr = _images(n, 4, 64, 64, seed=3)
    pan = hr.mean(1, keepdim=True) + 5 * _noise(hr[:, :1])
    ms = F.avg_pool2d(hr, ratio)
    return {"fused": hr, "ms": ms, "pan": pan, "ms_up": upsample(ms, ratio)}


def test_qnr_definition_and_d_lambda_zero_for_ms_up() -> None:
    x = _full_resolution_case()
    result = qnr(x["fused"], x["ms"], x["pan"], 4)
    torch.testing.assert_close(result["QNR"], (1 - result["D_lambda"]) * (1 - result["D_s"]))
    assert ((result["D_lambda"] > 0) & (result["D_s"] > 0)).all()
    same = qnr(x["ms_up"], x["ms"], x["pan"], 4)
    assert torch.equal(same["D_lambda"], torch.zeros(2, dtype=torch.float64))
    assert torch.equal(d_lambda(x["ms_up"], x["ms_up"]), torch.zeros(2, dtype=torch.float64))
    torch.testing.assert_close(same["QNR"], 1 - same["D_s"])


def test_full_report_keys_directions_and_hqnr_definition() -> None:
    x = _full_resolution_case()
    report = full_resolution_report(x["fused"], x["ms"], x["pan"], 4, "QB")
    assert tuple(report) == FULL_KEYS
    assert set(HIGHER_IS_BETTER) == set(REDUCED_KEYS) | set(FULL_KEYS)
    assert HIGHER_IS_BETTER["QNR"] and not HIGHER_IS_BETTER["SAM"]
    torch.testing.assert_close(report["HQNR"], (1 - report["D_lambda_K"]) * (1 - report["D_s"]))
    assert all(v.shape == (2,) and v.dtype == torch.float64 for v in report.values())


# --------------------------------------------------------------------------- reports, dtypes, errors


def test_cut_border_matches_matlab_indexing() -> None:
    x = torch.arange(100.0).view(1, 1, 10, 10)
    cut = cut_border(x, 3)  # MATLAB I(3:end-3, 3:end-3): rows 2..6 (0-based)
    assert cut.shape == (1, 1, 5, 5) and cut[0, 0, 0, 0].item() == 22.0
    assert cut[0, 0, -1, -1].item() == 66.0
    assert cut_border(x, 0) is x


def test_batch_float32_and_report_consistency() -> None:
    gt = _images(3, 4, 64, 64)
    fused = gt + 25 * _noise(gt)
    report = reduced_resolution_report(fused, gt, 4, dim_cut=0)
    assert tuple(report) == REDUCED_KEYS
    single = reduced_resolution_report(fused[1:2], gt[1:2], 4, dim_cut=0)
    low = reduced_resolution_report(fused.float(), gt.float(), 4, dim_cut=0)
    for key in REDUCED_KEYS:
        assert report[key].shape == (3,) and report[key].dtype == torch.float64
        torch.testing.assert_close(single[key], report[key][1:2], rtol=1e-12, atol=0)
        torch.testing.assert_close(low[key], report[key], rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(report["SSIM"], ssim(fused, gt, gt.amax((1, 2, 3))))


def test_user_errors() -> None:
    gt = _images()
    with pytest.raises(UserInputError, match="same shape"):
        sam(gt[..., :-1], gt)
    with pytest.raises(UserInputError, match="N x C x H x W"):
        ergas(gt[0], gt[0], 4)
    with pytest.raises(UserInputError, match="multiple of the block size"):
        d_lambda(gt[..., :40, :40], gt[..., :40, :40])
    with pytest.raises(UserInputError, match="at least"):
        q2n(gt[..., :10, :10], gt[..., :10, :10])
    with pytest.raises(UserInputError, match="dim_cut"):
        cut_border(gt, -1)
    x = _full_resolution_case()
    with pytest.raises(UserInputError, match="ms must be"):
        qnr(x["fused"], x["fused"], x["pan"], 4)


def test_inputs_are_not_modified() -> None:
    """Single-block images (where a block view could alias the input) stay untouched."""
    gt = _images(1, 4, 32, 32) + 0.3
    fused = gt + 10 * _noise(gt)
    copies = gt.clone(), fused.clone()
    q2n(fused, gt)
    d_lambda(fused, gt)
    reduced_resolution_report(fused, gt, 4, dim_cut=0)
    assert torch.equal(gt, copies[0]) and torch.equal(fused, copies[1])
