"""Where a RAMSF training step's time goes: torch.profiler over train.py's step, grouped by kind.

    python bench/bench_profile.py                       # the demo's step: 7 bands, 32 x 32, ratio 2, batch 8
    python bench/bench_profile.py --amp none --top 20   # float32, the 20 most expensive operators
    python bench/bench_profile.py --bands 8 --size 64 --ratio 4 --batch 32   # the WV3 case of bench_ramsf

The step is bench_ramsf.py's ``train_step`` of the default model (the fast query, channels_last,
train.py's Adam), with train.py's malloc settings, under ``train.amp`` (``auto``: bf16 where the
CPU or GPU has it). Printed: the median wall time of 20 steps without the profiler, then the
operators' self time per step in groups (convolutions forward and backward, matrix products, the
query's gathers and scatters, dtype casts and copies, every other operator), each as a share of
the profiled step's self time (a ratio within one run; the machine is named above it), and the
most expensive single operators. CPU only: on a GPU the self CPU time is launch overhead.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from utils.memory import keep_freed_memory

GROUPS = {
    "convolutions": ("aten::convolution_backward", "aten::mkldnn_convolution", "aten::_convolution"),
    "matrix products": ("aten::mm", "aten::addmm", "aten::addmm_", "aten::bmm", "aten::baddbmm"),
    "gathers and scatters": ("aten::index_select", "aten::index_add_", "aten::gather", "aten::scatter_add_"),
    "casts and copies": ("aten::copy_", "aten::_to_copy", "aten::to", "aten::contiguous"),
}
"""Operator names of each group (self time); every other operator counts as 'other'."""


def group_of(name: str) -> str:
    """The GROUPS key an operator name belongs to, else 'other'."""
    return next((group for group, names in GROUPS.items() if name in names), "other")


def grouped(self_us: dict[str, float]) -> dict[str, float]:
    """Per-group totals of {operator: self time} (any unit), in GROUPS order then 'other'."""
    totals = dict.fromkeys((*GROUPS, "other"), 0.0)
    for name, value in self_us.items():
        totals[group_of(name)] += value
    return totals


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--amp", default="auto", choices=["auto", "none", "bf16"], help="train.amp")
    parser.add_argument("--bands", type=int, default=7)
    parser.add_argument("--ratio", type=int, default=2)
    parser.add_argument("--size", type=int, default=32, help="gt patch size")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=10, help="profiled steps (after 5 warm-up and 20 timed)")
    parser.add_argument("--top", type=int, default=12, help="single operators listed")
    args = parser.parse_args()
    keep_freed_memory()
    import torch
    from torch.profiler import ProfilerActivity, profile

    from bench.bench_ramsf import build, inputs, optimizer_for, timed, train_step
    from engine.run_dir import processor_name
    from engine.training_parts import autocast, resolve_amp

    device = torch.device("cpu")
    model = build(True, device, bands=args.bands, ratio=args.ratio)
    optimizer = optimizer_for(True, model)
    data = inputs(args.bands, args.ratio, args.size, args.batch, device)
    context = autocast(device, args.amp)
    for _ in range(5):
        train_step(model, optimizer, data, context)
    times = [timed(lambda: train_step(model, optimizer, data, context), device) for _ in range(20)]
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(args.steps):
            train_step(model, optimizer, data, context)
    self_us = {e.key: e.self_cpu_time_total / args.steps for e in prof.key_averages()}
    total = sum(self_us.values())
    precision = resolve_amp(device, args.amp).replace("none", "float32")
    print(
        f"machine: {processor_name()}, {torch.get_num_threads()} threads, torch {torch.__version__}; "
        f"precision {precision}; {args.bands} bands, {args.size} x {args.size}, "
        f"ratio {args.ratio}, batch {args.batch}"
    )
    median = 1e3 * statistics.median(times)
    print(f"median step {median:.1f} ms (20 steps); profiled self time {total / 1e3:.1f} ms")
    print(f"\n{'group':24s} {'ms/step':>8s} {'share':>6s}")
    for group, value in grouped(self_us).items():
        print(f"{group:24s} {value / 1e3:8.1f} {value / total:6.1%}")
    print(f"\n{'operator':36s} {'ms/step':>8s} {'share':>6s}  group")
    for name, value in sorted(self_us.items(), key=lambda kv: -kv[1])[: args.top]:
        print(f"{name[:36]:36s} {value / 1e3:8.1f} {value / total:6.1%}  {group_of(name)}")


if __name__ == "__main__":
    main()
