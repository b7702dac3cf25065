"""``python -m metrics``: each file format read right (values equal the reports called directly),
table and JSON output, and every bad input refused with exit status 2 and one stderr line."""

from __future__ import annotations

import contextlib
import io
import json
import math
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import scipy.io
import tifffile
import torch

from metrics import FULL_KEYS, REDUCED_KEYS, full_resolution_report, reduced_resolution_report
from metrics.cli import main, scale_warning
from protocols.resize import upsample
from tests.conftest import ROOT, load_golden
from utils.image_io import tif_layout, to_nchw

SIZE = 64


def _images(seed: int, n: int, bands: int, size: int = SIZE) -> tuple[np.ndarray, np.ndarray]:
    """A smooth integer-valued DN reference and a noisy fused copy, N x C x H x W float64."""
    rng = np.random.default_rng(seed)
    rows = np.linspace(0, 3, size)[:, None]
    cols = np.linspace(0, 2, size)[None, :]
    base = np.sin(rows * (1 + np.arange(bands)[:, None, None])) * np.cos(cols)
    gt = np.round(1000 + 600 * base[None] + rng.integers(0, 80, (n, bands, size, size)))
    fused = np.clip(gt + rng.integers(-60, 61, gt.shape), 0, 2047)
    return fused.astype(np.float64), gt.astype(np.float64)


def _full_inputs(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One 8-band fused image, its 16 x 16 MS (4 x 4 block means) and a PAN, N x C x H x W."""
    fused, gt = _images(seed, 1, 8)
    ms = gt.reshape(1, 8, SIZE // 4, 4, SIZE // 4, 4).mean(axis=(3, 5)).round()
    pan = np.round(gt.mean(axis=1, keepdims=True))
    return fused, ms, pan


def _tensor(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float64))


def _mat_v73(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write an HDF5 file as MATLAB -v7.3 does: axes reversed with respect to MATLAB's order."""
    with h5py.File(path, "w", userblock_size=512) as handle:
        for key, value in arrays.items():
            handle[key] = value.transpose()


def _command(*args: str) -> list[str]:
    return [sys.executable, "-m", "metrics", *map(str, args)]


def _prepare(tmp: Path) -> dict[str, tuple[list[str], dict[str, torch.Tensor]]]:
    """Write the files of each good case; return its command and the expected report."""
    cases = {}
    # .npy, bands first, a stack of 2 images, default border cut 21, table output.
    fused, gt = _images(0, 2, 4)
    np.save(tmp / "fused.npy", fused)
    np.save(tmp / "gt.npy", gt)
    cases["npy"] = (
        _command("--fused", tmp / "fused.npy", "--gt", tmp / "gt.npy", "--ratio", 4),
        reduced_resolution_report(_tensor(fused), _tensor(gt), 4, 21),
    )
    # .h5: 'gt' picked among several arrays by its conventional name, JSON, no border cut.
    fused, gt = _images(1, 2, 8)
    with h5py.File(tmp / "test.h5", "w") as handle:
        handle["gt"], handle["ms"], handle["pan"] = gt, gt[:, :, ::4, ::4], gt[:, :1]
    with h5py.File(tmp / "out.h5", "w") as handle:
        handle["result/sr"] = fused
    cases["h5"] = (
        _command("--fused", tmp / "out.h5", "--gt", tmp / "test.h5", "--ratio", 4, "--dim-cut", 0)
        + ["--json"],
        reduced_resolution_report(_tensor(fused), _tensor(gt), 4, 0),
    )
    # .mat v5, MATLAB stacks H x W x C x N; the fused file is normalised: --fused-scale 2047.
    fused, gt = _images(2, 2, 4)
    normalised = fused / 2047
    scipy.io.savemat(tmp / "fused.mat", {"sr": normalised.transpose(2, 3, 1, 0)})
    scipy.io.savemat(tmp / "gt.mat", {"gt": gt.transpose(2, 3, 1, 0), "ms": gt[0, 0]})
    cases["mat"] = (
        _command("--fused", tmp / "fused.mat", "--gt", tmp / "gt.mat", "--ratio", 4)
        + ["--dim-cut", "5", "--fused-scale", "2047", "--json"],
        reduced_resolution_report(_tensor(normalised) * 2047, _tensor(gt), 4, 5),
    )
    # Full resolution: fused in a -v7.3 .mat (H x W x C), MS and PAN in one .h5, sensor
    # spelled in lower case.
    fused, ms, pan = _full_inputs(3)
    _mat_v73(tmp / "fused73.mat", {"I_F": fused[0].transpose(1, 2, 0)})
    with h5py.File(tmp / "full.h5", "w") as handle:
        handle["ms"], handle["pan"] = ms, pan
    cases["full"] = (
        _command("--fused", tmp / "fused73.mat", "--ms", tmp / "full.h5", "--pan", tmp / "full.h5")
        + ["--ratio", "4", "--sensor", "wv3", "--json"],
        full_resolution_report(_tensor(fused), _tensor(ms), _tensor(pan), 4, "WV3"),
    )
    # .tif: fused as tifffile writes H x W x C in pages (no sample axis), gt with a planar sample axis
    # (C x H x W, as GDAL writes); values at [0, 1] without --scale: a warning, still scored.
    fused, gt = _images(4, 1, 4)
    fused, gt = (fused / 2047).astype(np.float32), (gt / 2047).astype(np.float32)
    tifffile.imwrite(tmp / "fused.tif", fused[0].transpose(1, 2, 0), photometric="minisblack")
    tifffile.imwrite(tmp / "gt.tiff", gt[0], photometric="minisblack", planarconfig="separate")
    cases["tif"] = (
        _command("--fused", tmp / "fused.tif", "--gt", tmp / "gt.tiff", "--ratio", 4) + ["--dim-cut", "0"],
        reduced_resolution_report(_tensor(fused), _tensor(gt), 4, 0),
    )
    # A bad input end to end: one line on stderr, status 2, no traceback.
    (tmp / "fused.png").write_bytes(b"\x89PNG")
    cases["bad"] = (
        _command("--fused", tmp / "fused.png", "--gt", tmp / "gt.npy", "--ratio", 4),
        {},
    )
    return cases


def _in_process(argv: list[str]) -> subprocess.CompletedProcess:
    """Run ``main(argv)`` here, capturing what a process would print and its exit status."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            status = main(argv)
        except SystemExit as stop:
            status = stop.code
    return subprocess.CompletedProcess(argv, status, out.getvalue(), err.getvalue())


# Cases run as real processes (``python -m metrics``); the others call ``main`` in process,
# which is the same code path without the interpreter's start-up time.
SUBPROCESS_CASES = ("npy", "bad")


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, tuple[subprocess.CompletedProcess, dict]]:
    """Every case's output and exit status with the report it must match."""
    cases = _prepare(tmp_path_factory.mktemp("cli"))
    procs = {
        name: subprocess.Popen(cases[name][0], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for name in SUBPROCESS_CASES
    }
    results = {
        name: (_in_process(cmd[3:]), expected) for name, (cmd, expected) in cases.items() if name not in procs
    }
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=120)
        done = subprocess.CompletedProcess(proc.args, proc.returncode, out.decode(), err.decode())
        results[name] = (done, cases[name][1])
    return results


def _parse_table(stdout: str) -> dict[str, dict[str, float]]:
    """Rows of the printed table by label ('0', '1', 'mean', 'std'), values by index name."""
    lines = stdout.strip().splitlines()
    header_at = next(i for i, line in enumerate(lines) if line.startswith("image "))
    names = lines[header_at].split()[1:]
    rows = {}
    for line in lines[header_at + 1 :]:
        if line.startswith("better:"):
            break
        label, *cells = line.split()
        rows[label] = dict(zip(names, map(float, cells), strict=True))
    return rows


def _close(got: float | None, want: float, tol: float) -> bool:
    if math.isnan(want):
        return got is None or math.isnan(got)
    return got is not None and abs(got - want) <= tol


@pytest.mark.parametrize("case", ["npy", "tif"])
def test_table_matches_the_report(runs, case):
    done, expected = runs[case]
    assert done.returncode == 0, done.stderr
    rows = _parse_table(done.stdout)
    n = len(next(iter(expected.values())))
    assert sorted(rows) == sorted([str(i) for i in range(n)] + (["mean", "std"] if n > 1 else []))
    for key in REDUCED_KEYS:
        values = expected[key].double()
        for i in range(n):
            assert _close(rows[str(i)][key], values[i].item(), 5e-5), (key, i)
        if n > 1:
            assert _close(rows["mean"][key], values.mean().item(), 5e-5), key
            assert _close(rows["std"][key], values.std().item(), 5e-5), key


def test_npy_stack_has_a_border_cut_and_distinct_images(runs):
    done, expected = runs["npy"]
    assert "border cut 21" in done.stdout and "2 images of 4 x 64 x 64" in done.stdout
    assert expected["SAM"][0] != expected["SAM"][1]
    assert done.stderr == ""


def test_tif_normalised_values_warn_once(runs):
    done, _ = runs["tif"]
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("warning:") and "--scale" in lines[0]


@pytest.mark.parametrize("case", ["h5", "mat", "full"])
def test_json_matches_the_report(runs, case):
    done, expected = runs[case]
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    keys = FULL_KEYS if case == "full" else REDUCED_KEYS
    assert list(result["indices"]) == list(keys)
    for key in keys:
        got = result["indices"][key]["per_image"]
        want = expected[key].double().tolist()
        assert len(got) == len(want)
        assert all(_close(g, w, 1e-12 * max(1.0, abs(w))) for g, w in zip(got, want, strict=True))


def test_json_records_the_inputs(runs):
    h5 = json.loads(runs["h5"][0].stdout)
    assert h5["mode"] == "reduced" and h5["dim_cut"] == 0 and h5["ratio"] == 4
    assert h5["inputs"]["gt"]["key"] == "gt" and h5["inputs"]["fused"]["key"] == "result/sr"
    full = json.loads(runs["full"][0].stdout)
    assert full["mode"] == "full" and full["sensor"] == "WV3"
    assert full["inputs"]["fused"]["shape"] == [1, 8, SIZE, SIZE]
    assert full["inputs"]["ms"]["shape"] == [1, 8, SIZE // 4, SIZE // 4]
    mat = json.loads(runs["mat"][0].stdout)
    assert mat["inputs"]["fused"]["scale"] == 2047 and mat["inputs"]["gt"]["scale"] is None


def test_bad_input_end_to_end(runs):
    done, _ = runs["bad"]
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("error: ")
    assert "Traceback" not in done.stderr and ".png" in done.stderr


GOLDEN_REDUCED = {
    "SAM": "cut_SAM",
    "ERGAS": "cut_ERGAS",
    "Q2n": "cut_q2n",
    "Q_avg": "cut_Q",
    "SCC": "cut_SCC",
}


def _relative_errors(result: dict, golden: dict, names: dict[str, str]) -> dict[str, float]:
    indices = result["indices"]
    return {
        key: abs(indices[key]["per_image"][0] - golden[name]) / abs(golden[name])
        for key, name in names.items()
    }


def test_golden_reduced_values_through_the_cli(tmp_path, golden_values):
    """The toolbox's indexes_evaluation(F, GT, 4, 11, 32, 1, 21, 0), F from a MATLAB-layout .mat."""
    data = load_golden("r1_8band_128")
    scipy.io.savemat(tmp_path / "F.mat", {"F": data["in_F"].transpose(1, 2, 0)})
    with h5py.File(tmp_path / "GT.h5", "w") as handle:
        handle["GT"] = data["in_GT"]
    done = _in_process(
        ["--fused", str(tmp_path / "F.mat"), "--gt", str(tmp_path / "GT.h5"), "--ratio", "4", "--json"]
    )
    assert done.returncode == 0, done.stderr
    errors = _relative_errors(json.loads(done.stdout), golden_values["r1_8band_128"], GOLDEN_REDUCED)
    assert max(errors.values()) < 1e-6, errors


def test_golden_full_resolution_values_through_the_cli(tmp_path, golden_values):
    """QNR.m and HQNR.m on the Landsat-8 crop (ratio 2, sensor 'none'), Brovey-fused, with the
    MS as a planar GeoTIFF-style .tif and the PAN as a single-band .tif."""
    data = load_golden("landsat8_crop")
    ms, pan = _tensor(data["in_MS"])[None], _tensor(data["in_PAN"])[None, None]
    ms_up = upsample(ms, 2)
    np.save(tmp_path / "F.npy", (ms_up * (pan / ms_up.mean(1, keepdim=True))).numpy())
    tifffile.imwrite(tmp_path / "MS.tif", data["in_MS"], photometric="minisblack", planarconfig="separate")
    tifffile.imwrite(tmp_path / "PAN.tif", data["in_PAN"])
    argv = ["--fused", str(tmp_path / "F.npy"), "--ms", str(tmp_path / "MS.tif")]
    done = _in_process([*argv, "--pan", str(tmp_path / "PAN.tif"), "--ratio", "2", "--json"])
    assert done.returncode == 0, done.stderr
    names = {key: key for key in FULL_KEYS}
    errors = _relative_errors(json.loads(done.stdout), golden_values["landsat8_crop"], names)
    assert max(errors.values()) < 1e-6, errors


@pytest.mark.parametrize("layout", ["chw", "hwc", "whc", "nchw", "hwcn", "nhwc", "hw", "nhw"])
def test_to_nchw_undoes_any_layout(layout):
    full = np.arange(2 * 3 * 5 * 7, dtype=np.float64).reshape(2, 3, 5, 7)
    kept = full[tuple(slice(None) if axis in layout else 0 for axis in "nchw")]
    order = "".join(axis for axis in "nchw" if axis in layout)
    stored = np.transpose(kept, [order.index(axis) for axis in layout])
    back = to_nchw(stored, layout, "x")
    assert back.shape == tuple(full.shape[i] if a in layout else 1 for i, a in enumerate("nchw"))
    np.testing.assert_array_equal(back.reshape(kept.shape), kept)


def test_tif_axes_give_the_band_axis():
    assert tif_layout("YXS") == "hwc" and tif_layout("SYX") == "chw"
    assert tif_layout("QYXS") == "nhwc" and tif_layout("QSYX") == "nchw"
    assert tif_layout("QYX") == "hwc" and tif_layout("QQYX") == "nhwc" and tif_layout("YX") == "hw"


def test_scale_warning_rules():
    mixed = scale_warning({"fused": 1.02, "gt": 2047.0}, scaled=False)
    assert mixed.startswith("warning:") and "--fused-scale" in mixed
    assert "--scale" in scale_warning({"fused": 0.98, "gt": 1.0}, scaled=False)
    assert scale_warning({"fused": 0.98, "gt": 1.0}, scaled=True) is None
    assert scale_warning({"fused": 2100.0, "gt": 2047.0}, scaled=False) is None
    assert scale_warning({"fused": 0.0, "gt": 2047.0}, scaled=False) is None


# ---- bad inputs, in process: status 2, exactly one line on stderr, nothing on stdout ----


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("bad")
    fused, gt = _images(5, 1, 4)
    paths = {name: tmp / f"{name}.npy" for name in ("fused", "gt", "gt3", "narrow", "nan", "inf")}
    np.save(paths["fused"], fused)
    np.save(paths["gt"], gt)
    np.save(paths["gt3"], gt[:, :3])
    np.save(paths["narrow"], gt[:, :, :, :60])
    np.save(paths["nan"], np.where(np.arange(SIZE) == 7, np.nan, gt))
    np.save(paths["inf"], np.where(np.arange(SIZE) == 3, np.inf, fused))
    np.save(tmp / "ms.npy", gt[:, :, ::4, ::4])
    np.save(tmp / "pan.npy", gt[:, :1])
    np.save(tmp / "pan2.npy", gt[:, :2])
    paths.update({name: tmp / f"{name}.npy" for name in ("ms", "pan", "pan2")})
    with h5py.File(tmp / "keys.h5", "w") as handle:
        handle["alpha"], handle["beta"] = gt, gt
    paths["keys"] = tmp / "keys.h5"
    for name in ("garbage.h5", "garbage.npy", "garbage.mat", "garbage.tif"):
        (tmp / name).write_bytes(b"not an image at all" * 10)
        paths[name] = tmp / name
    paths["tmp"] = tmp
    return paths


BAD = {
    "shape": (["--gt", "@narrow"], "64 x 60"),
    "bands": (["--gt", "@gt3"], "4 bands but --gt 3"),
    "nan": (["--gt", "@nan"], "NaN or Inf"),
    "inf": (["--fused", "@inf", "--gt", "@gt"], "NaN or Inf"),
    "garbage_h5": (["--gt", "@garbage.h5"], "cannot read"),
    "garbage_npy": (["--gt", "@garbage.npy"], "cannot read"),
    "garbage_mat": (["--gt", "@garbage.mat"], "cannot read"),
    "garbage_tif": (["--gt", "@garbage.tif"], "cannot read"),
    "missing_file": (["--gt", "@absent.npy"], "no such file"),
    "missing_key": (["--gt", "@keys", "--gt-key", "gt"], "alpha, beta"),
    "ambiguous_key": (["--gt", "@keys"], "alpha, beta"),
    "extension": (["--gt", "@gt.png"], "unknown file type"),
    "both": (["--gt", "@gt", "--ms", "@ms", "--pan", "@pan"], "not both"),
    "neither": ([], "give --gt"),
    "no_fused": (["--gt", "@gt", "--fused", "--ratio"], "expected one argument"),
    "pan_only": (["--pan", "@pan"], "both --ms and --pan"),
    "ratio_zero": (["--gt", "@gt", "--ratio", "0"], "integer >= 1"),
    "ratio_float": (["--gt", "@gt", "--ratio", "2.5"], "integer >= 1"),
    "ratio_full": (["--ms", "@ms", "--pan", "@pan", "--ratio", "2"], "--ratio 2 needs 32 x 32"),
    "pan_bands": (["--ms", "@ms", "--pan", "@pan2"], "PAN image has one band"),
    "sensor": (["--ms", "@ms", "--pan", "@pan", "--sensor", "WV9"], "unknown sensor"),
    "sensor_reduced": (["--gt", "@gt", "--sensor", "WV3"], "full resolution"),
    "layout": (["--gt", "@gt", "--gt-layout", "chw"], "names 3 axes"),
    "dim_cut": (["--gt", "@gt", "--dim-cut", "40"], "too small for dim_cut 40"),
    "scale": (["--gt", "@gt", "--scale", "-1"], "positive number"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_is_one_line_and_status_2(files, capsys, case):
    extra, expected = BAD[case]
    # Later options win, so a case may replace --fused or --ratio; '@name' is a file.
    argv = ["--fused", "@fused", "--ratio", "4", *extra]
    argv = [str(files.get(a[1:], files["tmp"] / a[1:])) if a[0] == "@" else a for a in argv]
    with pytest.raises(SystemExit) as stop:
        main(argv)
    out, err = capsys.readouterr()
    assert stop.value.code == 2
    assert out == "" and err.count("\n") == 1 and err.startswith("error: ")
    assert expected in err, err
