"""Speed of the quality indices: our q2n against sewar's, and the whole report on a WV3-sized set.

Run from the repository root: ``python bench/bench_metrics.py [--device cuda] [--repeat 3]``
(``--skip-breakdown``, ``--skip-sewar-no-ref`` leave parts out).

1. q2n on one pair of 512 x 512 x 8 integer-valued images (0-2047): ours and
   ``sewar.full_ref.q2n`` must agree within 1e-6 (on integers the uint16 cast that only we do
   changes nothing); both values, both times and the speed ratio are printed.
2. ``reduced_resolution_report`` on 20 images of 8 x 256 x 256 (with gt, border cut 21) and
   ``full_resolution_report`` on 20 images of 8 x 512 x 512 with 128 x 128 MS and a 512 x 512 PAN
   (sensor WV3), the sizes of the WV3 test sets.
3. a breakdown: each index of both reports (and the 23-tap MS upsampling they share) timed once.
4. sewar's ``no_ref.d_lambda``, ``d_s`` and ``qnr`` on the same full-resolution set, timed only:
   their definitions differ from the toolbox (UQI on 8 x 8 sliding windows; D_s against a 7 x 7
   box-filtered, resized PAN), so their values are not comparable.

Times are wall-clock seconds after one warm-up call on a small input (the first call builds
cached kernels and tables): q2n best of max(``--repeat``, 5) runs, each report best of
``--repeat`` runs (default 1, to keep the whole run within about 3 minutes on 2 cores); sewar
is timed once.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import warnings
from importlib.metadata import version
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.timing import timed  # noqa: E402
from metrics import (  # noqa: E402
    cc,
    cut_border,
    d_lambda,
    d_lambda_k,
    d_s,
    ergas,
    full_resolution_report,
    psnr,
    q2n,
    q_avg,
    reduced_resolution_report,
    sam,
    scc,
    ssim,
)
from protocols.resize import upsample  # noqa: E402

N_IMAGES, BANDS, RATIO = 20, 8, 4
REDUCED_SIZE, FULL_SIZE = 256, 512


def machine(device: torch.device) -> str:
    """One paragraph describing where the numbers come from."""
    lines = [
        f"platform: {platform.platform()} ({platform.machine()}), python {platform.python_version()}",
        f"cpu count: {os.cpu_count()}, torch {torch.__version__} with "
        f"{torch.get_num_threads()} threads, numpy {np.__version__}, sewar {version('sewar')}",
        f"device: {device}" + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else ""),
    ]
    return "\n".join(lines)


def smooth(gen: torch.Generator, shape: tuple[int, int, int, int], cells: int) -> torch.Tensor:
    """Random field in [0, 1] with about ``cells`` features per side: N x C x H x W float64."""
    coarse = torch.rand(shape[0], shape[1], cells, cells, generator=gen, dtype=torch.float64)
    field = F.interpolate(coarse, size=shape[2:], mode="bicubic", align_corners=False)
    return field.clamp(0, 1)


def scene(gen: torch.Generator, n: int, size: int) -> torch.Tensor:
    """WV3-like DN image stack, N x 8 x size x size, integer values in [0, 2047]: a shared
    structure modulated per band, plus noise."""
    structure = smooth(gen, (n, 1, size, size), size // 8)
    spectra = 0.6 + 0.4 * smooth(gen, (n, BANDS, size, size), size // 32)
    noise = 20 * torch.randn(n, BANDS, size, size, generator=gen, dtype=torch.float64)
    return (200 + 1500 * structure * spectra + noise).round().clamp(0, 2047)


def reduced_set(gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """(fused, gt), each 20 x 8 x 256 x 256: the fused image is a blurred, noisy gt."""
    gt = scene(gen, N_IMAGES, REDUCED_SIZE)
    blurred = F.avg_pool2d(F.pad(gt, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
    noise = 15 * torch.randn(gt.shape, generator=gen, dtype=torch.float64)
    return (blurred + noise).round().clamp(0, 2047), gt


def full_set(gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(fused 20 x 8 x 512 x 512, ms 20 x 8 x 128 x 128, pan 20 x 1 x 512 x 512): MS and PAN
    are block means of a scene; fused adds the PAN's detail to the bicubic-upsampled MS."""
    truth = scene(gen, N_IMAGES, FULL_SIZE)
    ms = F.avg_pool2d(truth, RATIO).round()
    pan = truth.mean(dim=1, keepdim=True).round()
    up = F.interpolate(ms, scale_factor=RATIO, mode="bicubic", align_corners=False)
    pan_low = F.interpolate(F.avg_pool2d(pan, RATIO), scale_factor=RATIO, mode="bicubic", align_corners=False)
    return (up + (pan - pan_low)).round().clamp(0, 2047), ms, pan


def hwc(x: torch.Tensor) -> np.ndarray:
    """One C x H x W tensor as the H x W x C float64 array sewar expects."""
    return x.permute(1, 2, 0).cpu().numpy().astype(np.float64)


def bench_q2n(gen: torch.Generator, device: torch.device, repeat: int) -> None:
    """Our q2n against sewar's on one 512 x 512 x 8 integer pair: values, times, speed ratio."""
    from sewar.full_ref import q2n as sewar_q2n

    gt = scene(gen, 1, FULL_SIZE)
    fused = (gt + 40 * torch.randn(gt.shape, generator=gen, dtype=torch.float64)).round()
    fused = fused.clamp(0, 2047)
    ours_in = fused.to(device), gt.to(device)
    q2n(*(x[:, :, :64, :64] for x in ours_in))
    ours, t_ours = timed(lambda: q2n(*ours_in), max(repeat, 5), device)
    theirs, t_theirs = timed(lambda: sewar_q2n(hwc(gt[0]), hwc(fused[0]), 32, 32), 1, device)
    ours = float(ours.reshape(-1)[0])
    diff = abs(ours - theirs)
    print(f"\n[q2n] one pair of {FULL_SIZE} x {FULL_SIZE} x {BANDS} integer images, block 32")
    print(f"  ours  q2n = {ours:.10f}   {t_ours * 1e3:9.1f} ms")
    print(f"  sewar q2n = {theirs:.10f}   {t_theirs * 1e3:9.1f} ms")
    print(f"  |difference| = {diff:.2e} ({'agree' if diff <= 1e-6 else 'DISAGREE'} within 1e-6)")
    print(f"  speed ratio sewar / ours = {t_theirs / t_ours:.1f}x (goal >= 5x)")


def bench_reports(gen: torch.Generator, device: torch.device, repeat: int) -> tuple[tuple, tuple, float]:
    """Time both reports on the WV3-sized sets; return both sets and the full report's time."""
    fused_r, gt = (x.to(device) for x in reduced_set(gen))
    fused_f, ms, pan = (x.to(device) for x in full_set(gen))

    def reduced(n: int = N_IMAGES):
        return reduced_resolution_report(fused_r[:n], gt[:n], RATIO, 21)

    def full(n: int = N_IMAGES):
        return full_resolution_report(fused_f[:n], ms[:n], pan[:n], RATIO, "WV3")

    reduced(1)
    full(1)
    red, t_red = timed(reduced, repeat, device)
    ful, t_full = timed(full, repeat, device)
    print(f"\n[reports] {N_IMAGES} images, {BANDS} bands, ratio {RATIO}, float64")
    print(f"  reduced  ({REDUCED_SIZE} x {REDUCED_SIZE}, cut 21): {t_red:7.2f} s")
    print(f"  full     ({FULL_SIZE} x {FULL_SIZE} PAN, 128 x 128 MS, WV3): {t_full:7.2f} s")
    print(f"  total: {t_red + t_full:.2f} s (goal < 5 s)")
    for name, values in {**red, **ful}.items():
        v = values.double()
        print(f"  {name:<10} mean {v.mean().item():9.4f}   std {v.std().item():8.4f}")
    return (fused_r, gt), (fused_f, ms, pan), t_full


def breakdown(reduced: tuple[torch.Tensor, ...], full: tuple[torch.Tensor, ...], device) -> None:
    """Time each index of the two reports once, to show where the time goes."""
    fused_r, gt = (cut_border(x, 21) for x in reduced)
    fused_f, ms, pan = full
    up = upsample(ms, RATIO)
    parts = {
        "SAM": lambda: sam(fused_r, gt),
        "ERGAS": lambda: ergas(fused_r, gt, RATIO),
        "Q2n": lambda: q2n(fused_r, gt),
        "Q_avg": lambda: q_avg(fused_r, gt),
        "SCC": lambda: scc(fused_r, gt),
        "PSNR": lambda: psnr(fused_r, gt),
        "SSIM": lambda: ssim(fused_r, gt, 2047.0),
        "CC": lambda: cc(fused_r, gt),
        "MS upsampling (23-tap)": lambda: upsample(ms, RATIO),
        "D_lambda": lambda: d_lambda(fused_f, up),
        "D_s": lambda: d_s(fused_f, up, pan, RATIO),
        "D_lambda_K": lambda: d_lambda_k(fused_f, ms, RATIO, "WV3", up),
    }
    print("\n[breakdown] one run of each part of the reports")
    for name, call in parts.items():
        _, seconds = timed(call, 1, device)
        print(f"  {name:<23} {seconds:6.2f} s")


def bench_sewar_no_ref(full: tuple[torch.Tensor, ...], t_ours: float) -> None:
    """Time sewar's no-reference indices image by image; compare with our full report's time."""
    fused, ms, pan = full
    from sewar.no_ref import d_lambda, d_s, qnr

    pairs = [(hwc(f), hwc(m), hwc(p)[:, :, 0]) for f, m, p in zip(fused, ms, pan, strict=True)]
    calls = {
        "d_lambda": lambda f, m, p: d_lambda(m, f),
        "d_s": lambda f, m, p: d_s(p, m, f, r=RATIO),
        "qnr": lambda f, m, p: qnr(p, m, f, r=RATIO),
    }
    print(f"\n[sewar no_ref] {len(pairs)} full-resolution images, one at a time (time only:")
    print("  different definitions from the toolbox's D_lambda.m / D_s.m / QNR.m)")
    for name, call in calls.items():
        with warnings.catch_warnings():  # sewar's d_s warns that its own resize returns float32
            warnings.simplefilter("ignore", UserWarning)
            _, seconds = timed(lambda call=call: [call(*p) for p in pairs], 1, torch.device("cpu"))
        print(f"  sewar {name:<8} {seconds:7.2f} s")
    ratio = seconds / t_ours
    print(f"  our full report (5 indices, batched): {t_ours:.2f} s, {ratio:.1f}x faster than sewar qnr")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="torch device for our code")
    parser.add_argument("--repeat", type=int, default=1, help="timed runs of each of our reports")
    parser.add_argument("--skip-breakdown", action="store_true", help="skip the per-index times")
    parser.add_argument("--skip-sewar-no-ref", action="store_true", help="skip part 3")
    args = parser.parse_args()
    device = torch.device(args.device)
    gen = torch.Generator().manual_seed(0)
    print(machine(device))
    bench_q2n(gen, device, args.repeat)
    reduced, full, t_full = bench_reports(gen, device, args.repeat)
    if not args.skip_breakdown:
        breakdown(reduced, full, device)
    if not args.skip_sewar_no_ref:
        bench_sewar_no_ref(full, t_full)


if __name__ == "__main__":
    main()
