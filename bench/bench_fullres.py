"""Training without ground truth, measured: RAMSF and one deep peer trained at reduced resolution
(option.yml's recipe), trained at full resolution (options/fullres_landsat8.yml) and trained at
reduced resolution then adapted to each test crop (``predict.py --adapt``'s fine-tuning), scored on
the Landsat-8 demo's full-resolution test crops (D_lambda, D_s, QNR, HQNR) and, as a guard, on its
reduced-resolution test crops (SAM, ERGAS, Q2n; the adapted models adapt to those crops too,
from their lr and PAN only).

    python bench/bench_fullres.py                          # the recipes' own steps, 100 adaptation steps
    python bench/bench_fullres.py --quick                  # a few minutes: 30 steps, 8 adaptation steps
    python bench/bench_fullres.py --iterations 5 --adapt-steps 2 --out /tmp/t.md   # a smoke run

Every training runs as ``python train.py`` in its own process under ``--log-root`` (the peer with
RAMSF's option files, only ``model`` changed); the best checkpoints are those the option files
choose (validation ERGAS at reduced resolution, validation HQNR at full resolution). The table
(mean +- std over the four crops, training seconds, adaptation seconds per crop) is printed and
written to ``--out`` with the machine named.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch
from torch.utils.data import DataLoader

from bench.timing import train_process
from data.datasets import FusionH5Dataset
from data.demo import ensure_demo
from engine.adapt import adapt
from engine.evaluation import Scores, evaluate, score_batch
from engine.options import FULL_VALIDATION, REDUCED_VALIDATION, Options, load_options
from engine.run_dir import environment_report
from engine.tester import load_trained_model
from engine.training_parts import select_device
from metrics.report import HIGHER_IS_BETTER, format_mean_std

RECIPES = {"reduced": "option.yml", "full": "options/fullres_landsat8.yml"}
FULL_SHOWN = FULL_VALIDATION
REDUCED_SHOWN = REDUCED_VALIDATION[:3]  # SAM, ERGAS, Q2n
QUICK = {"iterations": 30, "adapt_steps": 8}


def train(recipe: str, model: str, iterations: int | None, log_root: Path) -> tuple[Path, float]:
    """Train ``model`` with recipe ``recipe`` (reduced / full) in a fresh process; (run, seconds)."""
    sets = [f"log_root={log_root}", f"name={model}_{recipe}", "train.resume=none", f"model={{name: {model}}}"]
    if iterations is not None:  # one validation at the end at least, so that best.pth exists
        sets += [f"train.iterations={iterations}", f"val.every={min(iterations, 200)}"]
    return train_process(ROOT, RECIPES[recipe], sets)


def score_trained(run: Path, files: dict[str, FusionH5Dataset], device: torch.device) -> Scores:
    """The run's best checkpoint on every test file (both kinds of indices in one Scores)."""
    options = load_options(run / "options.yml")
    model, record = load_trained_model(options, run / "checkpoints" / "best.pth", device)
    return score_all(model, files, options, record["ratio"], device)


def score_all(model, files: dict[str, FusionH5Dataset], options: Options, ratio: int, device) -> Scores:
    """``model`` (None: the interpolated input) on every file, indices merged."""
    merged = Scores()
    for data in files.values():
        loader = DataLoader(data, batch_size=1)
        scored = evaluate(model, loader, device, options.data.scale, ratio, 0, options.data.sensor)
        merged.values.update(scored.values)
    return merged


def score_adapted(run: Path, files: dict[str, FusionH5Dataset], steps: int, device) -> tuple[Scores, float]:
    """The run's best checkpoint adapted to each test crop on its own (from the checkpoint each
    time), then scored on it; (indices, mean adaptation seconds per crop)."""
    options = load_options(run / "options.yml")
    scale = options.data.scale
    merged, seconds = Scores(), []
    for data in files.values():
        for index in range(len(data)):
            sample = {k: v[None].to(device) for k, v in data[index].items() if torch.is_tensor(v)}
            model, record = load_trained_model(options, run / "checkpoints" / "best.pth", device)
            lr = (sample["lr"][0] * scale).cpu().numpy()
            guide = (sample["guide"][0] * scale).cpu().numpy()
            torch.manual_seed(options.seed)
            report = adapt(model, lr, guide, record["ratio"], options, steps, device, log=lambda *a: None)
            seconds.append(report["seconds"])
            with torch.no_grad():
                fused = model(sample["lr"], sample["up"], sample["guide"])
            merged.add(score_batch(fused, sample, scale, record["ratio"], 0, options.data.sensor))
    return merged, sum(seconds) / len(seconds)


def table(rows: dict[str, Scores], notes: dict[str, str]) -> str:
    """Markdown: one row per variant, mean +- std of the shown indices, the best in bold."""
    keys = (*FULL_SHOWN, *REDUCED_SHOWN)
    header = ["method", *(f"{k} {'↑' if HIGHER_IS_BETTER[k] else '↓'}" for k in keys), "cost"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    best = {}
    for key in keys:
        means = [s.mean()[key] for s in rows.values() if key in s.values]
        finite = [m for m in means if m == m]
        best[key] = (max if HIGHER_IS_BETTER[key] else min)(finite) if finite else None
    for label, scores in rows.items():
        mean, std = scores.mean(), scores.std()
        cells = [label]
        for key in keys:
            text = format_mean_std(mean[key], std[key], sep=" ± ")
            cells.append(f"**{text}**" if mean[key] == best[key] else text)
        lines.append("| " + " | ".join([*cells, notes.get(label, "none")]) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"{QUICK['iterations']} steps, {QUICK['adapt_steps']} adaptation steps",
    )
    parser.add_argument(
        "--iterations", type=int, help="training steps of every run (default: each recipe's own)"
    )
    parser.add_argument("--adapt-steps", type=int, help="adaptation steps per test crop (default 100)")
    parser.add_argument("--peer", default="FusionNet", help="the deep peer trained beside RAMSF")
    parser.add_argument("--log-root", default=str(ROOT / "logs" / "bench_fullres"))
    parser.add_argument("--out", help="Markdown table (default charts/fullres_landsat8_<budget>.md)")
    args = parser.parse_args()
    iterations = args.iterations or (QUICK["iterations"] if args.quick else None)
    steps = args.adapt_steps or (QUICK["adapt_steps"] if args.quick else 100)
    budget = "main" if iterations is None and steps == 100 else f"{iterations or 'recipe'}steps_{steps}adapt"
    out = Path(args.out or ROOT / "charts" / f"fullres_landsat8_{budget}.md")
    log_root = Path(args.log_root) / time.strftime("%Y%m%d-%H%M%S")
    log_root.mkdir(parents=True)
    paths = ensure_demo("landsat8_fullres")  # the test crops of both recipes (the same crops)
    files = {kind: FusionH5Dataset(str(paths[kind]), 32767) for kind in ("test_full", "test_reduced")}
    device = select_device("auto")
    rows: dict[str, Scores] = {
        "EXP (input up)": score_all(None, files, load_options(ROOT / "option.yml"), 2, device)
    }
    notes: dict[str, str] = {}
    for model in ("RAMSF", args.peer):
        runs = {}
        for recipe in RECIPES:
            runs[recipe], seconds = train(recipe, model, iterations, log_root)
            label = f"{model}, trained at {recipe} resolution"
            rows[label], notes[label] = (
                score_trained(runs[recipe], files, device),
                f"{seconds:.0f} s training",
            )
            print(f"{label}: {seconds:.0f} s ({runs[recipe]})", flush=True)
        label = f"{model}, reduced resolution + adapted ({steps} steps)"
        rows[label], per_crop = score_adapted(runs["reduced"], files, steps, device)
        notes[label] = f"{notes[f'{model}, trained at reduced resolution']} + {per_crop:.1f} s per crop"
        print(f"{label}: {per_crop:.1f} s per crop", flush=True)
    machine = dict(line.split(" ", 1) for line in environment_report().splitlines())
    trained = iterations or "each recipe's own"
    text = (
        f"landsat8: {trained} training steps, {steps} adaptation steps per crop; four test "
        "crops (full resolution: 128 x 128 PAN pixels; reduced: 64 x 64), mean ± std; machine: "
        f"{machine.get('cpu', '?')}, {machine.get('threads', '?')} threads, "
        f"torch {machine.get('torch', '?')}\n\n" + table(rows, notes) + "\n"
    )
    print("\n" + text, flush=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(f"wrote {out} (runs in {log_root})", flush=True)


if __name__ == "__main__":
    main()
