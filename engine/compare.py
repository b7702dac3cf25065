"""Comparison of several methods on the same test files: one table, Markdown, CSV and LaTeX.

``python test.py --option_path options/compare_demo.yml`` with a ``compare.methods`` list runs
every trained model (its option file's newest run) and training-free method over the test files
of that option file, pools the per-image indices of all reduced-resolution files and of all
full-resolution files, and writes ``comparison.{md,csv,tex,json}`` plus the images of one test
image (``comparison_images.npz``) into a new run folder; the charts (charts/figures.py) are
drawn from those files.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader
from torch.utils.flop_counter import FlopCounterMode

from data.datasets import FusionData, check_compatible
from engine.evaluation import Scores, check_dim_cut, evaluate, fuse, to_device
from engine.model_record import check_against_record, is_training_free
from engine.options import CompareMethod, Options, load_options
from engine.run_dir import create_run_dir, device_name
from engine.tester import find_checkpoint, load_trained_model, test_files, training_free_model
from engine.training_parts import select_device
from engine.visualize import default_rgb_bands
from metrics.report import FULL_KEYS, HIGHER_IS_BETTER, REDUCED_KEYS, csv_number, format_mean_std
from utils.errors import UserInputError
from utils.jsonio import dumps_strict


def load_method(
    entry: CompareMethod, options: Options, data: FusionData, device: torch.device
) -> tuple[str, nn.Module, str]:
    """(row label, model in eval mode, where it came from) for one ``compare.methods`` entry."""
    if entry.model is not None:
        spec = dict(entry.model)
        name = spec.pop("name")
        if not is_training_free(name):
            raise UserInputError(
                f"compare.methods lists {name} as 'model' but it must be trained: give the "
                "option_path of its training run instead"
            )
        model, _ = training_free_model(name, spec, data, options.data.sensor, device)
        return entry.label or name, model, "training-free"
    trained = load_options(entry.option_path)
    trained.test.checkpoint = entry.checkpoint
    path = find_checkpoint(trained)
    model, record = load_trained_model(trained, path, device)
    check_against_record(data, record, data.path, "test")
    return entry.label or record["name"], model, str(path)


def count_flops(model: nn.Module, batch: dict) -> int:
    """Floating-point operations of one forward pass on ``batch`` (matmuls and convolutions, as
    ``torch.utils.flop_counter`` counts them; element-wise work is not counted)."""
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        fuse(model, batch)
    return int(counter.get_total_flops())


def pooled(scores: list[Scores]) -> Scores:
    """One Scores holding the per-image values and times of several files."""
    total = Scores()
    for s in scores:
        for key, values in s.values.items():
            total.values.setdefault(key, []).extend(values)
        total.seconds.extend(s.seconds)
    return total


def summary(scores: Scores) -> dict[str, dict[str, float]]:
    """{index: {mean, std}} of pooled scores."""
    mean, std = scores.mean(), scores.std()
    return {k: {"mean": mean[k], "std": std[k]} for k in scores.values}


def run_comparison(options: Options, log: Callable[[str], object] = print) -> dict:
    """Score every method of ``options.compare.methods`` on the test files; write the tables."""
    device = select_device(options.device)
    files = test_files(options)
    datasets = [(options.data.dataset(f, require_gt=reduced), reduced) for f, reduced in files]
    first = datasets[0][0]
    for data, _ in datasets[1:]:
        check_compatible(first, data, "test file")
    for data, reduced in datasets:
        if reduced:
            check_dim_cut(data, options.test.dim_cut, "test.dim_cut")
    if options.compare.image >= len(first):
        raise UserInputError(
            f"compare.image is {options.compare.image} but '{first.path}' has {len(first)} images"
        )
    sample = next(iter(DataLoader(torch.utils.data.Subset(first, [options.compare.image]), batch_size=1)))
    sample = to_device(sample, device)
    methods = []  # every method is loaded (and checked) before the run folder is made
    for entry in options.compare.methods:
        label, model, source = load_method(entry, options, first, device)
        if label in [m[0] for m in methods]:
            raise UserInputError(f"two compare.methods rows are called '{label}': give them distinct labels")
        methods.append((label, model, source))
    run_dir = create_run_dir(options)
    results: dict = {
        "name": options.name,
        "task": options.task,
        "files": [f for f, _ in files],
        "device": str(device),
        "machine": f"{device_name(device)}, torch {torch.__version__}",
        "image_size": list(sample["up"].shape[-2:]),
        "rgb_bands": options.data.rgb_bands or default_rgb_bands(first.lr_channels),
        "chart_index": options.compare.chart_index,
        "methods": {},
    }
    images = {"up": sample["up"], "guide": sample["guide"]}
    if "gt" in sample:
        images["gt"] = sample["gt"]
    common = dict(scale=options.data.scale, dim_cut=options.test.dim_cut, sensor=options.data.sensor)
    while methods:
        label, model, source = methods.pop(0)
        log(f"{label}: {source}")
        with torch.no_grad():
            start = time.perf_counter()
            images[label] = fuse(model, sample)  # also the warm-up before timing
            warm = time.perf_counter() - start
        flops = count_flops(model, sample) if options.compare.flops else None
        by_kind: dict[bool, list[Scores]] = {True: [], False: []}
        for data, reduced in datasets:
            loader = DataLoader(
                data, batch_size=options.test.batch_size, num_workers=options.data.num_workers
            )
            by_kind[reduced].append(evaluate(model, loader, device, ratio=data.ratio, **common))
        reduced_scores, full_scores = pooled(by_kind[True]), pooled(by_kind[False])
        seconds = reduced_scores.seconds + full_scores.seconds
        results["methods"][label] = {
            "model": type(model).__name__,
            "source": source,
            "params": sum(p.numel() for p in model.parameters()),
            "flops": flops,
            "seconds_per_image": sum(seconds) / len(seconds),
            "first_call_seconds": warm,
            "reduced": summary(reduced_scores),
            "full": summary(full_scores),
        }
        del model
    np.savez_compressed(
        run_dir / "comparison_images.npz",
        **{k: v[0].detach().float().cpu().numpy() * options.data.scale for k, v in images.items()},
    )
    write_comparison(results, run_dir)
    log("\n" + markdown_table(results))
    log(f"\ncomparison written to {run_dir / 'comparison.md'} (.csv, .tex, .json)")
    results["run_dir"] = str(run_dir)
    return results


def columns(results: dict) -> list[tuple[str, str]]:
    """(kind, index) of every index present: reduced-resolution first, then full-resolution."""
    present = {kind: set() for kind in ("reduced", "full")}
    for entry in results["methods"].values():
        for kind in present:
            present[kind].update(entry[kind])
    return [("reduced", k) for k in REDUCED_KEYS if k in present["reduced"]] + [
        ("full", k) for k in FULL_KEYS if k in present["full"]
    ]


def best_labels(results: dict, kind: str, key: str) -> set[str]:
    """Labels of the methods with the best mean of one index (ties included)."""
    means = {m: e[kind][key]["mean"] for m, e in results["methods"].items() if key in e[kind]}
    means = {m: v for m, v in means.items() if math.isfinite(v)}
    if not means:
        return set()
    best = max(means.values()) if HIGHER_IS_BETTER.get(key, False) else min(means.values())
    return {m for m, v in means.items() if v == best}


def table_rows(results: dict) -> tuple[list[str], list[list[str]], list[list[bool]]]:
    """Header, rows of text cells and which cells are the column's best."""
    cols = columns(results)
    arrow = {k: "↑" if HIGHER_IS_BETTER.get(k, False) else "↓" for _, k in cols}
    header = ["method", *(f"{k} {arrow[k]}" for _, k in cols), "params", "GFLOPs", "s/img"]
    best = {c: best_labels(results, *c) for c in cols}
    rows, marks = [], []
    for label, entry in results["methods"].items():
        cells, flags = [label], [False]
        for kind, key in cols:
            stat = entry[kind].get(key)
            cells.append("-" if stat is None else format_mean_std(stat["mean"], stat["std"], sep=" ± "))
            flags.append(label in best[(kind, key)])
        flops = entry["flops"]
        cells += [
            f"{entry['params']:,}",
            "-" if flops is None else f"{flops / 1e9:.3f}",
            f"{entry['seconds_per_image']:.4f}",
        ]
        flags += [False, False, False]
        rows.append(cells)
        marks.append(flags)
    return header, rows, marks


def markdown_table(results: dict) -> str:
    """The comparison as a Markdown table, the best mean of each index in bold."""
    header, rows, marks = table_rows(results)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for cells, flags in zip(rows, marks, strict=True):
        shown = [f"**{c}**" if f else c for c, f in zip(cells, flags, strict=True)]
        lines.append("| " + " | ".join(shown) + " |")
    size = "x".join(str(s) for s in results["image_size"])
    lines.append("")
    lines.append(
        f"Mean ± std over the test images; GFLOPs per {size} image (matmuls and convolutions, "
        f"torch.utils.flop_counter); s/img on {results['device']} ({results['machine']})."
    )
    return "\n".join(lines)


def latex_table(results: dict) -> str:
    """The comparison as a LaTeX tabular (booktabs), the best mean of each index in bold."""
    header, rows, marks = table_rows(results)

    def tex(text: str) -> str:
        return (
            text.replace("±", r"$\pm$")
            .replace("↑", r"$\uparrow$")
            .replace("↓", r"$\downarrow$")
            .replace("_", r"\_")
        )

    lines = [
        r"\begin{tabular}{l" + "c" * (len(header) - 1) + "}",
        r"\toprule",
        " & ".join(map(tex, header)) + r" \\",
    ]
    lines.append(r"\midrule")
    for cells, flags in zip(rows, marks, strict=True):
        shown = [r"\textbf{" + tex(c) + "}" if f else tex(c) for c, f in zip(cells, flags, strict=True)]
        lines.append(" & ".join(shown) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines)


def write_comparison(results: dict, run_dir: Path) -> None:
    """``comparison.md``, ``.tex``, ``.json`` and ``.csv`` (one row per method, index, resolution)."""
    import csv

    (run_dir / "comparison.md").write_text(markdown_table(results) + "\n")
    (run_dir / "comparison.tex").write_text(latex_table(results) + "\n")
    (run_dir / "comparison.json").write_text(dumps_strict(results))
    with open(run_dir / "comparison.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            ["method", "resolution", "index", "mean", "std", "params", "flops", "seconds_per_image"]
        )
        for label, entry in results["methods"].items():
            for kind, key in columns(results):
                stat = entry[kind].get(key)
                if stat is not None:
                    writer.writerow(
                        [
                            label,
                            kind,
                            key,
                            csv_number(stat["mean"]),
                            csv_number(stat["std"]),
                            entry["params"],
                            entry["flops"],
                            f"{entry['seconds_per_image']:.6f}",
                        ]
                    )
