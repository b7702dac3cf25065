"""``python -m data.prepare``, grid alignment, region split and the shipped demo data."""

from __future__ import annotations

import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
import scipy.io
import torch

from data.demo import DEMO_ROOT, DEMOS, ensure_demo
from data.prepare import main
from data.prepare_config import PrepareConfig
from data.scene import (
    Grid,
    align,
    grid_offset,
    half_pixel_shift,
    read_bands,
    read_grid,
    read_image,
    write_geotiff,
)
from data.split import Rect, complement, count_patches
from protocols.degrade import wald_protocol
from protocols.resize import upsample
from utils.errors import UserInputError

UTM = 32616


def _interval_mean_sin(start: np.ndarray, size: float, omega: float, phase: float) -> np.ndarray:
    """Mean of sin(omega * t + phase) over [start, start + size] (exact)."""
    end = start + size
    return (np.cos(omega * start + phase) - np.cos(omega * end + phase)) / (omega * size)


def _area_means(rows: np.ndarray, cols: np.ndarray, size: float) -> np.ndarray:
    """Exact means of a smooth 2-D field over the square pixels [r, r+size] x [c, c+size]."""
    wave = np.outer(
        _interval_mean_sin(rows, size, 2 * np.pi / 31, 1.1),
        _interval_mean_sin(cols, size, 2 * np.pi / 23, 0.3),
    )
    return 1000.0 + 300.0 * wave + 4.0 * (cols[None] + size / 2) - 2.0 * (rows[:, None] + size / 2)


def _point_scene(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Landsat-like pixel-is-point pair: MS pixel i centred on PAN pixel 2i+1; PAN one row and
    column larger. Coordinates in PAN pixels, PAN pixel k covering [k, k+1]."""
    pan = _area_means(np.arange(2 * h + 1.0), np.arange(2 * w + 1.0), 1.0)
    ms = _area_means(2 * np.arange(h) + 0.5, 2 * np.arange(w) + 0.5, 2.0)
    return ms, pan


def test_half_pixel_shift_exact_on_ramps_and_constants():
    ramp = torch.arange(40, dtype=torch.float64).expand(1, 2, 30, 40) * 3.0 + 7.0
    shifted = half_pixel_shift(ramp, -1)
    assert shifted.shape == (1, 2, 30, 39)
    expected = (torch.arange(39, dtype=torch.float64) + 0.5) * 3.0 + 7.0
    assert torch.allclose(shifted[..., 6:-6], expected[6:-6].expand(1, 2, 30, 27), atol=1e-7)
    flat = torch.full((1, 1, 9, 12), 512.0, dtype=torch.float32)
    assert torch.allclose(half_pixel_shift(flat, -2), torch.full((1, 1, 8, 12), 512.0))


def test_pixel_is_point_alignment_block_means_match_ms():
    h, w = 24, 28
    ms, pan = _point_scene(h, w)
    aligned_ms, aligned_pan, origin = align(torch.tensor(ms)[None], torch.tensor(pan)[None], 2, (0.5, 0.5))
    assert origin == (0, 0) and aligned_pan.shape == (1, 2 * h, 2 * w)
    blocks = aligned_pan[0].reshape(h, 2, w, 2).mean(dim=(1, 3))
    error = (blocks - aligned_ms[0])[4:-4, 4:-4].abs().max().item()
    naive = torch.tensor(pan[: 2 * h, : 2 * w]).reshape(h, 2, w, 2).mean(dim=(1, 3))
    naive_error = (naive - aligned_ms[0])[4:-4, 4:-4].abs().max().item()
    assert error < 1e-4
    assert naive_error > 10.0


def test_grid_offsets_from_tags(tmp_path):
    ms_grid = Grid(452475.0, 3408645.0, 30.0, 30.0, point=True, crs=UTM)
    pan_grid = Grid(452467.5, 3408652.5, 15.0, 15.0, point=True, crs=UTM)
    write_geotiff(tmp_path / "ms.tif", np.zeros((2, 8, 9), np.uint16), ms_grid)
    write_geotiff(tmp_path / "pan.tif", np.zeros((17, 18), np.uint16), pan_grid)
    assert read_grid(tmp_path / "ms.tif") == ms_grid
    assert grid_offset(read_grid(tmp_path / "ms.tif"), read_grid(tmp_path / "pan.tif"), 2, "auto") == (
        0.5,
        0.5,
    )
    s2_20m = Grid(435720.0, 4179460.0, 20.0, 20.0, crs=32618)
    s2_10m = Grid(435730.0, 4179460.0, 10.0, 10.0, crs=32618)
    assert grid_offset(s2_20m, s2_10m, 2, "auto") == (0.0, -1.0)
    ms, pan, origin = align(torch.zeros(1, 10, 10), torch.zeros(1, 21, 19), 2, (0.0, -1.0))
    assert origin == (0, 1) and ms.shape == (1, 10, 9) and pan.shape == (1, 20, 18)
    with pytest.raises(UserInputError, match="ratio of 3"):
        grid_offset(ms_grid, Grid(0.0, 0.0, 10.0, 10.0, crs=UTM), 2, "auto")


def test_shipped_crops_keep_their_alignment():
    ms_grid, pan_grid = read_grid(DEMO_ROOT / "l8_ms.tif"), read_grid(DEMO_ROOT / "l8_pan.tif")
    assert ms_grid.point and grid_offset(ms_grid, pan_grid, 2, "auto") == (0.5, 0.5)
    s2 = grid_offset(read_grid(DEMO_ROOT / "s2_20m.tif"), read_grid(DEMO_ROOT / "s2_10m.tif"), 2, "auto")
    assert s2 == (0.0, 0.0)
    ms, _ = read_bands([DEMO_ROOT / "l8_ms.tif"], "MS")
    pan, _ = read_bands([DEMO_ROOT / "l8_pan.tif"], "PAN")
    ms, pan = torch.from_numpy(ms.astype(np.float64)), torch.from_numpy(pan.astype(np.float64))

    def residual(ms_crop: torch.Tensor, pan_crop: torch.Tensor) -> float:
        """RMS of the best linear fit of PAN 2 x 2 block means from the MS bands."""
        blocks = pan_crop[0].reshape(ms_crop.shape[1], 2, ms_crop.shape[2], 2).mean(dim=(1, 3))
        design = torch.cat([ms_crop.reshape(7, -1).T, torch.ones(blocks.numel(), 1, dtype=torch.float64)], 1)
        fit = torch.linalg.lstsq(design, blocks.reshape(-1, 1)).solution
        return (design @ fit - blocks.reshape(-1, 1)).pow(2).mean().sqrt().item()

    aligned_ms, aligned_pan, _ = align(ms, pan, 2, (0.5, 0.5))
    good = residual(aligned_ms[:, 4:-4, 4:-4], aligned_pan[:, 8:-8, 8:-8])
    naive = residual(ms[:, 4:-4, 4:-4], pan[:, 8:248, 8:1244])
    assert good < 0.75 * naive


def test_image_formats_agree(tmp_path):
    cube = np.arange(3 * 10 * 12, dtype=np.uint16).reshape(3, 10, 12)
    write_geotiff(tmp_path / "a.tif", cube, Grid(0.0, 0.0, 1.0, 1.0))
    np.save(tmp_path / "a.npy", cube)
    scipy.io.savemat(tmp_path / "a.mat", {"img": cube.transpose(1, 2, 0), "other": np.ones(3)})
    for name in ("a.tif", "a.npy", "a.mat"):
        np.testing.assert_array_equal(read_image(tmp_path / name), cube)
    np.save(tmp_path / "last.npy", cube.transpose(1, 2, 0))
    with pytest.raises(UserInputError, match="bands-first"):
        read_image(tmp_path / "last.npy")
    np.save(tmp_path / "hyper.npy", np.zeros((31, 8, 8)))
    assert read_image(tmp_path / "hyper.npy").shape == (31, 8, 8)
    (tmp_path / "fake.tif").write_bytes(b"not a tiff")
    with pytest.raises(UserInputError, match="not a readable TIFF"):
        read_image(tmp_path / "fake.tif")


def _write_scene(folder: Path, h: int = 40, w: int = 48, pan_size: tuple | None = None) -> None:
    """Tiny pixel-is-area 4-band MS + PAN (ratio 2) with structure, as GeoTIFFs."""
    rows, cols = np.mgrid[0 : 2 * h, 0 : 2 * w]
    pan = 800 + 300 * np.sin(rows / 3.0) * np.cos(cols / 5.0) + 2 * rows
    ms = pan.reshape(h, 2, w, 2).mean(axis=(1, 3))
    bands = np.stack([ms * (0.6 + 0.2 * b) + 40 * b for b in range(4)])
    grid = Grid(5000.0, 9000.0, 20.0, 20.0, crs=UTM)
    write_geotiff(folder / "ms.tif", bands.round().astype(np.uint16), grid)
    pan_grid = Grid(5000.0, 9000.0, 10.0, 10.0, crs=UTM)
    pan = pan if pan_size is None else pan[: pan_size[0], : pan_size[1]]
    write_geotiff(folder / "pan.tif", pan.round().astype(np.uint16), pan_grid)


def _run(tmp_path: Path, *extra: str, guide: tuple = ("--pan",)) -> None:
    pan = (str(tmp_path / "pan.tif"),) if guide == ("--pan",) else ()
    main(
        [
            "--ms",
            str(tmp_path / "ms.tif"),
            *guide,
            *pan,
            "--patch",
            "8",
            "--stride",
            "4",
            "--test-size",
            "16",
            "--out",
            str(tmp_path / "out"),
            "--name",
            "toy",
            "--quiet",
            *extra,
        ]
    )


def _read(path: Path) -> tuple[dict, dict]:
    with h5py.File(path, "r") as file:
        return {k: file[k][()] for k in file}, dict(file.attrs)


def _patch_rects(origins: np.ndarray, size: int) -> list[Rect]:
    return [Rect(int(r), int(c), size, size) for r, c in origins]


def test_prepare_synthetic_scene(tmp_path):
    _write_scene(tmp_path)
    _run(tmp_path, "--test-region", "16,8,16,32", "--augment", "none")  # patches as cut
    out = tmp_path / "out"
    names = {p.name for p in out.iterdir()}
    assert names == {
        "train_toy.h5",
        "valid_toy.h5",
        "test_toy_multiExm1.h5",
        "test_toy_OrigScale_multiExm1.h5",
    }
    train, attrs = _read(out / "train_toy.h5")
    valid, _ = _read(out / "valid_toy.h5")
    reduced, _ = _read(out / "test_toy_multiExm1.h5")
    full, full_attrs = _read(out / "test_toy_OrigScale_multiExm1.h5")
    assert set(train) == {"gt", "ms", "lms", "pan", "origin"} and "gt" not in full
    assert train["gt"].dtype == np.float64 and train["gt"].shape[1:] == (4, 8, 8)
    assert train["ms"].shape[1:] == (4, 4, 4) and train["pan"].shape[1:] == (1, 8, 8)
    assert reduced["gt"].shape == (2, 4, 16, 16) and reduced["ms"].shape == (2, 4, 8, 8)
    assert full["ms"].shape == (2, 4, 16, 16) and full["pan"].shape == (2, 1, 32, 32)
    assert attrs["ratio"] == 2 and attrs["scale"] == 2047 and attrs["sensor"] == "none"
    assert attrs["test_region"] == "[16, 8, 16, 32]" and full_attrs["split"] == "test_full"
    assert "ms.tif" in attrs["sources_ms"] and attrs["layout"] == "pancollection"

    test = Rect(16, 8, 16, 32)
    expected = sum(count_patches(r, 8, 4) for r in complement(40, 48, test))
    assert len(train["gt"]) + len(valid["gt"]) <= expected and len(valid["gt"]) > 0
    train_rects, valid_rects = _patch_rects(train["origin"], 8), _patch_rects(valid["origin"], 8)
    assert not any(r.overlaps(test) for r in train_rects + valid_rects)
    assert not any(a.overlaps(b) for a in train_rects for b in valid_rects)
    ms_scene = read_image(tmp_path / "ms.tif").astype(np.float64)
    pan_scene = read_image(tmp_path / "pan.tif").astype(np.float64)
    for (row, col), gt in zip(train["origin"], train["gt"], strict=True):
        np.testing.assert_array_equal(gt, ms_scene[:, row : row + 8, col : col + 8])
    for i, (row, col) in enumerate(full["origin"]):
        np.testing.assert_array_equal(full["ms"][i], ms_scene[:, row : row + 16, col : col + 16])
        np.testing.assert_array_equal(
            full["pan"][i], pan_scene[:, 2 * row : 2 * row + 32, 2 * col : 2 * col + 32]
        )
    ms_lr, pan_lr = wald_protocol(torch.from_numpy(full["ms"]), torch.from_numpy(full["pan"]), 2)
    np.testing.assert_allclose(reduced["gt"], full["ms"])
    np.testing.assert_allclose(reduced["ms"], ms_lr.numpy(), rtol=1e-12)
    np.testing.assert_allclose(reduced["pan"], pan_lr.numpy(), rtol=1e-12)
    np.testing.assert_allclose(reduced["lms"], upsample(ms_lr, 2).numpy(), rtol=1e-12)


@pytest.mark.parametrize("degrade", ["patch", "region"])
def test_training_patches_degraded_as_chosen(tmp_path, degrade):
    """'patch': every training sample is its own Wald reduction, as a test tile is; 'region': the
    regions are reduced whole, so a patch's lr (its edge rows included) is not its own reduction."""
    _write_scene(tmp_path)
    _run(tmp_path, "--test-region", "16,8,16,32", "--degrade", degrade, "--augment", "none", "--force")
    train, attrs = _read(tmp_path / "out" / "train_toy.h5")
    assert "--degrade " + degrade in attrs["command"]
    pan_scene = read_image(tmp_path / "pan.tif").astype(np.float64)
    pans = np.stack([pan_scene[:, 2 * r : 2 * r + 16, 2 * c : 2 * c + 16] for r, c in train["origin"]])
    ms_lr, pan_lr = wald_protocol(torch.from_numpy(train["gt"]), torch.from_numpy(pans), 2)
    own = np.abs(train["ms"] - ms_lr.numpy()).max(axis=(0, 1))  # 4 x 4 lr pixels
    if degrade == "patch":
        assert own.max() < 1e-9
        np.testing.assert_allclose(train["pan"], pan_lr.numpy(), rtol=1e-12)
        np.testing.assert_allclose(train["lms"], upsample(ms_lr, 2).numpy(), rtol=1e-12)
    else:
        assert own.max() > 1.0 and own[-1].max() > 1.0  # the last row sees the patch's edge
    with pytest.raises(
        UserInputError, match=r"--degrade \(PrepareConfig.degrade\) must be one of patch, region"
    ):
        PrepareConfig(ms=["a.tif"], out="o", name="n", degrade="tile")


def test_refuses_to_overwrite_without_force(tmp_path, capsys):
    _write_scene(tmp_path)
    _run(tmp_path)
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        _run(tmp_path)
    assert exit_info.value.code == 2
    message = capsys.readouterr().err
    assert message.count("\n") == 1 and "--force" in message and "exists" in message
    _run(tmp_path, "--force")


@pytest.mark.parametrize(
    ("pan_size", "extra", "phrase"),
    [
        (None, ("--ratio", "3"), "do not match --ratio 3"),
        ((80, 60), (), "no common integer ratio"),
        (None, ("--patch", "7"), "multiple of the ratio"),
        (None, ("--test-region", "30,0,16,16"), "leaves the aligned scene"),
        (None, ("--sensor", "WV9"), "unknown sensor"),
        (None, ("--grid", "corner"), "invalid choice"),
    ],
)
def test_bad_input_is_one_line_exit_2(tmp_path, capsys, pan_size, extra, phrase):
    _write_scene(tmp_path, pan_size=pan_size)
    with pytest.raises(SystemExit) as exit_info:
        _run(tmp_path, *extra)
    message = capsys.readouterr().err
    assert exit_info.value.code == 2 and message.count("\n") == 1 and phrase in message


def test_synthetic_guides(tmp_path):
    _write_scene(tmp_path)
    _run(tmp_path, "--ratio", "2", guide=("--pan-weights", "0.1,0.2,0.3,0.4"))
    out = tmp_path / "out"
    assert not (out / "test_toy_OrigScale_multiExm1.h5").exists()
    reduced, _ = _read(out / "test_toy_multiExm1.h5")
    weights = np.array([0.1, 0.2, 0.3, 0.4])[None, :, None, None]
    np.testing.assert_allclose(reduced["pan"][:, 0], (reduced["gt"] * weights).sum(1))
    _run(tmp_path, "--ratio", "2", "--force", guide=("--guide-bands", "0,2"))
    train, attrs = _read(out / "train_toy.h5")
    assert {"GT", "LRHSI", "HSI_up", "RGB"} <= set(train) and attrs["layout"] == "hyperspectral"
    np.testing.assert_array_equal(train["RGB"], train["GT"][:, [0, 2]])


def test_ensure_demo_landsat8(tmp_path):
    demo = DEMOS["landsat8"]
    for name in (*demo.ms, *demo.pan):
        shutil.copy(DEMO_ROOT / name, tmp_path / name)
    paths = ensure_demo("landsat8", root=tmp_path)
    counts = {}
    for key, path in paths.items():
        with h5py.File(path, "r") as file:
            counts[key] = file["ms"].shape[0]
            assert file.attrs["scale"] == 32767 and file.attrs["grid_offset"] == "[0.5, 0.5]"
    # 156 training patches, each in all eight flips and turns
    assert counts == {"train": 8 * 156, "valid": 18, "test_reduced": 4, "test_full": 4}
    stamp = paths["train"].stat().st_mtime_ns
    assert ensure_demo("landsat8", root=tmp_path)["train"].stat().st_mtime_ns == stamp
    with pytest.raises(UserInputError, match="did you mean 'landsat8'"):
        ensure_demo("landsat", root=tmp_path)


def test_a_configuration_and_its_command_line_are_one(tmp_path):
    """The typed configuration (the library's input) and the command line describe each other."""
    from data.prepare import parse_args
    from data.prepare_config import PrepareConfig
    from data.split import Rect

    config = PrepareConfig(
        ms=["a.tif", "b.tif"],
        out=str(tmp_path),
        name="scene",
        pan_weights=[0.25, 0.125, 0.1234567891],
        ratio=4,
        gains=[0.3, 0.31, 0.29],
        patch=32,
        test_region=Rect(0, 8, 64, 64),
        scale=2047,
        augment="dihedral",
    )
    assert config.stride == 16
    again, quiet = parse_args(config.argv())
    assert again == config and not quiet
    assert "--pan-weights 0.25,0.125,0.1234567891" in config.command_line()
    with pytest.raises(UserInputError, match="--gains must be comma-separated numbers"):
        parse_args([*config.argv(), "--gains", "0.3,x"])


def test_full_train_writes_the_training_regions_at_native_resolution(tmp_path):
    """``--full-train`` (the demo 'landsat8_fullres'): the four usual files (training patches as
    cut, without the eight transforms), plus the training and validation regions at native
    resolution without gt, patch for patch at the origins of the reduced-resolution files, ms =
    the scene's own MS pixels."""
    for name in ("l8_ms.tif", "l8_pan.tif"):
        shutil.copy(DEMO_ROOT / name, tmp_path / name)
    paths = ensure_demo("landsat8_fullres", root=tmp_path)
    assert set(paths) == {"train", "valid", "test_reduced", "test_full", "train_full", "valid_full"}
    assert "--full-train" in h5py.File(paths["train"], "r").attrs["command"]
    for split in ("train", "valid"):
        with h5py.File(paths[split], "r") as reduced, h5py.File(paths[f"{split}_full"], "r") as full:
            assert "gt" not in full and full.attrs["split"] == f"{split}_full"
            np.testing.assert_array_equal(full["origin"][()], reduced["origin"][()])
            assert full["ms"].shape[2:] == (32, 32) and full["pan"].shape[2:] == full["lms"].shape[2:] == (
                64,
                64,
            )
            assert full["ms"].shape[0] == reduced["ms"].shape[0]
            # the native MS patch is what Wald's protocol turned into the reduced patch's gt
            np.testing.assert_array_equal(full["ms"][0][:, :32, :32], reduced["gt"][0])
    from data.prepare import prepare
    from data.prepare_config import PrepareConfig

    synthetic = PrepareConfig(
        ms=[str(tmp_path / "l8_ms.tif")], out=str(tmp_path / "x"), name="x", pan_weights=[0.1] * 7, ratio=2
    )
    synthetic.full_train = True
    with pytest.raises(UserInputError, match="--full-train needs a real guide"):
        prepare(synthetic, progress=False)
