"""RAMSF speed: what train.py runs (the defaults: ``factored_query='fast'``, channels_last, the
padding convolutions and shared-slope PReLUs of models/blocks.py, Adam fused by
engine.training_parts.build_optimizer) against the plain formulation (``factored_query=False``,
N x C x H x W, 16384-pixel chunks: the test oracle, built from stock ``nn.Conv2d`` and ``nn.PReLU``
with the same weights, and stepped by the stock ``torch.optim.Adam``), both in the same process,
interleaved step by step (this VM's CPU is shared: only ratios within one run are meaningful).
The last column is the gain of the fast configuration (> 1: better).

    python bench/bench_ramsf.py            # CPU: both training cases, 256 and 512 inference, scene
    python bench/bench_ramsf.py --quick    # fewer steps, 256 inference only, no scene
    python bench/bench_ramsf.py --device cuda --scene 8192 --amp bf16

Training: patches/s of full steps (forward, L1 loss, backward, Adam) of the released RAMSF (d = 64,
MLP 256-128) in two cases: WV3-like 8 bands + PAN, 64 x 64, ratio 4, batch 32 (the benchmark) and
the demo's earlier main command, 7 bands + PAN, 32 x 32, ratio 2, batch 16 (option.yml now trains
batch 8, at about the same patches/s). The median step of each configuration, interleaved, with
train.py's malloc settings (``utils.memory``). The float32 sgemm peak (a square matmul loop) is
measured in the same rounds. Printed: each configuration's effective GFLOP/s (FLOPs of the plain
step by ``torch.utils.flop_counter.FlopCounterMode`` over its time), its share of that peak and,
with ``--split``, the LHSDR / CSFPA parts of each step. A third configuration, the fast one
with stock ``nn.Conv2d``, ``nn.PReLU`` and Adam (the step before those blocks), shows what they gain,
in float32 and, where the device has native bf16, under bf16 autocast. Inference: the best of three
(interleaved) seconds of one image; the scene (whole image in 512 tiles, engine/tiling.py) is run
in a fresh process per configuration, so its peak memory is its own.
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
from torch.utils.flop_counter import FlopCounterMode

from engine.options import OptimizerOptions
from engine.training_parts import AMP_DTYPES, autocast, build_optimizer, resolve_amp
from models import MODELS
from models.blocks import Conv3x3, SharedPReLU
from utils.memory import keep_freed_memory

CASES = {  # name: (bands, ratio, guide size, batch)
    "WV3 8+1 bands, 64x64, ratio 4, batch 32": (8, 4, 64, 32),
    "demo 7+1 bands, 32x32, ratio 2, batch 16": (7, 2, 32, 16),
}
PLAIN = {"factored_query": False, "channels_last": False, "query_chunk": 16384}
STOCK = "stock"
"""The fast formulation with stock modules and Adam (this repository before models/blocks.py's
Conv3x3 and SharedPReLU and the fused Adam): the third configuration of a training case."""


def stock_modules(model: torch.nn.Module) -> torch.nn.Module:
    """``model`` with every Conv3x3 and SharedPReLU replaced by the stock ``nn.Conv2d`` and
    ``nn.PReLU`` of the same function and weights (in place; returned)."""
    for module in list(model.modules()):
        for name, child in module.named_children():
            if isinstance(child, Conv3x3):
                stock = torch.nn.Conv2d(
                    child.in_channels, child.out_channels, 3, padding=1, padding_mode=child.padding_mode
                )
            elif isinstance(child, SharedPReLU):
                stock = torch.nn.PReLU(num_parameters=1)
            else:
                continue
            stock.load_state_dict(child.state_dict())
            setattr(module, name, stock)
    return model


def build(fast: bool, device: torch.device, bands: int = 8, ratio: int = 4) -> torch.nn.Module:
    """The released RAMSF for ``bands`` + PAN: the defaults (fast) or the plain formulation."""
    torch.manual_seed(0)
    model = MODELS.build("RAMSF", lr_channels=bands, guide_channels=1, ratio=ratio, **({} if fast else PLAIN))
    return (model if fast else stock_modules(model)).to(device)


def optimizer_for(fast: bool, model: torch.nn.Module) -> torch.optim.Optimizer:
    """train.py's Adam (fused where torch has it) for the fast configuration, the stock one for the plain."""
    if fast:
        return build_optimizer(model.parameters(), OptimizerOptions(name="Adam", lr=1e-4))
    return torch.optim.Adam(model.parameters(), 1e-4)


def inputs(bands: int, ratio: int, size: int, batch: int, device: torch.device):
    """(lr, up, guide, gt): random lr N x bands x size/ratio^2, bicubic up, guide N x 1 x size^2."""
    gen = torch.Generator().manual_seed(0)
    lr = torch.rand(batch, bands, size // ratio, size // ratio, generator=gen)
    up = torch.nn.functional.interpolate(lr, scale_factor=ratio, mode="bicubic")
    guide = torch.rand(batch, 1, size, size, generator=gen)
    return lr.to(device), up.to(device), guide.to(device), up.clone().to(device)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device: torch.device) -> float:
    """Seconds of one call of ``fn`` (device synchronised)."""
    sync(device)
    start = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - start


def sgemm_seconds(size: int, device: torch.device, dtype: torch.dtype = torch.float32) -> float:
    """Seconds of one size^3 matmul in ``dtype`` (the peak reference, 2 size^3 FLOPs)."""
    a, b = (torch.randn(size, size, device=device, dtype=dtype) for _ in range(2))
    a @ b
    return timed(lambda: a @ b, device)


def train_step(model, optimizer, batch, context) -> None:
    """One training step: forward (under ``context``), L1 loss, backward, Adam."""
    lr, up, guide, gt = batch
    with context:
        fused = model(lr, up, guide)
    loss = (fused.float() - gt).abs().mean()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()


def _addmm_flops(self_shape, a_shape, b_shape, *args, out_shape=None, **kwargs) -> int:
    """FLOPs of the in-place ``addmm_`` (FlopCounterMode counts only the out-of-place one)."""
    return 2 * a_shape[0] * a_shape[1] * b_shape[1]


def step_flops(model, batch, context) -> int:
    """FLOPs (matmuls and convolutions) of one forward + backward, by FlopCounterMode."""
    with FlopCounterMode(display=False, custom_mapping={torch.ops.aten.addmm_: _addmm_flops}) as counter:
        lr, up, guide, gt = batch
        with context:
            fused = model(lr, up, guide)
        (fused.float() - gt).abs().mean().backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops()


def split_seconds(model, batch, context, device) -> tuple[float, float]:
    """(LHSDR, CSFPA) seconds of forward + backward of each part alone."""
    lr, up, guide, _ = batch
    memory = torch.channels_last if model.channels_last else torch.contiguous_format
    lr, up, guide = (x.contiguous(memory_format=memory) for x in (lr, up, guide))
    out: dict[str, torch.Tensor] = {}

    def lhsdr():
        with context:
            out["detail"] = model.lhsdr(up, guide)
        out["detail"].float().sum().backward()

    def csfpa():
        detail = out["detail"].detach().requires_grad_()
        with context:
            fused = model.csfpa(lr, detail)
        fused.float().sum().backward()

    return timed(lhsdr, device), timed(csfpa, device)


def train_case(name: str, args, device: torch.device, context) -> list[tuple]:
    """Rows of one training case: plain vs fast patches/s, GFLOP/s and peak share; where the
    device computes bf16 natively (``train.amp: auto`` picks bf16), also fast under bf16 autocast
    against the plain float32 step."""
    bands, ratio, size, batch_size = CASES[name]
    batch = inputs(bands, ratio, size, batch_size, device)
    models = {fast: build(fast, device, bands, ratio) for fast in (False, True)}
    models[STOCK] = stock_modules(build(True, device, bands, ratio))
    optimizers = {key: optimizer_for(key is True, m) for key, m in models.items()}
    flops = {fast: step_flops(models[fast], batch, context) for fast in (False, True)}
    configs = {"plain": (False, context), "fast": (True, context), "stock": (STOCK, context)}
    if args.amp == "none" and resolve_amp(device, "auto") == "bf16":
        configs["fast bf16"] = (True, autocast(device, "bf16"))
        configs["stock bf16"] = (STOCK, autocast(device, "bf16"))
    times: dict[str, list[float]] = {label: [] for label in configs}
    parts: dict[bool, list[tuple[float, float]]] = {False: [], True: []}
    peaks, bf16_peaks = [], []
    for step in range(args.steps + 1):  # step 0 warms up; the order alternates
        order = list(configs) if step % 2 else list(reversed(configs))
        for label in order:
            key, ctx = configs[label]
            seconds = timed(lambda k=key, c=ctx: train_step(models[k], optimizers[k], batch, c), device)
            if step:
                times[label].append(seconds)
                if args.split and label in ("plain", "fast"):
                    parts[key].append(split_seconds(models[key], batch, context, device))
        if step:
            peaks.append(2 * args.peak_size**3 / sgemm_seconds(args.peak_size, device) / 1e9)
            if "fast bf16" in configs:
                matmul = sgemm_seconds(args.peak_size, device, torch.bfloat16)
                bf16_peaks.append(2 * args.peak_size**3 / matmul / 1e9)
            shown = ", ".join(f"{label} {t[-1]:.2f} s" for label, t in times.items())
            print(
                f"  [{name}: step {step}: {shown}, sgemm {peaks[-1]:.0f} GFLOP/s]",
                file=sys.stderr,
                flush=True,
            )
    medians = {label: float(np.median(t)) for label, t in times.items()}
    seconds = {False: medians["plain"], True: medians["fast"]}
    peak = float(np.median(peaks))
    gflops = {fast: flops[False] / seconds[fast] / 1e9 for fast in seconds}
    own = {fast: flops[fast] / seconds[fast] / 1e9 for fast in seconds}
    rows = [
        (
            f"{name}: patches/s",
            batch_size / seconds[False],
            batch_size / seconds[True],
            seconds[False] / seconds[True],
        ),
        (
            f"  GFLOP/s (plain step's {flops[False] / 1e9:.0f} GFLOP / time)",
            gflops[False],
            gflops[True],
            gflops[True] / gflops[False],
        ),
        (
            f"  share of the {peak:.0f} GFLOP/s sgemm peak, %",
            100 * gflops[False] / peak,
            100 * gflops[True] / peak,
            gflops[True] / gflops[False],
        ),
        (
            f"  own FLOPs (GFLOP) and own GFLOP/s ({own[False]:.0f} / {own[True]:.0f})",
            flops[False] / 1e9,
            flops[True] / 1e9,
            flops[False] / flops[True],
        ),
    ]
    rows.append(
        (
            "  fast, stock nn.Conv2d / nn.PReLU / Adam (before): patches/s",
            batch_size / medians["stock"],
            batch_size / seconds[True],
            medians["stock"] / seconds[True],
        )
    )
    if "fast bf16" in medians:
        rows.append(
            (
                "  the same under bf16 autocast: patches/s",
                batch_size / medians["stock bf16"],
                batch_size / medians["fast bf16"],
                medians["stock bf16"] / medians["fast bf16"],
            )
        )
        rows.append(
            (
                "  fast under bf16 autocast (amp auto here), patches/s",
                batch_size / seconds[False],
                batch_size / medians["fast bf16"],
                seconds[False] / medians["fast bf16"],
            )
        )
        bf16_peak = float(np.median(bf16_peaks))
        bf16_gflops = flops[True] / medians["fast bf16"] / 1e9
        rows.append(
            (
                f"  bf16 GFLOP/s | % of {bf16_peak:.0f} bf16 peak | x fast fp32",
                bf16_gflops,
                100 * bf16_gflops / bf16_peak,
                bf16_gflops / own[True],
            )
        )
    if args.split:
        split = {fast: np.median(np.array(p), axis=0) for fast, p in parts.items()}
        for i, part in enumerate(("LHSDR", "CSFPA")):
            rows.append(
                (
                    f"  {part} forward + backward, s",
                    split[False][i],
                    split[True][i],
                    split[False][i] / split[True][i],
                )
            )
    return rows


def infer_case(size: int, device: torch.device, context) -> tuple:
    """Row of one single-image inference: plain vs fast seconds (best of three, interleaved)."""
    lr, up, guide, _ = inputs(8, 4, size, 1, device)
    models = {fast: build(fast, device).eval() for fast in (False, True)}
    times: dict[bool, list[float]] = {False: [], True: []}
    with torch.no_grad(), context:
        for model in models.values():
            model(lr[..., :16, :16], up[..., :64, :64], guide[..., :64, :64])  # warm-up
        for _ in range(3):
            for fast, model in models.items():
                times[fast].append(timed(lambda m=model: m(lr, up, guide), device))
    plain, fast = min(times[False]), min(times[True])
    return f"inference {size}x{size}, s", plain, fast, plain / fast


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def scene_case(case: dict) -> dict:
    """One whole-scene measurement in this process: {'seconds': ..., 'peak_mb': ...}."""
    from engine.tiling import fuse_tiled

    device = torch.device(case["device"])
    model = build(case["fast"], device).eval()
    size = case["size"]
    rng = np.random.default_rng(0)
    lr = rng.uniform(0, 2047, (8, size // 4, size // 4)).astype(np.float32)
    guide = rng.uniform(0, 2047, (1, size, size)).astype(np.float32)
    out = np.empty((8, size, size), np.float32)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    base = peak_rss_mb()
    start = time.perf_counter()
    with autocast(device, case.get("amp", "none")):
        fuse_tiled(model, lr, guide, 4, 128, 28, out, device, 2047.0)
    sync(device)
    seconds = time.perf_counter() - start
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


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--amp", default="none", choices=["none", *AMP_DTYPES])
    parser.add_argument("--quick", action="store_true", help="2 steps, 256 inference only, no scene")
    parser.add_argument("--steps", type=int, help="timed training steps per configuration (default 5)")
    parser.add_argument("--sizes", help="single-image inference sizes (default 256,512)")
    parser.add_argument("--scene", type=int, help="whole-scene size (0: skip; default 2048)")
    parser.add_argument("--peak-size", type=int, help="sgemm peak matrix size (default 4096)")
    parser.add_argument("--cases", default="all", help="training cases: all, wv3, demo or none")
    parser.add_argument("--split", action="store_true", help="also time LHSDR and CSFPA alone")
    parser.add_argument("--case", help=argparse.SUPPRESS)
    args = parser.parse_args()
    keep_freed_memory()
    if args.case:
        print(json.dumps(scene_case(json.loads(args.case))))
        return
    quick = args.quick
    args.steps = args.steps or (2 if quick else 5)
    args.sizes = ("256" if quick else "256,512") if args.sizes is None else args.sizes  # "": none
    args.scene = (0 if quick else 2048) if args.scene is None else args.scene
    args.peak_size = args.peak_size or (2048 if quick else 4096)
    device = torch.device(args.device)
    context = autocast(device, args.amp)
    name = torch.cuda.get_device_name() if device.type == "cuda" else "CPU"
    print(
        f"device {args.device} ({name}), torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, amp {args.amp}"
    )
    chosen = [n for n in CASES if args.cases == "all" or n.lower().startswith(args.cases.lower())]
    print(f"{'measure':62s} {'plain':>10s} {'fast':>10s} {'fast gain':>9s}", flush=True)
    for case in chosen:
        show(train_case(case, args, device, context))
    for size in [int(s) for s in args.sizes.split(",") if s]:
        show([infer_case(size, device, context)])
    if args.scene:
        res = {
            f: measure({"device": args.device, "amp": args.amp, "fast": f, "size": args.scene})
            for f in (False, True)
        }
        label = f"scene {args.scene}x{args.scene} in 512 tiles"
        show(
            [
                (
                    f"{label}, {unit}",
                    res[False][key],
                    res[True][key],
                    res[False][key] / max(res[True][key], 1e-9),
                )
                for key, unit in (("seconds", "s"), ("peak_mb", "peak MB"))
            ]
        )


def show(rows: list[tuple]) -> None:
    """Print (measure, plain, fast, gain) rows as they come (a long run shows its progress)."""
    for label, plain, fast, ratio in rows:
        print(f"{label:62s} {plain:10.2f} {fast:10.2f} {ratio:8.2f}x", flush=True)


if __name__ == "__main__":
    main()
