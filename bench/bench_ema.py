"""Does a moving average of the weights (``train.ema_decay``) validate better? One training, many
averages: the trained weights and an EMA per decay are scored at every validation of the same run.

    python bench/bench_ema.py --option_path option.yml                     # decays 0.99 0.995 0.999
    python bench/bench_ema.py --option_path options/sentinel2_demo.yml --decays 0.998 0.999

The training is train.py's (the same seed, batches and steps as ``python train.py`` with that
option file, ``train.ema_decay`` set to null so that the run itself validates the trained weights);
the averages only read the weights after each step, so every curve comes from one trajectory and
the comparison has no seed-to-seed noise. Validation data only: nothing here reads the test crops.
Printed (and written to the run folder as ``ema_curves.json`` and ``ema_table.md``): for the
trained weights and each decay, the best validation step by ``val.metric`` and the SAM, ERGAS and
Q2n there, and the metric at the last step.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.ema import WeightAverage
from engine.options import REDUCED_VALIDATION, load_command_options
from engine.run_dir import create_run_dir, log_to_file, processor_name, setup_logger
from engine.trainer import Trainer
from engine.training_files import summary
from engine.training_parts import seed_everything
from metrics.report import HIGHER_IS_BETTER
from utils.memory import keep_freed_memory

TRAINED = "trained weights"


class AveragingTrainer(Trainer):
    """train.py's Trainer that also keeps one :class:`WeightAverage` per decay and scores each at
    every validation; ``curves[label]`` lists {'step', index: value} per validation."""

    def __init__(self, options, logger, decays: list[float]):
        super().__init__(options, logger)
        self.extra = {f"EMA {d}": WeightAverage(self.net, d) for d in decays}
        self.curves: dict[str, list[dict]] = {TRAINED: [], **{label: [] for label in self.extra}}

    def train_step(self, batch: dict) -> float | None:
        value = super().train_step(batch)
        for average in self.extra.values():
            average.update(self.net)
        return value

    def validate(self):
        scores = super().validate()
        self.curves[TRAINED].append({"step": self.step, **scores.mean()})
        for label, average in self.extra.items():
            means = self.score_validation(average.module).mean()
            self.curves[label].append({"step": self.step, **means})
            self.log.info(f"step {self.step}: {label} validation {summary(means)}")
        return scores


def table(curves: dict[str, list[dict]], metric: str) -> str:
    """Markdown: per weights, the best step by ``metric``, SAM / ERGAS / Q2n there, the last step's metric."""
    sign = -1 if HIGHER_IS_BETTER[metric] else 1
    lines = [
        f"| weights | best step | SAM | ERGAS | Q2n | last-step {metric} |",
        "|---|---|---|---|---|---|",
    ]
    for label, curve in curves.items():
        best = min(curve, key=lambda row: sign * row[metric] if math.isfinite(row[metric]) else math.inf)
        lines.append(
            f"| {label} | {best['step']} | {best['SAM']:.4f} | {best['ERGAS']:.4f} | {best['Q2n']:.4f} "
            f"| {curve[-1][metric]:.4f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--option_path", default=str(ROOT / "option.yml"))
    parser.add_argument("--decays", type=float, nargs="+", default=[0.99, 0.995, 0.999])
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="as train.py's --set")
    args = parser.parse_args()
    keep_freed_memory()
    sets = ["train.ema_decay=null", "train.resume=none", *args.set]
    options = load_command_options(args.option_path, sets)
    if options.val.metric not in REDUCED_VALIDATION:
        parser.error(f"val.metric must be one of {', '.join(REDUCED_VALIDATION)} (a file with gt)")
    logger = setup_logger()
    seed_everything(options.seed, options.deterministic)
    trainer = AveragingTrainer(options, logger, args.decays)
    run_dir = create_run_dir(options)
    log_to_file(logger, run_dir)
    logger.info(f"run folder: {run_dir}")
    trainer.fit(run_dir)
    threads = os.environ.get("OMP_NUM_THREADS", "all")
    head = (
        f"{args.option_path}, {trainer.total_steps} steps, validation {options.data.valid}; "
        f"machine: {processor_name()}, OMP_NUM_THREADS {threads}"
    )
    text = head + "\n\n" + table(trainer.curves, options.val.metric)
    print(text)
    (run_dir / "ema_table.md").write_text(text + "\n")
    (run_dir / "ema_curves.json").write_text(json.dumps(trainer.curves, indent=1) + "\n")


if __name__ == "__main__":
    main()
