"""RAMSF speed and memory: the fast CSFPA against the plain per-neighbour formulation (the test
oracle), measured in the same run, each case in a fresh process so peak memory is its own. The
last column is the gain of the fast formulation (> 1: fast is better: more patches/s, fewer
seconds, less memory).

    python bench/bench_ramsf.py                      # CPU: training, 256 and 512 inference, 2048 scene
    python bench/bench_ramsf.py --device cuda --scene 8192 --amp bf16

Training: patches/s of full training steps (forward, L1 loss, backward, Adam) of the released
RAMSF (d = 64, MLP 256-128) on WV3-like 8-band 64 x 64 patches, ratio 4, batch 32. Inference:
seconds and peak memory (resident set growth on the CPU, ``max_memory_allocated`` on a GPU) of
one image; the scene is fused in 512-pixel tiles (engine/tiling.py, as predict.py does).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import torch

from engine.training_parts import AMP_DTYPES, autocast
from models import MODELS


def build(fast: bool, device: torch.device) -> torch.nn.Module:
    """The released RAMSF for 8 bands + PAN at ratio 4: the defaults (fast) or the plain
    formulation (per-neighbour concatenation, N x C x H x W memory order, 16384-pixel chunks)."""
    torch.manual_seed(0)
    plain = {} if fast else {"factored_query": False, "channels_last": False, "query_chunk": 16384}
    return MODELS.build("RAMSF", lr_channels=8, guide_channels=1, ratio=4, **plain).to(device)


def inputs(size: int, batch: int, device: torch.device):
    gen = torch.Generator().manual_seed(0)
    lr = torch.rand(batch, 8, size // 4, size // 4, generator=gen)
    up = torch.nn.functional.interpolate(lr, scale_factor=4, mode="bicubic")
    guide = torch.rand(batch, 1, size, size, generator=gen)
    return lr.to(device), up.to(device), guide.to(device), up.clone().to(device)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_case(case: dict) -> dict:
    """One measurement in this process: {'seconds': ..., 'peak_mb': ..., ...}."""
    device = torch.device(case["device"])
    context = autocast(device, case.get("amp", "none"))
    model = build(case["fast"], device)
    if case["kind"] == "train":
        lr, up, guide, gt = inputs(64, 32, device)
        optimizer = torch.optim.Adam(model.parameters(), 1e-4)
        steps = case["steps"]
        times = []
        for _ in range(steps + 1):  # the first step warms up
            sync(device)
            start = time.perf_counter()
            with context:
                fused = model(lr, up, guide)
            loss = (fused.float() - gt).abs().mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            sync(device)
            times.append(time.perf_counter() - start)
        seconds = float(np.median(times[1:]))  # the median step: robust to this VM's hiccups
        return {"seconds_per_step": seconds, "patches_per_s": 32 / seconds}
    model.eval()
    if case["kind"] == "scene":
        from engine.tiling import fuse_tiled

        size = case["size"]
        rng = np.random.default_rng(0)
        lr = rng.uniform(0, 2047, (8, size // 4, size // 4)).astype(np.float32)
        guide = rng.uniform(0, 2047, (1, size, size)).astype(np.float32)
        out = np.empty((8, size, size), np.float32)
        base = peak_rss_mb()
        start = time.perf_counter()
        with context:
            fuse_tiled(model, lr, guide, 4, 128, 28, out, device, 2047.0)
        sync(device)
        return {"seconds": time.perf_counter() - start, "peak_mb": peak_rss_mb() - base}
    lr, up, guide, _ = inputs(case["size"], 1, device)
    with torch.no_grad(), context:
        model(lr[..., :16, :16], up[..., :64, :64], guide[..., :64, :64])  # warm-up
        sync(device)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        base = peak_rss_mb()
        times = []
        for _ in range(3):  # the best of three: this VM's timings vary by 20-30 %
            start = time.perf_counter()
            model(lr, up, guide)
            sync(device)
            times.append(time.perf_counter() - start)
        seconds = min(times)
    peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else peak_rss_mb() - base
    return {"seconds": seconds, "peak_mb": peak}


def measure(case: dict) -> dict:
    """Run ``case`` in a fresh Python process and return its JSON result."""
    done = subprocess.run(
        [sys.executable, __file__, "--case", json.dumps(case)], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"case {case} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def time_and_memory_rows(name: str, res: dict[bool, dict]) -> list[tuple[str, float, float, float]]:
    """(measure, plain, fast, plain / fast) rows for the seconds and the peak memory of a case."""
    return [
        (
            f"{name}, s",
            res[False]["seconds"],
            res[True]["seconds"],
            res[False]["seconds"] / res[True]["seconds"],
        ),
        (
            f"{name}, peak MB",
            res[False]["peak_mb"],
            res[True]["peak_mb"],
            res[False]["peak_mb"] / max(res[True]["peak_mb"], 1e-9),
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--amp", default="none", choices=["none", *AMP_DTYPES])
    parser.add_argument("--steps", type=int, default=5, help="timed training steps per variant")
    parser.add_argument("--sizes", default="256,512", help="single-image inference sizes")
    parser.add_argument("--scene", type=int, default=2048, help="whole-scene size (0: skip)")
    parser.add_argument("--case", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        print(json.dumps(run_case(json.loads(args.case))))
        return
    name = torch.cuda.get_device_name() if args.device.startswith("cuda") else "CPU"
    print(
        f"device {args.device} ({name}), "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, amp {args.amp}"
    )
    common = {"device": args.device, "amp": args.amp}
    rows = []
    train = {f: measure({**common, "kind": "train", "fast": f, "steps": args.steps}) for f in (False, True)}
    rows.append(
        (
            "training, patches/s (64x64, batch 32)",
            train[False]["patches_per_s"],
            train[True]["patches_per_s"],
            train[True]["patches_per_s"] / train[False]["patches_per_s"],
        )
    )
    for size in [int(s) for s in args.sizes.split(",") if s]:
        res = {f: measure({**common, "kind": "infer", "fast": f, "size": size}) for f in (False, True)}
        rows += time_and_memory_rows(f"inference {size}x{size}", res)
    if args.scene:
        res = {f: measure({**common, "kind": "scene", "fast": f, "size": args.scene}) for f in (False, True)}
        rows += time_and_memory_rows(f"scene {args.scene}x{args.scene} in 512 tiles", res)
    print(f"{'measure':44s} {'plain':>10s} {'fast':>10s} {'fast gain':>9s}")
    for name, plain, fast, ratio in rows:
        print(f"{name:44s} {plain:10.2f} {fast:10.2f} {ratio:8.2f}x")


if __name__ == "__main__":
    main()
