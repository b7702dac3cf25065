"""bench/bench_ema.py: the averages of one run (decay 0 equals the trained weights), its table."""

from __future__ import annotations

import logging
import math
import subprocess
import sys

import pytest

from bench.bench_ema import TRAINED, AveragingTrainer, table
from engine.options import load_options
from tests.conftest import ROOT
from tests.test_train_and_test_scripts import options_file


def test_table_picks_each_curves_best_step():
    curves = {
        TRAINED: [
            {"step": 10, "SAM": 2.0, "ERGAS": 3.0, "Q2n": 0.5},
            {"step": 20, "SAM": 1.5, "ERGAS": 2.0, "Q2n": 0.6},
        ],
        "EMA 0.9": [
            {"step": 10, "SAM": 1.0, "ERGAS": 1.0, "Q2n": 0.9},
            {"step": 20, "SAM": 1.2, "ERGAS": float("nan"), "Q2n": 0.8},
        ],
    }
    rows = table(curves, "ERGAS").splitlines()[2:]
    assert rows[0] == f"| {TRAINED} | 20 | 1.5000 | 2.0000 | 0.6000 | 2.0000 |"
    assert rows[1] == "| EMA 0.9 | 10 | 1.0000 | 1.0000 | 0.9000 | nan |"
    assert table(curves, "Q2n").splitlines()[2].startswith(f"| {TRAINED} | 20 |")  # higher is better


def test_decay_zero_scores_like_the_trained_weights_and_a_real_decay_does_not(tmp_path):
    options = load_options(options_file(tmp_path, "averages", iterations=20))
    trainer = AveragingTrainer(options, logging.getLogger("test"), [0.0, 0.9])
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    trainer.fit(run)
    assert [row["step"] for row in trainer.curves[TRAINED]] == [10, 20]
    for averaged, trained in zip(trainer.curves["EMA 0.0"], trainer.curves[TRAINED], strict=True):
        assert averaged.keys() == trained.keys()
        same = [averaged[k] == v or math.isnan(averaged[k]) and math.isnan(v) for k, v in trained.items()]
        assert all(same), (averaged, trained)
    assert trainer.curves["EMA 0.9"][-1]["ERGAS"] != pytest.approx(trainer.curves[TRAINED][-1]["ERGAS"])


def test_the_command_prints_its_table(tmp_path):
    command = [
        sys.executable,
        str(ROOT / "bench" / "bench_ema.py"),
        "--option_path",
        options_file(tmp_path, "command", iterations=10),
        "--decays",
        "0.5",
    ]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert f"| {TRAINED} | 10 |" in proc.stdout and "| EMA 0.5 | 10 |" in proc.stdout
