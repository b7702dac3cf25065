"""The comparison command: every listed method in one table (Markdown, CSV, LaTeX), the charts,
and every classical method on the generated files of all three tasks."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.conftest import ROOT
from tests.test_train_and_test_scripts import test_script, train_script

FIXTURES = ROOT / "tests" / "data"
CLASSICAL = ["EXP", "BT-H", "GSA", "BDSD-PC", "PRACS", "MTF-GLP-HPM", "MTF-GLP-FS", "AWLP"]
TASKS = {  # task: (file, scale)
    "pansharpening": ("pancollection/train_wv3_tiny.h5", 2047),
    "hs_pansharpening": ("hyperpan/train_pavia_tiny.h5", 4095),
    "hsms_fusion": ("hyperspectral/train_cave_x8_tiny.h5", 1.0),
}


def write(path: Path, tree: dict) -> Path:
    path.write_text(yaml.safe_dump(tree))
    return path


def data_section(task: str) -> dict:
    file, scale = TASKS[task]
    full = [str(FIXTURES / "pancollection/test_wv3_OrigScale_tiny.h5")] if task == "pansharpening" else []
    return {
        "scale": scale,
        "train": str(FIXTURES / file),
        "test_reduced": [str(FIXTURES / file)],
        "test_full": full,
    }


def test_comparison_table_and_charts(tmp_path):
    logs = str(tmp_path / "logs")
    trained = write(
        tmp_path / "tiny.yml",
        {
            "name": "tiny",
            "task": "pansharpening",
            "device": "cpu",
            "log_root": logs,
            "data": data_section("pansharpening"),
            "model": {"name": "TinyFusion"},
            "train": {"batch_size": 2, "iterations": 2},
            "test": {"checkpoint": "latest"},
        },
    )
    train_script.main(["--option_path", str(trained)])
    methods = [{"option_path": str(trained), "checkpoint": "latest", "label": "Tiny"}]
    methods += [{"model": {"name": name}} for name in CLASSICAL]
    compare = write(
        tmp_path / "compare.yml",
        {
            "name": "cmp",
            "task": "pansharpening",
            "device": "cpu",
            "log_root": logs,
            "data": data_section("pansharpening"),
            "test": {"dim_cut": 0},
            "compare": {"methods": methods, "charts": str(tmp_path / "charts"), "image": 1},
        },
    )
    results = test_script.main(["--option_path", str(compare)])
    labels = ["Tiny", *CLASSICAL]
    assert list(results["methods"]) == labels
    run = Path(results["run_dir"])
    table = (run / "comparison.md").read_text().splitlines()
    assert [line.split(" | ")[0].lstrip("| ").strip("*") for line in table[2 : 2 + len(labels)]] == labels
    assert "SAM ↓" in table[0] and "QNR ↑" in table[0] and "GFLOPs" in table[0]
    rows = list(csv.DictReader((run / "comparison.csv").open()))
    assert {r["method"] for r in rows} == set(labels)
    assert {r["resolution"] for r in rows} == {"reduced", "full"}
    assert (run / "comparison.tex").read_text().count(r"\\") == len(labels) + 1
    saved = json.loads((run / "comparison.json").read_text())
    assert saved["methods"]["Tiny"]["params"] > 0 and saved["methods"]["Tiny"]["flops"] > 0
    assert all(saved["methods"][m]["params"] == 0 for m in CLASSICAL)
    assert all(saved["methods"][m]["seconds_per_image"] > 0 for m in labels)
    # EXP is the 23-tap interpolation of ms: the fixture's lms is that too, so EXP scores as 'up'
    exp_row = saved["methods"]["EXP"]["reduced"]
    assert math.isfinite(exp_row["SAM"]["mean"]) and exp_row["ERGAS"]["mean"] > 0
    for name in ("cmp_ep.png", "cmp_visual.png"):
        assert (tmp_path / "charts" / name).stat().st_size > 10_000


@pytest.mark.parametrize("task", sorted(TASKS))
def test_every_classical_method_runs_on_every_task(task, tmp_path):
    compare = write(
        tmp_path / "compare.yml",
        {
            "name": f"classical_{task}",
            "task": task,
            "device": "cpu",
            "log_root": str(tmp_path / "logs"),
            "data": data_section(task),
            "test": {"dim_cut": 0},
            "compare": {
                "methods": [{"model": {"name": n}} for n in CLASSICAL],
                "charts": None,
                "flops": False,
            },
        },
    )
    results = test_script.main(["--option_path", str(compare)])
    for name in CLASSICAL:
        reduced = results["methods"][name]["reduced"]
        # the fixtures are noise (their guide unrelated to the bands): finite scores, not good ones;
        # the methods' values on real data are pinned by the golden tests
        assert all(math.isfinite(reduced[k]["mean"]) for k in ("SAM", "ERGAS", "Q2n", "PSNR")), name


def test_a_training_free_method_is_tested_without_checkpoint_and_refused_by_train(tmp_path, capsys):
    options = write(
        tmp_path / "gsa.yml",
        {
            "name": "gsa",
            "task": "pansharpening",
            "device": "cpu",
            "log_root": str(tmp_path / "logs"),
            "data": data_section("pansharpening"),
            "model": {"name": "GSA"},
            "test": {"dim_cut": 0},
        },
    )
    results = test_script.main(["--option_path", str(options)])
    assert results["checkpoint"] == "training-free"
    assert "GSA" in next(iter(results["files"].values()))["methods"]
    with pytest.raises(SystemExit) as stop:
        train_script.main(["--option_path", str(options)])
    assert stop.value.code == 2
    assert "training-free" in capsys.readouterr().err


def test_an_untrained_method_is_refused_before_the_run_folder_is_made(tmp_path, capsys):
    """A listed method with no trained run (after a valid one) stops the comparison with exit 2
    and one line naming it, and no comparison folder is left behind."""
    logs = tmp_path / "logs"
    untrained = write(
        tmp_path / "untrained.yml",
        {
            "name": "never_trained",
            "task": "pansharpening",
            "device": "cpu",
            "log_root": str(logs),
            "data": data_section("pansharpening"),
            "model": {"name": "TinyFusion"},
            "train": {"batch_size": 2, "iterations": 2},
        },
    )
    compare = write(
        tmp_path / "compare.yml",
        {
            "name": "cmp",
            "task": "pansharpening",
            "device": "cpu",
            "log_root": str(logs),
            "data": data_section("pansharpening"),
            "test": {"dim_cut": 0},
            "compare": {"methods": [{"model": {"name": "GSA"}}, {"option_path": str(untrained)}]},
        },
    )
    with pytest.raises(SystemExit) as stop:
        test_script.main(["--option_path", str(compare)])
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "never_trained" in err[0]
    assert not (logs / "pansharpening" / "cmp").exists()


def test_error_scale_is_not_set_by_a_failed_method():
    """The visual comparison's shared error scale: the median of the maps' 99th percentiles
    (hand values), so a diverged method (errors 1e4 times the others') does not black out the rest."""
    from charts.figures import error_scale

    ramp = np.arange(100, dtype=float).reshape(10, 10)  # 99th percentile 98.01 (linear interpolation)
    assert error_scale({"a": ramp}) == pytest.approx(98.01)
    maps = {"a": ramp, "b": 2 * ramp, "failed": 1e4 * ramp}
    assert error_scale(maps) == pytest.approx(2 * 98.01)
    assert error_scale({}) == 1e-12
    assert error_scale({"zero": np.zeros((4, 4))}) == 1e-12
