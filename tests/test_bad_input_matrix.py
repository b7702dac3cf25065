"""Bad input through the real commands: ``python train.py`` / ``python test.py`` in subprocesses.

Every case builds its own folder (data files, option file, a log_root holding earlier runs with
checkpoints and results) and runs one command on it. The command must exit with code 2 and
print exactly one ``error:`` line naming the problem and its fix, no traceback, and leave every
file that was there before untouched (and, unless the case allows it, create none).

Each subprocess spends seconds importing torch, so the selected cases run side by side, as many
at a time as there are CPUs, in a module fixture; the tests then check one outcome each.
"""

from __future__ import annotations

import ast
import hashlib
import os
import shutil
import subprocess
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
import yaml
from test_train_and_test_scripts import FIXTURES, train_script

from tests.conftest import ROOT, error_lines, run_script
from utils.schema import set_path

WV3 = FIXTURES / "train_wv3_tiny.h5"  # 4 samples, 8 bands, 16 x 16 (ms 4 x 4), ratio 4, 11-bit
PAVIA = ROOT / "tests" / "data" / "hyperpan" / "train_pavia_tiny.h5"  # 12 bands, 12-bit


class Workspace:
    """A case's folder: data files, an option tree, and a log_root holding the earlier runs."""

    def __init__(self, root: Path, earlier_logs: Path):
        self.root = root
        self.data = root / "data"
        self.data.mkdir(parents=True)
        self.logs = root / "logs"
        shutil.copytree(earlier_logs, self.logs)
        self.train = self.h5("train.h5", self.arrays())
        self.script = "train"
        self.options = {
            "name": "case",
            "task": "pansharpening",
            "log_root": str(self.logs),
            "device": "cpu",
            "tensorboard": False,
            "data": {"scale": 2047, "train": self.train, "test_reduced": [self.train]},
            "model": {"name": "TinyFusion"},
            "train": {"batch_size": 2, "iterations": 2, "save_every": 1},
            "test": {"checkpoint": self.checkpoint("wv3"), "dim_cut": 0, "baseline": False},
        }

    @staticmethod
    def arrays(source: Path = WV3) -> dict[str, np.ndarray]:
        """The arrays of a fixture file."""
        with h5py.File(source, "r") as file:
            return {key: file[key][()] for key in file}

    def h5(self, name: str, arrays: dict[str, np.ndarray]) -> str:
        """Write ``arrays`` into ``data/<name>``; returns its path."""
        path = self.data / name
        with h5py.File(path, "w") as file:
            for key, value in arrays.items():
                file.create_dataset(key, data=value)
        return str(path)

    def checkpoint(self, run: str) -> str:
        """``latest.pth`` of the earlier run ``run`` (wv3: 8 bands, pavia: 12 bands)."""
        (path,) = (self.logs / "pansharpening" / run).glob("*/checkpoints/latest.pth")
        return str(path)

    def set(self, key: str, value) -> None:
        set_path(self.options, key, value)

    def write_options(self) -> str:
        path = self.root / "options.yml"
        path.write_text(yaml.safe_dump(self.options))
        return str(path)


@dataclass(frozen=True)
class Case:
    """A bad input: ``build`` writes it into a workspace (returning a reason to skip, if any)."""

    build: Callable[[Workspace], str | None]
    words: tuple[str, ...]  # what the error line must say: the problem and the fix
    marks: tuple = field(default_factory=tuple)


CASES: dict[str, Case] = {}


def case(*words: str, marks: tuple = ()):
    """Register the decorated builder as the case named after it."""

    def register(build: Callable[[Workspace], str | None]) -> Callable[[Workspace], str | None]:
        CASES[build.__name__] = Case(build, words, marks)
        return build

    return register


# ------------------------------------------------------------------ files
@case("does not exist", "check the path")
def missing_file(ws: Workspace) -> None:
    ws.set("data.train", str(ws.data / "absent.h5"))


@case("is not an HDF5 file", "give an .h5 file")
def not_an_hdf5_file(ws: Workspace) -> None:
    path = ws.data / "table.h5"
    path.write_text("gt,ms,lms,pan\n1,2,3,4\n")
    ws.set("data.train", str(path))


@case("missing key ['pan']", "expected keys")
def missing_key(ws: Workspace) -> None:
    arrays = ws.arrays()
    del arrays["pan"]
    ws.set("data.train", ws.h5("no_pan.h5", arrays))


@case("look like layout 'hyperpan'", "set layout: hyperpan")
def keys_of_another_layout(ws: Workspace) -> None:
    arrays = {key.upper(): value for key, value in ws.arrays().items()}
    ws.set("data.train", ws.h5("upper_keys.h5", arrays))
    ws.set("data.layout", "pancollection")


@case("look like N x H x W x C", "numpy.transpose")
def bands_last(ws: Workspace) -> None:
    arrays = {key: value.transpose(0, 2, 3, 1) for key, value in ws.arrays().items()}
    ws.set("data.train", ws.h5("bands_last.h5", arrays))


@case("size ratio not an integer", "ratio x the low-resolution size")
def ratio_not_an_integer(ws: Workspace) -> None:
    arrays = ws.arrays()
    arrays["ms"] = np.pad(arrays["ms"], ((0, 0), (0, 0), (0, 1), (0, 1)), mode="edge")  # 16 / 5
    ws.set("data.train", ws.h5("ms_5x5.h5", arrays))


@case("ratio is 4", "the options say 2", "set ratio: 4")
def ratio_not_the_configured_one(ws: Workspace) -> None:
    ws.set("data.ratio", 2)


@case("does not match", "lr bands 8 vs 4", "same sensor")
def band_counts_differ_between_train_and_validation(ws: Workspace) -> None:
    arrays = ws.arrays()
    fewer = {key: value[:, :4] if key != "pan" else value for key, value in arrays.items()}
    ws.set("data.valid", ws.h5("four_bands.h5", fewer))


@case("NaN or Inf pixels in 'lms' sample 0", "fix or drop")
def nan_pixels(ws: Workspace) -> None:
    arrays = ws.arrays()
    arrays["lms"][0, 3, 5, 5] = np.nan
    ws.set("data.train", ws.h5("nan.h5", arrays))


@case("already normalised", "set scale: 1")
def data_already_divided_by_the_scale(ws: Workspace) -> None:
    arrays = {key: value / 2047 for key, value in ws.arrays().items()}
    ws.set("data.train", ws.h5("unit.h5", arrays))


@case("exceed scale 2047", "65535")
def sixteen_bit_data_with_scale_2047(ws: Workspace) -> None:
    arrays = {key: np.rint(value * 32) for key, value in ws.arrays().items()}
    ws.set("data.train", ws.h5("sixteen_bit.h5", arrays))


@case("empty", "give a file with samples")
def empty_dataset(ws: Workspace) -> None:
    arrays = {key: value[:0] for key, value in ws.arrays().items()}
    ws.set("data.train", ws.h5("empty.h5", arrays))


@case("smaller than the patch size 32", "at most 16")
def images_smaller_than_the_patch(ws: Workspace) -> None:
    ws.set("train.patch_size", 32)


# ------------------------------------------------------------------ options
@case("unknown option 'train.batchsize'", "batch_size")
def unknown_option_key(ws: Workspace) -> None:
    ws.options["train"]["batchsize"] = ws.options["train"].pop("batch_size")


@case("option 'train.iterations' must be int", "got 'ten'")
def wrong_option_type(ws: Workspace) -> None:
    ws.set("train.iterations", "ten")


@case("option 'train.grad_clip' is 0.0", "give a positive gradient norm")
def gradient_clip_of_zero(ws: Workspace) -> None:
    ws.set("train.grad_clip", 0)


@case("option 'val.dim_cut' is 21", "16x16", "set val.dim_cut to at most 7, or 0")
def validation_cut_larger_than_the_patches(ws: Workspace) -> None:
    ws.set("data.valid", ws.train)
    ws.set("val", {"every": 1, "unit": "iteration", "dim_cut": 21})


@case("option 'test.dim_cut' is 21", "16x16", "set test.dim_cut to at most 7, or 0")
def cut_larger_than_the_test_images(ws: Workspace) -> None:
    ws.script = "test"
    ws.set("test.dim_cut", 21)


@case("refused by Adam", "Invalid beta", "betas in [0, 1)")
def optimizer_value_out_of_range(ws: Workspace) -> None:
    ws.set("train.optimizer", {"name": "Adam", "betas": [1.5, 0.999]})


@case("EXP is a training-free method", "nothing to train", "test.py")
def training_a_training_free_method(ws: Workspace) -> None:
    ws.set("model", {"name": "EXP"})


@case("cannot create the run folder", "set log_root to a writable folder")
def log_root_is_a_file(ws: Workspace) -> None:
    path = ws.root / "logs.txt"
    path.write_text("a file, not a folder\n")
    ws.set("log_root", str(path))


@case("cannot create the run folder", "Permission denied", "set log_root to a writable folder")
def log_root_not_writable(ws: Workspace) -> str | None:
    locked = ws.root / "locked"
    locked.mkdir(mode=0o555)
    ws.set("log_root", str(locked))
    if os.access(locked, os.W_OK):
        return "chmod does not block writes here (running as root?)"
    return None


# ------------------------------------------------------------------ checkpoints (test.py)
@case("has bands 8 but the model is built for 12", "same sensor")
def checkpoint_trained_on_other_bands(ws: Workspace) -> None:
    ws.script = "test"
    ws.set("test.checkpoint", ws.checkpoint("pavia"))


@case("holds a TinyFusion model but model.name is RAMSF", "test.checkpoint")
def checkpoint_of_another_model(ws: Workspace) -> None:
    ws.script = "test"
    ws.set("model", {"name": "RAMSF"})


@case("NaN or Inf pixels in ['gt'] of sample 1", "fix or drop")
def inf_pixels_found_while_testing(ws: Workspace) -> None:
    ws.script = "test"
    arrays = ws.arrays()
    arrays["gt"][1, 0, 2, 2] = np.inf  # sample 1: not among those checked on opening
    ws.set("data.test_reduced", [ws.h5("inf.h5", arrays)])


class RunsCode:
    """Unpickling this object runs code (here: creates ``marker``)."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return exec, (f"open({str(self.marker)!r}, 'w').close()",)


@case("cannot be read safely", "saved by this framework")
def checkpoint_that_runs_code_when_loaded(ws: Workspace) -> None:
    ws.script = "test"
    path = ws.root / "evil.pth"
    torch.save({"model": RunsCode(ws.root / "code_ran")}, path)
    ws.set("test.checkpoint", str(path))


@case("does not exist")
def later_test_file_missing_with_save_images(ws: Workspace) -> None:
    ws.script = "test"
    ws.set("test.save_images", "h5")
    ws.set("data.test_reduced", [ws.train, str(ws.data / "absent.h5")])


# ------------------------------------------------------------------ running the cases
@dataclass
class Outcome:
    """A case's finished command and the file hashes of its folder before and after it ran."""

    proc: subprocess.CompletedProcess | None
    before: dict[str, str]
    after: dict[str, str]
    skipped: str | None = None


def snapshot(root: Path) -> dict[str, str]:
    """SHA-256 of every file under ``root``, by relative path."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def run_case(name: str, root: Path, earlier_logs: Path) -> Outcome:
    ws = Workspace(root, earlier_logs)
    skip = CASES[name].build(ws)
    if skip is not None:
        return Outcome(None, {}, {}, skipped=skip)
    option_path = ws.write_options()
    before = snapshot(root)
    proc = run_script(ws.script, "--option_path", option_path)
    return Outcome(proc, before, snapshot(root))


@pytest.fixture(scope="module")
def earlier_logs(tmp_path_factory) -> Path:
    """A log_root with two finished runs: 'wv3' (8 bands) and 'pavia' (12 bands), each with a
    checkpoint, and test results and fused images next to the wv3 checkpoint."""
    root = tmp_path_factory.mktemp("earlier")
    for name, data, scale in (("wv3", WV3, 2047), ("pavia", PAVIA, 4095)):
        tree = {
            "name": name,
            "task": "pansharpening",
            "log_root": str(root / "logs"),
            "device": "cpu",
            "tensorboard": False,
            "data": {"scale": scale, "train": str(data)},
            "model": {"name": "TinyFusion"},
            "train": {"batch_size": 2, "iterations": 1},
        }
        path = root / f"{name}.yml"
        path.write_text(yaml.safe_dump(tree))
        train_script.main(["--option_path", str(path)])
    (run,) = (root / "logs" / "pansharpening" / "wv3").iterdir()
    (run / "test_results.json").write_text('{"earlier": "results"}\n')
    (run / "fused").mkdir()
    (run / "fused" / "train_000.h5").write_bytes(b"an earlier fused image")
    return root / "logs"


@pytest.fixture(scope="module")
def outcomes(request, tmp_path_factory, earlier_logs) -> dict[str, Outcome]:
    """The outcome of every selected case, run side by side."""
    selected = [
        item.callspec.params["name"]
        for item in request.session.items
        if item.module is request.module and hasattr(item, "callspec")
    ]
    roots = {name: tmp_path_factory.mktemp(name) for name in selected}
    with ThreadPoolExecutor(max_workers=len(os.sched_getaffinity(0))) as pool:
        futures = {name: pool.submit(run_case, name, roots[name], earlier_logs) for name in selected}
        return {name: future.result() for name, future in futures.items()}


@pytest.mark.parametrize("name", [pytest.param(n, marks=c.marks, id=n) for n, c in CASES.items()])
def test_bad_input_is_refused_in_one_line(name: str, outcomes: dict[str, Outcome]):
    outcome = outcomes[name]
    if outcome.skipped:
        pytest.skip(outcome.skipped)
    proc = outcome.proc
    output = proc.stdout + proc.stderr
    assert proc.returncode == 2, output
    assert "Traceback" not in output
    errors = error_lines(proc)
    assert len(errors) == 1, output
    for word in CASES[name].words:
        assert word in errors[0]
    changed = sorted(p for p, digest in outcome.before.items() if outcome.after.get(p) != digest)
    assert not changed, f"files changed or removed: {changed}"
    created = sorted(set(outcome.after) - set(outcome.before))
    assert not created, f"files created: {created}"


def test_the_matrix_is_large_enough():
    assert len(CASES) >= 15


# ------------------------------------------------------------------ safe loading, in the source
UNSAFE_CALLS = {
    ("yaml", "load"),
    ("yaml", "load_all"),
    ("yaml", "full_load"),
    ("yaml", "full_load_all"),
    ("yaml", "unsafe_load"),
    ("yaml", "unsafe_load_all"),
    ("pickle", "load"),
    ("pickle", "loads"),
    ("pickle", "Unpickler"),
    ("dill", "load"),
    ("dill", "loads"),
    ("marshal", "load"),
    ("marshal", "loads"),
}


def is_true(call: ast.Call, keyword: str) -> bool:
    """Whether ``call`` passes ``keyword=True`` literally."""
    return any(
        k.arg == keyword and isinstance(k.value, ast.Constant) and k.value.value is True
        for k in call.keywords
    )


def unsafe_loads(path: Path) -> list[str]:
    """Calls in ``path`` that may run code from a file: yaml.load & co, pickle.load & co,
    torch.load without ``weights_only=True``, numpy.load with ``allow_pickle=True``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        owner, attr = node.func.value, node.func.attr
        module = owner.id if isinstance(owner, ast.Name) else None
        if (
            (module, attr) in UNSAFE_CALLS
            or (module == "torch" and attr == "load" and not is_true(node, "weights_only"))
            or (module in ("np", "numpy") and attr == "load" and is_true(node, "allow_pickle"))
        ):
            found.append(f"{path}:{node.lineno}: {module}.{attr}")
    return found


def source_files() -> list[Path]:
    """The project's Python files, tests and run folders excepted."""
    skip = {"tests", "logs", ".git", ".venv", "venv"}
    return [p for p in ROOT.rglob("*.py") if not skip & set(p.relative_to(ROOT).parts)]


def test_options_and_checkpoints_are_loaded_safely_everywhere():
    files = source_files()
    assert ROOT / "engine" / "checkpoint.py" in files and ROOT / "engine" / "options.py" in files
    found = [hit for path in files for hit in unsafe_loads(path)]
    assert not found, f"use yaml.safe_load and torch.load(..., weights_only=True): {found}"
    assert not [p for p in files if "weights_only=False" in p.read_text()]


def test_the_source_scan_finds_unsafe_loads(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text(
        "import numpy as np, pickle, torch, yaml\n"
        "yaml.load(text)\n"
        "pickle.loads(blob)\n"
        "torch.load(path)\n"
        "torch.load(path, weights_only=False)\n"
        "np.load(path, allow_pickle=True)\n"
        "torch.load(path, weights_only=True)\n"
        "yaml.safe_load(text)\n"
        "np.load(path, allow_pickle=False)\n"
    )
    hits = [hit.split(": ")[-1] for hit in unsafe_loads(sample)]
    assert hits == ["yaml.load", "pickle.loads", "torch.load", "torch.load", "np.load"]
