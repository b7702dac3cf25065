"""Quality showcase: train RAMSF and the deep peers with one budget, score them beside the
classical methods on the held-out test crops, and write the tables README shows.

    python bench/bench_quality.py                              # both showcases, the main budget
    python bench/bench_quality.py --showcase landsat8 --budget long --peers   # RAMSF alone
    python bench/bench_quality.py --showcase sentinel2 --peers PanNet FusionNet
    python bench/bench_quality.py --continue-in DIR --peers-only --peers BDPN   # a second process

A showcase is a demo scene (``landsat8``: Landsat-8 PAN 15 m + 7 MS bands 30 m;
``sentinel2``: the six 20 m bands guided by the four 10 m bands) and a budget is a RAMSF
option file (``main``: the README's main command; ``long``: under an hour on 2 cores). Every
deep peer trains with the same option file, only ``model`` changed, so the recipe, the number
of steps, the data and the checkpoint choice (best validation ERGAS) are the same for all. The
recipes were chosen on the validation split; the test crops are only scored here.

Each training runs as ``python train.py`` in its own process under ``--log-root``; the table
(mean +- std over the test crops, the best of each index in bold, training seconds) is printed
and written to ``charts/quality_<showcase>_<budget>.md`` with the machine named; the full table
(every index, params, FLOPs, time), the efficiency-performance chart and the visual comparison
go to ``charts/compare_<showcase>_<budget>.{md,csv,_ep.png,_visual.png}``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import yaml

from bench.timing import train_process
from charts.figures import draw_comparison
from engine.compare import run_comparison
from engine.options import load_options
from engine.run_dir import environment_report
from metrics.report import HIGHER_IS_BETTER, format_mean_std

SHOWCASES = {
    "landsat8": {"main": "option.yml", "long": "options/landsat8_long.yml"},
    "sentinel2": {"main": "options/sentinel2_demo.yml"},
}
PEERS = ("PNN", "PanNet", "FusionNet", "DiCNN", "MSDCNN", "BDPN", "GPPNN", "LAGConv")
CLASSICAL = ("EXP", "BT-H", "GSA", "BDSD-PC", "PRACS", "MTF-GLP-HPM", "MTF-GLP-FS", "AWLP")
SHOWN = (("reduced", "SAM"), ("reduced", "ERGAS"), ("reduced", "Q2n"), ("full", "QNR"), ("full", "HQNR"))


def train(
    option_path: str, name: str, model: str | None, log_root: Path, extra: list[str]
) -> tuple[Path, float]:
    """Train one model in a fresh process, with the option overrides ``extra`` (KEY=VALUE, as
    train.py's ``--set``); (its run folder, wall seconds)."""
    sets = [*extra, f"log_root={log_root}", f"name={name}", "train.resume=none"]
    if model is not None:
        sets.append(f"model={{name: {model}}}")
    return train_process(ROOT, option_path, sets)


def record(ledger: Path, name: str, run: Path, seconds: float) -> dict:
    """Add one finished training to the ledger, re-read first: a second process started with
    ``--continue-in`` on this folder (other ``--peers``, RAMSF already trained) may have added its
    own meanwhile. Its tables hold its own peers; a last ``--continue-in`` run over all of them
    (nothing left to train) writes the full ones."""
    done = json.loads(ledger.read_text()) if ledger.is_file() else {}
    done[name] = [str(run), seconds]
    partial = ledger.with_name(f"{ledger.name}.{os.getpid()}.part")
    partial.write_text(json.dumps(done, indent=1))
    partial.replace(ledger)
    return done


def compare(option_path: str, runs: dict[str, Path], log_root: Path, name: str) -> dict:
    """Score the trained runs and the classical methods on the option file's test files."""
    base = yaml.safe_load((ROOT / option_path).read_text())
    options = {key: base[key] for key in ("task", "seed", "device", "demo", "data") if key in base}
    options["data"] = {k: v for k, v in base["data"].items() if k not in ("train", "valid", "augment")}
    options["data"]["root"] = str(ROOT / base["data"]["root"])
    methods = [
        {
            "label": label,
            "option_path": str(run / "options.yml"),
            "checkpoint": str(run / "checkpoints" / "best.pth"),
        }
        for label, run in runs.items()
    ]
    methods += [{"model": {"name": method}} for method in CLASSICAL]
    options.update(
        name=name,
        log_root=str(log_root),
        test={"dim_cut": 0, "batch_size": 1},
        compare={"methods": methods, "charts": None},
    )
    path = log_root / f"{name}.yml"
    path.write_text(yaml.safe_dump(options, sort_keys=False))
    return run_comparison(load_options(path), log=lambda *a: None)


def table(results: dict, seconds: dict[str, float]) -> str:
    """Markdown: one row per method, mean +- std of the shown indices, the best in bold."""
    header = ["method", *(f"{k} {'↑' if HIGHER_IS_BETTER[k] else '↓'}" for _, k in SHOWN), "training"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    methods = results["methods"]
    best = {}
    for kind, key in SHOWN:
        means = [e[kind][key]["mean"] for e in methods.values() if key in e[kind]]
        finite = [m for m in means if m == m]  # NaN (undefined) never wins
        best[key] = (max if HIGHER_IS_BETTER[key] else min)(finite) if finite else None
    for label, entry in methods.items():
        cells = [label]
        for kind, key in SHOWN:
            stat = entry[kind].get(key)
            text = "-" if stat is None else format_mean_std(stat["mean"], stat["std"], sep=" ± ")
            cells.append(f"**{text}**" if stat is not None and stat["mean"] == best[key] else text)
        cells.append(f"{seconds[label]:.0f} s" if label in seconds else "none")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--showcase", nargs="+", choices=sorted(SHOWCASES), default=sorted(SHOWCASES))
    parser.add_argument("--budget", choices=("main", "long"), default="main")
    parser.add_argument(
        "--peers",
        nargs="*",
        default=list(PEERS),
        help=f"deep peers to train too (default: {' '.join(PEERS)}; --peers alone: none, RAMSF only)",
    )
    parser.add_argument(
        "--peers-only",
        action="store_true",
        help="train the peers only (RAMSF trained by another process in the same --continue-in "
        "folder: run one more --continue-in without this flag for the tables)",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an option override for every training (as train.py's --set), e.g. data.augment=dihedral",
    )
    parser.add_argument("--log-root", default=str(ROOT / "logs" / "bench_quality"))
    parser.add_argument(
        "--continue-in",
        metavar="FOLDER",
        help="a FOLDER of an earlier, interrupted run (LOG_ROOT/<time>): its finished trainings "
        "(listed in FOLDER/trained.json) are reused, the others run",
    )
    parser.add_argument("--out", default=str(ROOT / "charts"), help="folder of the Markdown tables")
    args = parser.parse_args()
    missing = [s for s in args.showcase if args.budget not in SHOWCASES[s]]
    if missing:
        parser.error(f"no '{args.budget}' recipe for {', '.join(missing)}: use --budget main")
    log_root = (
        Path(args.continue_in) if args.continue_in else Path(args.log_root) / time.strftime("%Y%m%d-%H%M%S")
    )
    log_root.mkdir(parents=True, exist_ok=bool(args.continue_in))
    ledger = log_root / "trained.json"
    done = json.loads(ledger.read_text()) if ledger.is_file() else {}
    machine = {k: v for k, v in (line.split(" ", 1) for line in environment_report().splitlines())}
    for showcase in args.showcase:
        option_path = SHOWCASES[showcase][args.budget]
        runs, seconds = {}, {}
        for label in args.peers if args.peers_only else ("RAMSF", *args.peers):
            model = None if label == "RAMSF" else label
            name = f"{label}_{showcase}_{args.budget}"
            if name in done:
                runs[label], seconds[label] = Path(done[name][0]), done[name][1]
                print(f"{showcase}: reusing {label} trained in {seconds[label]:.0f} s ({runs[label]})")
                continue
            runs[label], seconds[label] = train(option_path, name, model, log_root, args.set)
            done = record(ledger, name, runs[label], seconds[label])
            print(f"{showcase}: trained {label} in {seconds[label]:.0f} s ({runs[label]})", flush=True)
        if args.peers_only:
            continue
        results = compare(option_path, runs, log_root, f"quality_{showcase}_{args.budget}")
        text = (
            f"{showcase}, budget '{args.budget}' ({option_path}), test crops of "
            f"{results['image_size'][0]} x {results['image_size'][1]}: mean ± std over the crops; "
            f"machine: {machine.get('cpu', '?')}, {machine.get('threads', '?')} threads, torch "
            f"{machine.get('torch', '?')}\n\n" + table(results, seconds) + "\n"
        )
        print("\n" + text, flush=True)
        out = Path(args.out) / f"quality_{showcase}_{args.budget}.md"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
        print(f"wrote {out} (comparison in {results['run_dir']})", flush=True)
        stem = f"compare_{showcase}_{args.budget}"  # every index, the EP chart, the visual comparison
        for path in draw_comparison(Path(results["run_dir"]), Path(args.out), stem):
            print(f"wrote {path}", flush=True)


if __name__ == "__main__":
    main()
