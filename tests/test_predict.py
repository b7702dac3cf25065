"""Whole-scene inference: tiles without seams, GeoTIFF in and out, one-line errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from data.scene import Grid, read_grid, read_image, write_geotiff
from engine.options import load_options
from engine.tester import find_checkpoint, load_trained_model
from engine.tiling import fuse_tiled, symmetric_index
from models import MODELS
from tests.conftest import ROOT

FIXTURE = ROOT / "tests" / "data" / "pancollection" / "train_wv3_tiny.h5"
NARROW = dict(width=8, guide_width=8, mlp_hidden=(16, 8), stage1_width=4)


def test_symmetric_index_by_hand():
    assert symmetric_index(-3, 7, 4).tolist() == [2, 1, 0, 0, 1, 2, 3, 3, 2, 1]
    assert symmetric_index(0, 4, 4).tolist() == [0, 1, 2, 3]


@pytest.mark.parametrize("ratio, margin", [(4, 12), (2, 24)])
def test_tiles_equal_one_pass(ratio, margin):
    """RAMSF (full depth, narrow) in 16-pixel tiles equals one tile covering the scene."""
    torch.manual_seed(0)
    model = MODELS.build("RAMSF", lr_channels=4, guide_channels=1, ratio=ratio, **NARROW).eval()
    rng = np.random.default_rng(0)
    lr = rng.uniform(100, 2000, (4, 40, 36)).astype(np.float32)
    guide = rng.uniform(100, 2000, (1, 40 * ratio, 36 * ratio)).astype(np.float32)
    shape = (4, *guide.shape[1:])
    cpu = torch.device("cpu")
    whole = fuse_tiled(model, lr, guide, ratio, 64, margin, np.zeros(shape, np.float32), cpu, 2047.0)
    tiled = fuse_tiled(model, lr, guide, ratio, 16, margin, np.zeros(shape, np.float32), cpu, 2047.0)
    assert np.abs(tiled - whole).max() / np.abs(whole).max() < 1e-4
    narrow = fuse_tiled(model, lr, guide, ratio, 16, 1, np.zeros(shape, np.float32), cpu, 2047.0)
    assert np.abs(narrow - whole).max() / np.abs(whole).max() > 1e-4  # too little context shows seams


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A TinyFusion checkpoint trained for 2 steps on the 8-band WV3 fixture (ratio 4)."""
    folder = tmp_path_factory.mktemp("predict")
    options = {
        "name": "predict",
        "task": "pansharpening",
        "device": "cpu",
        "log_root": str(folder / "logs"),
        "data": {"scale": 2047, "train": str(FIXTURE)},
        "model": {"name": "TinyFusion"},
        "train": {"batch_size": 2, "iterations": 2},
        "test": {"checkpoint": "latest"},
    }
    path = folder / "options.yml"
    path.write_text(yaml.safe_dump(options))
    subprocess.run(
        [sys.executable, "train.py", "--option_path", str(path)], cwd=ROOT, check=True, capture_output=True
    )
    grid = Grid(x0=500000.0, y0=4000000.0, dx=0.3, dy=0.3, crs=32633)
    rng = np.random.default_rng(1)
    write_geotiff(folder / "pan.tif", rng.integers(0, 2047, (1, 80, 72)).astype(np.uint16), grid)
    ms_grid = Grid(x0=500000.0, y0=4000000.0, dx=1.2, dy=1.2, crs=32633)
    write_geotiff(folder / "ms.tif", rng.integers(0, 2047, (8, 20, 18)).astype(np.uint16), ms_grid)
    return folder, path


def predict(folder: Path, options: Path, *extra: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "predict.py", "--option_path", str(options), *extra]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)


def fuse_scene(folder: Path, options: Path, out: Path, *tiling: str) -> subprocess.CompletedProcess:
    """predict.py on the fixture scene (pan.tif, ms.tif) into ``out``."""
    scene = ["--pan", str(folder / "pan.tif"), "--lr", str(folder / "ms.tif"), "--out", str(out)]
    return predict(folder, options, *scene, *tiling)


def test_predict_writes_a_georeferenced_scene(trained):
    folder, options = trained
    out = folder / "fused.tif"
    done = fuse_scene(folder, options, out, "--tile", "32", "--margin", "16")
    assert done.returncode == 0, done.stderr
    fused = read_image(out)
    assert fused.shape == (8, 80, 72) and fused.dtype == np.float32
    assert read_grid(out) == read_grid(folder / "pan.tif")
    again = folder / "again.tif"  # the same scene in one tile gives the same numbers
    assert fuse_scene(folder, options, again, "--tile", "512").returncode == 0
    assert np.abs(read_image(again) - fused).max() <= 1e-4 * np.abs(fused).max()
    # digital numbers: what the checkpoint's model gives on the data divided by data.scale, times it
    opts = load_options(options)
    model, _ = load_trained_model(opts, find_checkpoint(opts), torch.device("cpu"))
    lr, pan = (
        read_image(folder / "ms.tif").astype(np.float32),
        read_image(folder / "pan.tif").astype(np.float32),
    )
    expected = fuse_tiled(model, lr, pan, 4, 64, 16, np.zeros_like(fused), torch.device("cpu"), 2047.0)
    assert np.abs(expected - fused).max() <= 1e-4 * np.abs(expected).max()


@pytest.mark.parametrize(
    "case, words",
    [
        ("ratio", "not ratio 4"),
        ("bands", "has 3 bands but the model was trained with 8"),
        ("exists", "exists"),
        ("missing", "does not exist"),
    ],
)
def test_predict_bad_input(trained, case, words):
    folder, options = trained
    pan, ms, out = folder / "pan.tif", folder / "ms.tif", folder / f"bad_{case}.tif"
    grid = Grid(x0=0.0, y0=0.0, dx=1.0, dy=1.0)
    if case == "ratio":
        pan = folder / "pan_odd.tif"
        write_geotiff(pan, np.zeros((1, 81, 72), np.uint16), grid)
    elif case == "bands":
        ms = folder / "ms3.tif"
        write_geotiff(ms, np.zeros((3, 20, 18), np.uint16), grid)
    elif case == "exists":
        out.write_bytes(b"keep me")
    else:
        pan = folder / "nowhere.tif"
    done = predict(folder, options, "--pan", str(pan), "--lr", str(ms), "--out", str(out))
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and words in lines[0], done.stderr
    assert "Traceback" not in done.stderr
    if case == "exists":
        assert out.read_bytes() == b"keep me"
