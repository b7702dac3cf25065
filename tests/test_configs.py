"""Every shipped option file is valid, and each trains and tests end to end on a tiny fixture
of its layout (the public files are too large to ship; the fixtures have their exact format)."""

from __future__ import annotations

import math

import pytest

from data.datasets import FusionH5Dataset
from engine.options import load_options
from models import MODELS
from tests.conftest import ROOT, load_script

FIXTURES = ROOT / "tests" / "data"
ALL_OPTION_FILES = sorted((ROOT / "options").glob("*.yml"))
# the shipped demos' own RAMSF recipes (option.yml is the main one)
SHOWCASES = [ROOT / "options" / f"{n}.yml" for n in ("landsat8_long", "landsat8_shipped", "sentinel2_demo")]
FULLRES = [p for p in ALL_OPTION_FILES if p.stem.startswith("fullres_")]  # trained without gt
PRESETS = [  # the paper's recipe for each public dataset
    p
    for p in ALL_OPTION_FILES
    if not p.stem.startswith(("demo_", "compare_", "fullres_")) and p not in SHOWCASES
]
DEMO_PEERS = [p for p in ALL_OPTION_FILES if p.stem.startswith("demo_")]
NARROW = ["model.width=8", "model.guide_width=8", "model.mlp_hidden=[8,8]", "model.stage1_width=4"]
FIXTURE_OF_LAYOUT = {
    "pancollection": ("pancollection/train_wv3_tiny.h5", "pancollection/test_wv3_OrigScale_tiny.h5"),
    "hyperpan": ("hyperpan/train_pavia_tiny.h5", None),
    "hyperspectral": ("hyperspectral/train_cave_x8_tiny.h5", None),
}


def test_presets_cover_the_public_datasets():
    names = {p.stem for p in PRESETS}
    assert {"wv3", "qb", "gf2", "wv2", "wdc", "pavia", "botswana"} <= names
    assert {"cave_x4", "cave_x8", "harvard_x4", "harvard_x8"} <= names


@pytest.mark.parametrize("path", [*PRESETS, ROOT / "option.yml"], ids=lambda p: p.name)
def test_option_file_is_valid(path):
    options = load_options(path)
    assert options.model["name"] == "RAMSF"
    if path.parent.name == "options":  # the paper's recipe
        assert options.train.optimizer.lr == pytest.approx(3e-4) and options.train.batch_size == 32
        assert options.train.epochs == 600 and options.train.loss[0].name == "L1"
        assert options.train.scheduler.name == "MultiStepLR"


@pytest.mark.parametrize("path", SHOWCASES, ids=lambda p: p.stem)
def test_showcase_option_files_are_valid(path):
    """The demos' RAMSF recipes: valid, on a shipped demo, choosing the best checkpoint on validation."""
    options = load_options(path)
    assert path.is_file() and options.model["name"] == "RAMSF" and options.demo in ("landsat8", "sentinel2")
    assert options.test.dim_cut == 0 and (options.data.train is None or options.val.metric == "ERGAS")


@pytest.mark.parametrize("path", DEMO_PEERS, ids=lambda p: p.stem)
def test_demo_peers_share_the_demo_budget(path):
    """Each deep peer of the demo comparison trains on RAMSF's data with RAMSF's budget."""
    peer, ramsf = load_options(path), load_options(ROOT / "option.yml")
    assert peer.model["name"] in MODELS and peer.model["name"] != "RAMSF"
    assert peer.data == ramsf.data and peer.val == ramsf.val and peer.test == ramsf.test
    assert (peer.train.batch_size, peer.train.iterations) == (ramsf.train.batch_size, ramsf.train.iterations)
    assert peer.train.optimizer.name == ramsf.train.optimizer.name
    assert peer.train.scheduler.name == ramsf.train.scheduler.name


@pytest.mark.parametrize("path", [ROOT / "option.yml", *SHOWCASES, *DEMO_PEERS], ids=lambda p: p.stem)
def test_demo_recipes_keep_the_training_files_grid(path):
    """The demo's training files hold all eight flips and turns of every patch, each degraded on
    its own (data.prepare --augment dihedral); flipping their reduced samples again would move the
    ratio-2 grid, so the demo recipes flip with the grid-keeping transpose only, or not at all."""
    from data.demo import DEMOS

    options = load_options(path)
    if options.data.train is not None:
        assert DEMOS[options.demo].config(ROOT, options.demo).augment == "dihedral"
        assert options.data.augment in ("transpose", False)


def test_compare_demo_lists_every_method():
    options = load_options(ROOT / "options" / "compare_demo.yml")
    trained = {
        load_options(ROOT / m.option_path).model["name"] for m in options.compare.methods if m.option_path
    }
    free = {m.model["name"] for m in options.compare.methods if m.model}
    assert trained == {"RAMSF"} | {load_options(path).model["name"] for path in DEMO_PEERS}
    assert free == {"EXP", "BT-H", "GSA", "BDSD-PC", "PRACS", "MTF-GLP-HPM", "MTF-GLP-FS", "AWLP"}


@pytest.mark.parametrize("path", PRESETS + DEMO_PEERS + SHOWCASES[::2], ids=lambda p: p.stem)
def test_preset_trains_and_tests_on_its_layout(path, tmp_path):
    options = load_options(path)
    layout = "pancollection" if options.data.layout == "auto" else options.data.layout
    train_file, full_file = FIXTURE_OF_LAYOUT[layout]
    narrow = NARROW if options.model["name"] == "RAMSF" else []
    scale = 1.0 if layout == "hyperspectral" else (4095 if layout == "hyperpan" else 2047)
    overrides = [
        f"log_root={tmp_path}",
        f"data.root={FIXTURES}",
        f"data.train={train_file}",
        f"data.valid={train_file}",
        f"data.test_reduced=[{train_file}]",
        f"data.test_full=[{full_file}]" if full_file else "data.test_full=[]",
        f"data.scale={scale}",
        "data.num_workers=0",
        "data.sensor=none",  # the fixture has 8 bands whatever the preset's sensor
        "train.epochs=1",
        "train.iterations=null",
        "train.batch_size=2",
        "test.dim_cut=0",
        "demo=null",
        *narrow,
    ]
    argv = ["--option_path", str(path), *[a for o in overrides for a in ("--set", o)]]
    metrics = load_script("train").main(argv)
    samples = len(FusionH5Dataset(str(FIXTURES / train_file), scale))
    assert metrics["step"] == math.ceil(samples / 2)  # one epoch at batch 2
    results = load_script("test").main(argv)
    scored = results["files"][str(FIXTURES / train_file)]["methods"][options.model["name"]]["mean"]
    assert 0 <= scored["SAM"] < 90 and scored["ERGAS"] > 0


@pytest.mark.parametrize("path", FULLRES, ids=lambda p: p.stem)
def test_fullres_preset_trains_without_gt_on_the_full_resolution_fixture(path, tmp_path):
    """A full-resolution preset: losses that need no gt, the best checkpoint by a full-resolution
    index; it trains on the gt-less fixture (validated at both resolutions) and tests."""
    options = load_options(path)
    assert options.demo == "landsat8_fullres" and options.data.valid_full is not None
    assert options.val.metric in ("D_lambda", "D_s", "QNR", "HQNR")
    full, reduced = "pancollection/test_wv3_OrigScale_tiny.h5", "pancollection/train_wv3_tiny.h5"
    overrides = [
        f"log_root={tmp_path}",
        f"data.root={FIXTURES}",
        f"data.train={full}",
        f"data.valid={reduced}",
        f"data.valid_full={full}",
        f"data.test_reduced=[{reduced}]",
        f"data.test_full=[{full}]",
        "data.scale=2047",
        "train.iterations=2",
        "train.batch_size=2",
        "val.every=2",
        "demo=null",
        *(NARROW if options.model["name"] == "RAMSF" else []),
    ]
    argv = ["--option_path", str(path), *[a for o in overrides for a in ("--set", o)]]
    metrics = load_script("train").main(argv)
    assert metrics["step"] == 2 and 0 < metrics[options.val.metric] <= 1
    results = load_script("test").main(argv)
    scored = results["files"][str(FIXTURES / full)]["methods"][options.model["name"]]["mean"]
    assert 0 < scored["QNR"] <= 1
