"""One device check for a GPU machine, in one go (a few minutes), ending in one summary.

    python bench/device_check.py                 # CUDA: every check below
    python bench/device_check.py --device cpu    # the same checks on the CPU (no NCCL, no fp16)

Checks, each PASS / FAIL / SKIP with its numbers:
1. every registered model: forward and backward on the device, finite, output on the device;
2. the metrics on the device equal the CPU values in float64 (1e-10 relative), both reports;
3. a few RAMSF training steps under fp16 (with loss scaling) and bf16 autocast: finite losses
   and the weights moved, through ``train.py`` itself;
4. torchrun with every GPU (NCCL; gloo with 2 processes on the CPU): 3 steps of ``train.py``;
5. ``predict.py`` tiling on the device: tiled output equals one untiled pass (1e-4);
6. ``bench/bench_ramsf.py --quick`` on the device (its table is printed at the end).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np
import torch

from metrics import full_resolution_report, reduced_resolution_report
from models import MODELS

RESULTS: list[tuple[str, str, str]] = []


def check(name: str):
    """Decorator: run a check, record PASS (its note), FAIL (the error) or SKIP (its reason)."""

    def wrap(fn):
        def run(*args):
            start = time.perf_counter()
            try:
                note = fn(*args)
                status = "SKIP" if isinstance(note, str) and note.startswith("skip:") else "PASS"
            except Exception as exc:  # a check's failure is reported, the others still run
                status, note = "FAIL", f"{type(exc).__name__}: {exc}"
                traceback.print_exc()
            RESULTS.append((name, status, f"{note} ({time.perf_counter() - start:.0f} s)"))
            print(f"{status} {name}: {note}", flush=True)

        return run

    return wrap


@check("models forward + backward")
def models_on(device: torch.device) -> str:
    from tests.test_models import fusion_inputs, small_model

    names = MODELS.names()
    for name in names:
        for bands, guide_bands, ratio, size in ((8, 1, 4, 32), (31, 3, 8, 32)):
            model = small_model(name, bands, guide_bands, ratio).to(device)
            lr, up, guide = (t.to(device) for t in fusion_inputs(bands, guide_bands, ratio, size))
            fused = model(lr, up, guide)
            assert fused.device.type == device.type and torch.isfinite(fused).all(), name
            if any(p.requires_grad for p in model.parameters()):
                fused.square().mean().backward()
                assert all(p.grad is None or torch.isfinite(p.grad).all() for p in model.parameters()), name
    return f"{len(names)} models, 2 tasks each"


@check("metrics equal the CPU (float64)")
def metrics_on(device: torch.device) -> str:
    gen = torch.Generator().manual_seed(0)
    gt = torch.rand(3, 8, 64, 64, generator=gen, dtype=torch.float64) * 2047
    fused = (gt + 40 * torch.randn(3, 8, 64, 64, generator=gen, dtype=torch.float64)).clamp(0, 2047)
    ms = torch.rand(3, 8, 32, 32, generator=gen, dtype=torch.float64) * 2047
    pan = torch.rand(3, 1, 128, 128, generator=gen, dtype=torch.float64) * 2047
    big = torch.rand(3, 8, 128, 128, generator=gen, dtype=torch.float64) * 2047
    worst = 0.0
    for report, args in (
        (reduced_resolution_report, (fused, gt, 4)),
        (full_resolution_report, (big, ms, pan, 4, "WV3")),
    ):
        cpu = report(*args)
        dev = report(*(a.to(device) if torch.is_tensor(a) else a for a in args))
        for key, value in cpu.items():
            other = dev[key].cpu()
            both = torch.isnan(value) & torch.isnan(other)
            rel = ((value - other).abs() / value.abs().clamp_min(1e-12))[~both]
            worst = max(worst, float(rel.max()) if rel.numel() else 0.0)
    assert worst < 1e-10, f"largest relative difference {worst:.2e}"
    return f"largest relative difference {worst:.1e}"


def demo_options(folder: Path, name: str, *sets: str) -> list[str]:
    """``--option_path option.yml`` with a short run of the Landsat-8 demo under ``folder``."""
    args = ["--option_path", str(ROOT / "option.yml")]
    for item in (f"log_root={folder}", f"name={name}", "train.iterations=4", "val.every=4", *sets):
        args += ["--set", item]
    return args


def run(command: list[str], timeout: float = 300) -> subprocess.CompletedProcess:
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command[:4])} ... exited {done.returncode}: {done.stderr[-800:]}")
    return done


@check("training steps under fp16 and bf16")
def amp_on(device: torch.device, folder: Path) -> str:
    kinds = ("fp16", "bf16") if device.type == "cuda" else ("bf16",)
    notes = []
    for amp in kinds:
        run(
            [
                sys.executable,
                "train.py",
                *demo_options(folder, f"amp_{amp}", f"train.amp={amp}", f"device={device}"),
            ]
        )
        (state,) = list((folder / "pansharpening" / f"amp_{amp}").rglob("latest.pth"))
        saved = torch.load(state, weights_only=True)
        losses = [h for h in saved.get("history", [])]
        assert saved["step"] == 4 and all(torch.isfinite(v).all() for v in saved["model"].values())
        notes.append(f"{amp}: 4 steps, validation {losses[-1] if losses else '-'}")
    return "; ".join(notes) + ("" if device.type == "cuda" else " (fp16 needs CUDA)")


@check("torchrun")
def torchrun_on(device: torch.device, folder: Path) -> str:
    gpus = torch.cuda.device_count() if device.type == "cuda" else 2
    if device.type == "cuda" and gpus < 1:
        return "skip: no GPU"
    command = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={gpus}", "train.py"]
    run(
        [*command, *demo_options(folder, "ddp", f"train.batch_size={8 * gpus}", f"device={device.type}")], 600
    )
    backend = "NCCL" if device.type == "cuda" else "gloo"
    return f"{gpus} processes ({backend}), 4 steps"


@check("predict.py tiling")
def predict_on(device: torch.device, folder: Path) -> str:
    from data.scene import read_image

    (ckpt,) = list((folder / "pansharpening" / "amp_bf16").rglob("latest.pth"))
    # the demo's crops cut to exactly ratio 2 (the PAN is 257 x 1253 for 128 x 626 MS pixels)
    lr = read_image(ROOT / "datasets/demo/l8_ms.tif")
    pan = read_image(ROOT / "datasets/demo/l8_pan.tif")[:, : 2 * lr.shape[1], : 2 * lr.shape[2]]
    np.save(folder / "pan.npy", pan)
    np.save(folder / "ms.npy", lr)
    outs = {}
    for tile in (64, 2048):  # 2048: the whole 256 x 1252 PAN in one pass
        out = folder / f"fused_{tile}.tif"
        run(
            [
                sys.executable,
                "predict.py",
                "--option_path",
                str(ROOT / "option.yml"),
                "--set",
                f"device={device}",
            ]
            + ["--pan", str(folder / "pan.npy"), "--lr", str(folder / "ms.npy")]
            + ["--checkpoint", str(ckpt), "--out", str(out), "--tile", str(tile), "--margin", "32"]
        )
        outs[tile] = read_image(out).astype(np.float64)
    diff = float(np.abs(outs[64] - outs[2048]).max() / np.abs(outs[2048]).max())
    assert diff < 1e-4, f"tiled vs one pass: {diff:.1e}"
    return f"64-pixel tiles vs one untiled pass: {diff:.1e} relative"


@check("bench_ramsf --quick")
def bench_on(device: torch.device) -> str:
    done = run([sys.executable, "bench/bench_ramsf.py", "--quick", "--device", str(device)], 600)
    RESULTS.append(("bench table", "INFO", "\n" + done.stdout.strip()))
    return "see the table below"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--skip-bench", action="store_true")
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("error: no CUDA device here: run with --device cpu, or on a GPU machine")
    from data.demo import ensure_demo

    ensure_demo("landsat8")
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"device check on {device} ({name}), torch {torch.__version__}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        models_on(device)
        metrics_on(device)
        amp_on(device, folder)
        torchrun_on(device, folder)
        predict_on(device, folder)
        if not args.skip_bench:
            bench_on(device)
    print(
        "\n=== summary: " + json.dumps({s: sum(r[1] == s for r in RESULTS) for s in ("PASS", "FAIL", "SKIP")})
    )
    for check_name, status, note in RESULTS:
        print(f"{status:5} {check_name}: {note}")
    if any(status == "FAIL" for _, status, _ in RESULTS):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
