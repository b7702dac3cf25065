"""What ``utils.memory.keep_freed_memory`` (called by train.py, test.py and predict.py) buys: the
training step of the demo's RAMSF (7 bands + PAN, 32 x 32, ratio 2, option.yml's batch 8, the fast
formulation, ``--amp`` as train.amp, default auto) in fresh processes, alternately with glibc's
default malloc settings and with the freed memory kept, so that both see the same machine state in
turn (this VM's CPU is shared: only the ratio within one run means something).

    python bench/bench_allocator.py                 # 6 rounds of 2 processes, 60 steps each (ABBA)
    python bench/bench_allocator.py --amp none      # float32

Each process prints its median step (seconds) and its minor page faults per step (getrusage); the
table gives the median over the rounds of each setting and the ratio (> 1: keeping is faster).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from utils.memory import keep_freed_memory


def worker(keep: bool, steps: int, batch: int, amp: str) -> dict:
    """One process's measurement: {'applied', 'step_s', 'faults', 'amp', 'threads'}."""
    applied = keep_freed_memory() if keep else False
    import torch

    from bench.bench_ramsf import build, inputs, optimizer_for, sgemm_seconds, train_step
    from engine.training_parts import autocast, resolve_amp

    device = torch.device("cpu")
    model = build(True, device, bands=7, ratio=2)
    optimizer = optimizer_for(True, model)
    data = inputs(7, 2, 32, batch, device)
    context = autocast(device, amp)
    for _ in range(5):
        train_step(model, optimizer, data, context)
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        train_step(model, optimizer, data, context)
        times.append(time.perf_counter() - start)
    faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults) / steps
    peak = 2 * 2048**3 / min(sgemm_seconds(2048, device) for _ in range(3)) / 1e9
    return {
        "applied": applied,
        "step_s": statistics.median(times),
        "faults": faults,
        "amp": resolve_amp(device, amp),
        "threads": torch.get_num_threads(),
        "sgemm_gflops": peak,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--steps", type=int, default=60, help="timed steps per process")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--amp", default="auto", choices=["auto", "none", "bf16"], help="train.amp")
    parser.add_argument("--worker", choices=["default", "keep"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker == "keep", args.steps, args.batch, args.amp)))
        return
    results: dict[str, list[dict]] = {"default": [], "keep": []}
    for round_ in range(args.rounds):  # ABBA: each setting goes first in every other round
        for mode in ("default", "keep") if round_ % 2 == 0 else ("keep", "default"):
            command = [sys.executable, __file__, "--worker", mode, "--steps", str(args.steps)]
            command += ["--amp", args.amp, "--batch", str(args.batch)]
            done = subprocess.run(command, capture_output=True, text=True)
            if done.returncode != 0:
                raise SystemExit(f"the {mode} process failed:\n{done.stderr[-2000:]}")
            results[mode].append(json.loads(done.stdout.strip().splitlines()[-1]))
    first = results["keep"][0]
    peaks = [r["sgemm_gflops"] for rows in results.values() for r in rows]
    print(
        f"RAMSF demo step, batch {args.batch}, CPU, {first['threads']} threads, amp {first['amp']}, "
        f"torch sgemm peak {min(peaks):.0f}-{max(peaks):.0f} GFLOP/s over the processes, "
        f"{args.rounds} rounds x {args.steps} steps; keep_freed_memory applied: {first['applied']}"
    )
    step = {mode: statistics.median(r["step_s"] for r in rows) for mode, rows in results.items()}
    faults = {mode: statistics.median(r["faults"] for r in rows) for mode, rows in results.items()}
    print(f"{'malloc settings':28s} {'step, ms':>9s} {'faults/step':>12s}")
    for mode in results:
        print(f"{mode:28s} {step[mode] * 1e3:9.1f} {faults[mode]:12.0f}")
    print(f"{'gain (default / keep)':28s} {step['default'] / step['keep']:8.2f}x")
    pairs = zip(results["default"], results["keep"], strict=True)
    print(
        "per round, ms (default / keep): "
        + ", ".join(f"{a['step_s'] * 1e3:.0f}/{b['step_s'] * 1e3:.0f}" for a, b in pairs)
    )


if __name__ == "__main__":
    main()
