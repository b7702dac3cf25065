"""``python -m data.prepare --augment dihedral`` (the default with ``--degrade patch``): every
training patch in all eight flips and quarter turns, each degraded on its own, so that each copy
has a real file's decimation phase."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from data.augment import TRANSPOSE, all_dihedral, apply_dihedral
from data.prepare import main
from data.prepare_config import PrepareConfig
from protocols.degrade import mtf_filter, wald_protocol
from protocols.mtf import sensor_kernel
from protocols.resize import upsample
from utils.errors import UserInputError


def _scene(folder: Path, h: int = 40, w: int = 48) -> None:
    """A 4-band MS (C x h x w) and its PAN (1 x 2h x 2w) as .npy, pixel-is-area, with structure
    that is not symmetric under any flip (a ramp and two incommensurate waves)."""
    rows, cols = np.mgrid[0 : 2 * h, 0 : 2 * w]
    pan = 800 + 300 * np.sin(rows / 3.0) * np.cos(cols / 5.0) + 2 * rows + 0.7 * cols
    ms = pan.reshape(h, 2, w, 2).mean(axis=(1, 3))
    np.save(folder / "ms.npy", np.stack([ms * (0.6 + 0.2 * b) + 40 * b for b in range(4)]))
    np.save(folder / "pan.npy", pan[None])


def _prepare(folder: Path, out: str, *extra: str) -> tuple[dict, dict, dict]:
    main(
        [
            "--ms", str(folder / "ms.npy"), "--pan", str(folder / "pan.npy"),
            "--grid", "pixel-is-area", "--patch", "8", "--stride", "4", "--test-size", "16",
            "--test-region", "16,8,16,32", "--out", str(folder / out), "--name", "toy", "--quiet",
            *extra,
        ]
    )  # fmt: skip

    def read(split: str) -> tuple[dict, dict]:
        with h5py.File(folder / out / f"{split}_toy.h5", "r") as file:
            return {k: file[k][()] for k in file}, dict(file.attrs)

    (train, attrs), (valid, _) = read("train"), read("valid")
    return train, valid, attrs


def test_eight_transforms_of_every_training_patch(tmp_path):
    _scene(tmp_path)
    plain, valid, plain_attrs = _prepare(tmp_path, "plain", "--augment", "none")
    eight, valid8, attrs = _prepare(tmp_path, "eight", "--augment", "dihedral")
    default, _, default_attrs = _prepare(tmp_path, "default")
    assert plain_attrs["train_augment"] == "none" and default_attrs["train_augment"] == "dihedral"
    for key in eight:  # the default is all eight transforms
        np.testing.assert_array_equal(default[key], eight[key])
    transforms = all_dihedral()
    assert len(set(transforms)) == 8 and transforms[0] == (0, False, False)
    n = len(plain["gt"])
    assert len(eight["gt"]) == 8 * n and attrs["train_augment"] == "dihedral"
    assert "--augment dihedral" in attrs["command"]
    for key in valid:  # validation is never augmented
        np.testing.assert_array_equal(valid8[key], valid[key])
    np.testing.assert_array_equal(eight["origin"], np.repeat(plain["origin"], 8, axis=0))
    copies = {k: v.reshape(n, 8, *v.shape[1:]) for k, v in eight.items() if k != "origin"}
    for key in copies:  # the identity copy is the plain sample
        np.testing.assert_array_equal(copies[key][:, 0], plain[key])

    # The transpose keeps the grid: its copy is the plain sample transposed, every field.
    t = transforms.index(TRANSPOSE)
    for key in copies:
        np.testing.assert_allclose(copies[key][:, t], plain[key].swapaxes(-1, -2), rtol=1e-12, atol=1e-9)

    # Every copy is the Wald reduction of its own transformed full-resolution patch.
    gt = torch.from_numpy(plain["gt"])
    pan_scene = torch.from_numpy(np.load(tmp_path / "pan.npy"))
    pans = torch.stack([pan_scene[:, 2 * r : 2 * r + 16, 2 * c : 2 * c + 16] for r, c in plain["origin"]])
    for i, transform in enumerate(transforms):
        ms_lr, pan_lr = wald_protocol(apply_dihedral(gt, transform), apply_dihedral(pans, transform), 2)
        np.testing.assert_array_equal(copies["gt"][:, i], apply_dihedral(gt, transform).numpy())
        np.testing.assert_allclose(copies["ms"][:, i], ms_lr.numpy(), rtol=1e-12)
        np.testing.assert_allclose(copies["pan"][:, i], pan_lr.numpy(), rtol=1e-12)
        np.testing.assert_allclose(copies["lms"][:, i], upsample(ms_lr, 2).numpy(), rtol=1e-12)

    # A row flip moves the decimation phase: flipping the plain lr is not the flipped copy's lr;
    # that is the other phase (rows 0, 2, ...) of the same filtered patch, flipped.
    f = transforms.index((0, True, False))
    filtered = mtf_filter(gt, sensor_kernel("none", 2, 4)).numpy()
    flipped_other_phase = filtered[..., 0::2, 1::2][..., ::-1, :]
    np.testing.assert_allclose(copies["ms"][:, f], flipped_other_phase, rtol=1e-10)
    assert np.abs(copies["ms"][:, f] - plain["ms"][..., ::-1, :]).max() > 1.0


def test_augment_refuses_region_degradation_and_unknown_modes(tmp_path, capsys):
    _scene(tmp_path)
    region, _, attrs = _prepare(tmp_path, "region", "--degrade", "region")  # default: none there
    assert attrs["train_augment"] == "none" and len(region["gt"]) == len(region["origin"])
    with pytest.raises(SystemExit) as exit_info:
        _prepare(tmp_path, "x", "--augment", "dihedral", "--degrade", "region")
    message = capsys.readouterr().err
    assert exit_info.value.code == 2 and message.count("\n") == 1
    assert "--augment dihedral needs --degrade patch" in message
    with pytest.raises(UserInputError, match="--augment must be one of none, dihedral, got 'flips'"):
        PrepareConfig(ms=["a.tif"], out="o", name="n", augment="flips")
    assert PrepareConfig(ms=["a.tif"], out="o", name="n", full_train=True).augment == "none"
    with pytest.raises(UserInputError, match="--augment dihedral and --full-train: .* add --augment none"):
        PrepareConfig(ms=["a.tif"], out="o", name="n", full_train=True, augment="dihedral")


def test_default_falls_back_to_each_patch_once_when_memory_is_short(tmp_path, monkeypatch, capsys):
    """The default eight copies are dropped, with one printed line, when the training file would
    take more than a third of the free memory; a given --augment dihedral is kept."""
    import data.prepare_config as prepare_config
    from data.split import Rect

    config = PrepareConfig(ms=["a.tif"], out="o", name="n", patch=8, stride=4)
    regions = [Rect(0, 0, 16, 16)]  # 9 patches of 4 bands 8 x 8, ratio 2, one guide band
    per_sample = 8 * (2 * 4 * 64 + 4 * 16 + 64)
    assert prepare_config.training_bytes(config, regions, 4, 1, 2) == 9 * 8 * per_sample
    assert prepare_config.fit_augment(config, 1000, free=3000) is None and config.augment == "dihedral"
    note = prepare_config.fit_augment(config, 1000, free=2999)
    assert config.augment == "none" and "pass --augment dihedral" in note and note.count("\n") == 0
    given = PrepareConfig(ms=["a.tif"], out="o", name="n", augment="dihedral")
    assert prepare_config.fit_augment(given, 1000, free=10) is None and given.augment == "dihedral"

    _scene(tmp_path)
    monkeypatch.setattr(prepare_config, "free_memory", lambda: 10_000)
    once, _, attrs = _prepare(tmp_path, "short")
    assert attrs["train_augment"] == "none" and "--augment none" in attrs["command"]
    assert len(once["gt"]) == len(once["origin"]) and "free memory" in capsys.readouterr().out
    eight, _, attrs = _prepare(tmp_path, "given", "--augment", "dihedral")
    assert attrs["train_augment"] == "dihedral" and len(eight["gt"]) == 8 * len(once["gt"])
