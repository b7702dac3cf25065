"""One standard deviation everywhere: test.py and ``python -m metrics`` agree on the same files.

Both report the mean and the sample standard deviation (N - 1, as MATLAB's ``std`` in the
toolbox's demo tables) over the images, in float64; the std of a single image is undefined
(``-`` in tables, ``null`` in JSON, an empty CSV cell).
"""

from __future__ import annotations

import csv
import json
import math

import h5py
import numpy as np
import pytest

from metrics.cli import main as metrics_main
from metrics.report import format_mean_std, mean_std
from tests.conftest import load_script

test_script = load_script("test")
SCALE = 2048  # a power of two: DN / SCALE and back are exact in float32, as test.py reads them


def write_scene(path, n: int, seed: int = 0) -> str:
    """A PanCollection file of ``n`` 4-band 32 x 32 images with integer DNs, ratio 2."""
    rng = np.random.default_rng(seed)
    gt = np.round(rng.uniform(100, 2000, (n, 4, 32, 32)))
    ms = np.round(gt.reshape(n, 4, 16, 2, 16, 2).mean(axis=(3, 5)))
    lms = ms.repeat(2, axis=2).repeat(2, axis=3)
    pan = np.round(gt.mean(axis=1, keepdims=True) + rng.normal(0, 20, (n, 1, 32, 32)))
    with h5py.File(path, "w") as handle:
        for key, value in {"gt": gt, "ms": ms, "lms": lms, "pan": pan}.items():
            handle.create_dataset(key, data=value)
    return str(path)


def run_test_py(tmp_path, data: str) -> tuple[dict, list]:
    """Score GSA on ``data`` with test.py (fused images saved); its results and run folder."""
    options = tmp_path / "gsa.yml"
    options.write_text(
        "name: gsa\ntask: pansharpening\n"
        f"log_root: {tmp_path / 'logs'}\n"
        f"data: {{scale: {SCALE}, test_reduced: [{data}]}}\n"
        "model: {name: GSA}\n"
        "test: {dim_cut: 0, save_images: h5}\n"
    )
    results = test_script.main(["--option_path", str(options)])
    return results, sorted((tmp_path / "logs").rglob("test_results.json"))


def test_mean_std_is_matlabs_sample_std_in_float64():
    values = [1.0, 2.0, 4.0]
    mean, std = mean_std(values)
    assert mean == pytest.approx(7 / 3, abs=1e-15)
    assert std == pytest.approx(
        math.sqrt(((1 - 7 / 3) ** 2 + (2 - 7 / 3) ** 2 + (4 - 7 / 3) ** 2) / 2), abs=1e-15
    )
    # float64 all the way: a float32 summary would lose the 1e-9 step
    assert mean_std([1.0, 1.0 + 1e-9])[0] - 1.0 == pytest.approx(5e-10, rel=1e-6)
    single = mean_std([3.5])
    assert single[0] == 3.5 and math.isnan(single[1])
    assert format_mean_std(*single) == "3.5000 +- -"


def test_test_py_and_the_metrics_command_report_the_same_mean_and_std(tmp_path, capsys):
    data = write_scene(tmp_path / "scene.h5", n=4)
    results, result_files = run_test_py(tmp_path, data)
    ours = results["files"][data]["methods"]["GSA"]
    run_dir = result_files[0].parent
    fused = np.stack([h5py.File(p, "r")["fused"][()] for p in sorted((run_dir / "fused").glob("*.h5"))])
    np.save(tmp_path / "fused.npy", fused)
    capsys.readouterr()
    metrics_main(
        ["--fused", str(tmp_path / "fused.npy"), "--gt", data, "--gt-key", "gt"]
        + ["--ratio", "2", "--dim-cut", "0", "--json"]
    )
    theirs = json.loads(capsys.readouterr().out)["indices"]
    assert set(theirs) <= set(ours["mean"])
    for key, summary in theirs.items():
        for stat in ("mean", "std"):
            a, b = ours[stat][key], summary[stat]
            assert abs(a - b) <= 1e-12 * max(1.0, abs(b)), (key, stat, a, b)
    # the std is the sample one (N - 1), not the population one
    per_image = np.asarray(ours["per_image"]["ERGAS"])
    assert ours["std"]["ERGAS"] == pytest.approx(per_image.std(ddof=1), rel=1e-12)
    assert ours["std"]["ERGAS"] != pytest.approx(per_image.std(ddof=0), rel=1e-6)
    saved = json.loads(result_files[0].read_text())["files"][data]["methods"]["GSA"]
    assert saved["std"]["SAM"] == ours["std"]["SAM"]


def test_a_single_image_has_no_std(tmp_path, capsys):
    data = write_scene(tmp_path / "one.h5", n=1)
    results, result_files = run_test_py(tmp_path, data)
    assert math.isnan(results["files"][data]["methods"]["GSA"]["std"]["SAM"])
    out = capsys.readouterr().out
    assert "+- -" in out
    saved = json.loads(result_files[0].read_text())["files"][data]["methods"]["GSA"]
    assert saved["std"]["SAM"] is None and saved["mean"]["SAM"] > 0
    with open(result_files[0].with_suffix(".csv")) as handle:
        rows = [r for r in csv.DictReader(handle) if r["method"] == "GSA" and r["index"] == "SAM"]
    assert rows[0]["std"] == "" and float(rows[0]["mean"]) > 0
