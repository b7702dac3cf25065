"""Speed of the degradation primitives: old against new formulation, measured in one run.

Run from the repository root: ``python bench/bench_degrade.py [--device cuda] [--repeat 3]``.

1. ``interp23tap`` (ratio 4, float64): the old formulation, log2(ratio) 23-tap doublings of the
   whole tensor (``protocols.resize._double_axis``, still what builds the new block matrices),
   against the new banded block-matrix product, on the WV3 test-set sizes (20 x 8 and
   20 x 1 x 128 x 128) and on one 8-band 512 x 512 scene.
2. ``mtf_filter`` (WV3 41 x 41 kernels, float64) on 20 x 8 x 512 x 512: the old formulation,
   one batched FFT of every band at once (``FFT_CHUNK_ELEMENTS`` set to infinity), against the
   new default of about one band per FFT chunk.

Each line gives both times (best of ``--repeat`` runs after one warm-up call), the speed ratio
old / new and the largest absolute difference between the two results (inputs in [0, 2047]).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import protocols.degrade as degrade  # noqa: E402
from bench.timing import timed  # noqa: E402
from protocols.mtf import sensor_kernel  # noqa: E402
from protocols.resize import _double_axis, interp23tap  # noqa: E402

RATIO = 4


def interp23tap_by_doublings(x: torch.Tensor, ratio: int) -> torch.Tensor:
    """The old formulation: each 23-tap doubling applied to the whole N x C x H x W tensor."""
    for step in range(ratio.bit_length() - 1):
        x = _double_axis(_double_axis(x, -2, step == 0), -1, step == 0)
    return x


def mtf_filter_one_batch(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """The old formulation: ``mtf_filter`` with every band in a single FFT batch."""
    chunk = degrade.FFT_CHUNK_ELEMENTS
    degrade.FFT_CHUNK_ELEMENTS = sys.maxsize
    try:
        return degrade.mtf_filter(x, kernel)
    finally:
        degrade.FFT_CHUNK_ELEMENTS = chunk


def compare(
    label: str,
    old: Callable[[], torch.Tensor],
    new: Callable[[], torch.Tensor],
    repeat: int,
    device: torch.device,
) -> None:
    """Time both formulations and print times, speed ratio and largest difference."""
    old(), new()  # warm-up: cached tables, allocator
    old_out, t_old = timed(old, repeat, device)
    new_out, t_new = timed(new, repeat, device)
    diff = (old_out - new_out).abs().max().item()
    times = f"old {t_old:7.3f} s   new {t_new:7.3f} s   {t_old / t_new:5.1f}x"
    print(f"  {label:<20} {times}   max |diff| {diff:.1e}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="torch device")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs of each formulation")
    args = parser.parse_args()
    device = torch.device(args.device)
    gen = torch.Generator().manual_seed(0)

    def image(*shape: int) -> torch.Tensor:
        return (2047 * torch.rand(*shape, generator=gen, dtype=torch.float64)).to(device)

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {device}, float64")
    print(f"[interp23tap] ratio {RATIO}")
    for shape in [(20, 8, 128, 128), (20, 1, 128, 128), (1, 8, 512, 512)]:
        x = image(*shape)
        compare(
            " x ".join(map(str, shape)),
            lambda x=x: interp23tap_by_doublings(x, RATIO),
            lambda x=x: interp23tap(x, RATIO),
            args.repeat,
            device,
        )
    print("[mtf_filter] WV3 kernels (8 x 41 x 41), replicate padding")
    x, kernel = image(20, 8, 512, 512), sensor_kernel("WV3", RATIO, 8)
    compare(
        "20 x 8 x 512 x 512",
        lambda: mtf_filter_one_batch(x, kernel),
        lambda: degrade.mtf_filter(x, kernel),
        args.repeat,
        device,
    )


if __name__ == "__main__":
    main()
