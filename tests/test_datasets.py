"""HDF5 datasets: the three public layouts, lazy reading, augmentation, and every input check."""

from __future__ import annotations

import pickle
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from data.augment import TRANSPOSE, apply_dihedral, draw_transform
from data.datasets import (
    DATASETS,
    LAYOUTS,
    FusionH5Dataset,
    check_compatible,
    check_min_size,
    detect_layout,
)
from engine.training_parts import augment_batch
from utils.errors import UserInputError

DATA = Path(__file__).parent / "data"

# file, scale, layout, N, (lr C, h, w), (guide C), (H, W), ratio, has gt
FIXTURES = {
    "wv3": ("pancollection/train_wv3_tiny.h5", 2047, "pancollection", 4, (8, 4, 4), 1, (16, 16), 4, True),
    "wv3_full": (
        "pancollection/test_wv3_OrigScale_tiny.h5",
        2047,
        "pancollection",
        2,
        (8, 8, 8),
        1,
        (32, 32),
        4,
        False,
    ),
    "pavia": ("hyperpan/train_pavia_tiny.h5", 4095, "hyperpan", 3, (12, 4, 4), 1, (16, 16), 4, True),
    "cave": (
        "hyperspectral/train_cave_x8_tiny.h5",
        1.0,
        "hyperspectral",
        2,
        (31, 4, 4),
        3,
        (32, 32),
        8,
        True,
    ),
}
# the eight elements of the dihedral group: quarter turns x optional row flip
DIHEDRAL = [(turns, flip, False) for turns in range(4) for flip in (False, True)]


def open_fixture(name: str, **kwargs) -> FusionH5Dataset:
    path, scale = FIXTURES[name][:2]
    return FusionH5Dataset(str(DATA / path), scale, **kwargs)


def write_h5(path: Path, arrays: dict) -> str:
    """Write ``arrays`` (None values: an empty group) into a new HDF5 file; return its path."""
    with h5py.File(path, "w") as file:
        for key, value in arrays.items():
            if value is None:
                file.create_group(key)
            else:
                file.create_dataset(key, data=value)
    return str(path)


def write_text(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


def pan_arrays(
    n: int = 3, bands: int = 4, size: tuple[int, int] = (8, 8), ratio: int = 2, seed: int = 0
) -> dict[str, np.ndarray]:
    """A valid PanCollection sample set at 11-bit DN; ``lms`` is ``ms`` nearest-upsampled."""
    rng = np.random.default_rng(seed)
    gt = rng.uniform(0, 2000, (n, bands, *size))
    h, w = size[0] // ratio, size[1] // ratio
    ms = gt.reshape(n, bands, h, ratio, w, ratio).mean(axis=(3, 5))
    lms = ms.repeat(ratio, axis=2).repeat(ratio, axis=3)
    return {"gt": gt, "ms": ms, "lms": lms, "pan": gt.mean(axis=1, keepdims=True)}


@pytest.mark.parametrize("name", FIXTURES)
def test_fixture_layouts_load_with_exact_scaling(name):
    path, scale, layout, n, lr_shape, guide_c, size, ratio, has_gt = FIXTURES[name]
    for chosen in ("auto", layout):
        ds = open_fixture(name, layout=chosen)
        assert (ds.layout, len(ds), ds.ratio, ds.has_gt) == (layout, n, ratio, has_gt)
        assert (ds.lr_channels, ds.guide_channels) == (lr_shape[0], guide_c)
        assert (ds.lr_size, ds.size) == (lr_shape[1:], size)
    keys = LAYOUTS[layout]
    with h5py.File(DATA / path, "r") as file:
        for index in range(n):
            sample = ds[index]
            assert sample["index"] == index
            assert set(sample) == {"lr", "up", "guide", "index"} | ({"gt"} if has_gt else set())
            assert sample["lr"].shape == lr_shape
            assert sample["guide"].shape == (guide_c, *size)
            for field in set(sample) - {"index"}:
                expected = (file[keys[field]][index] / scale).astype(np.float32)
                assert sample[field].dtype == torch.float32
                assert torch.equal(sample[field], torch.from_numpy(expected))


def test_scaled_values_are_about_unit_range():
    for name in FIXTURES:
        ds = open_fixture(name)
        peak = max(float(ds[i][f].max()) for i in range(len(ds)) for f in ("lr", "up", "guide"))
        assert 0.5 < peak <= 1.0


def test_full_resolution_file_has_no_gt_and_require_gt_refuses_it():
    ds = open_fixture("wv3_full")
    assert not ds.has_gt and "gt" not in ds[1]
    with pytest.raises(UserInputError, match="no ground-truth key 'gt'"):
        open_fixture("wv3_full", require_gt=True)
    assert open_fixture("wv3", require_gt=True).has_gt


@pytest.mark.parametrize("dtype", [np.float32, np.uint16])
def test_float32_and_uint16_files(tmp_path, dtype):
    arrays = {k: np.rint(v).astype(dtype) for k, v in pan_arrays().items()}
    ds = FusionH5Dataset(write_h5(tmp_path / "d.h5", arrays), 2047)
    expected = (arrays["pan"][2].astype(np.float64) / 2047).astype(np.float32)
    assert torch.equal(ds[2]["guide"], torch.from_numpy(expected))


def test_registry_max_samples_and_negative_index():
    path = str(DATA / FIXTURES["wv3"][0])
    ds = DATASETS.build("FusionH5Dataset", path=path, scale=2047, max_samples=2)
    assert isinstance(ds, FusionH5Dataset) and len(ds) == 2
    assert ds[-1]["index"] == 1
    with pytest.raises(IndexError):
        ds[2]


def test_file_is_closed_after_init_and_reopened_per_process():
    ds = open_fixture("wv3")
    assert ds._file is None
    first = ds[0]
    handle = ds._file
    assert handle is not None and ds[1] and ds._file is handle
    ds._pid = -1  # as seen from a forked worker
    assert torch.equal(ds[0]["gt"], first["gt"]) and ds._file is not handle
    clone = pickle.loads(pickle.dumps(ds))
    assert clone._file is None and torch.equal(clone[0]["up"], first["up"])
    ds.close()
    assert ds._file is None


def test_reads_index_one_sample_at_a_time(monkeypatch):
    requests = []
    original = h5py.Dataset.__getitem__

    def spy(self, args, *rest, **kwargs):
        requests.append(args)
        return original(self, args, *rest, **kwargs)

    monkeypatch.setattr(h5py.Dataset, "__getitem__", spy)
    ds = open_fixture("wv3")
    checked = len(requests)
    ds[1]
    assert checked == 3 * 4  # samples 0, 2, 3 of the four keys
    assert len(requests) == checked + 4
    assert all(isinstance(a, (int, np.integer)) for a in requests)


def test_datasets_are_looked_up_by_name_once_per_process(monkeypatch):
    lookups = []
    original = h5py.Group.__getitem__

    def spy(self, name):
        lookups.append(name)
        return original(self, name)

    ds = open_fixture("wv3")
    monkeypatch.setattr(h5py.Group, "__getitem__", spy)
    first = [ds[i % 4]["gt"] for i in range(10)]
    assert sorted(lookups) == sorted(ds.keys.values())  # one lookup per key, not one per read
    ds.close()
    assert ds._arrays == {} and torch.equal(ds[0]["gt"], first[0])  # reopened after close
    assert len(lookups) == 8


def test_dataloader_with_two_workers():
    ds = open_fixture("wv3")
    reference = [ds[i] for i in range(len(ds))]  # opens a handle before the workers fork
    loader = DataLoader(ds, batch_size=2, num_workers=2, shuffle=False)
    batches = list(loader)
    assert [b["gt"].shape for b in batches] == [(2, 8, 16, 16)] * 2
    indices = torch.cat([b["index"] for b in batches]).tolist()
    assert indices == [0, 1, 2, 3]
    for field in ("lr", "up", "guide", "gt"):
        stacked = torch.cat([b[field] for b in batches])
        assert torch.equal(stacked, torch.stack([r[field] for r in reference]))


def nearest_up(lr: torch.Tensor, ratio: int) -> torch.Tensor:
    return lr.repeat_interleave(ratio, dim=-2).repeat_interleave(ratio, dim=-1)


def matching_transform(before: torch.Tensor, after: torch.Tensor, candidates) -> tuple:
    found = [t for t in candidates if torch.equal(apply_dihedral(before, t), after)]
    assert len(found) == 1
    return found[0]


@pytest.mark.parametrize("size", [(8, 8), (8, 4)])
def test_augmentation_keeps_fields_aligned(tmp_path, size):
    arrays = {k: v / 2047 for k, v in pan_arrays(size=size).items()}
    plain = FusionH5Dataset(write_h5(tmp_path / "a.h5", arrays), 1.0)
    original = plain[1]

    def augmented(seed: int) -> dict:
        """Training's augmentation (engine.training_parts.augment_batch) of sample 1 alone."""
        batch = {k: v[None] for k, v in original.items() if torch.is_tensor(v) and v.dim() == 3}
        out = augment_batch(batch, torch.Generator().manual_seed(seed))
        return {k: v[0] for k, v in out.items()}

    square = size[0] == size[1]
    candidates = DIHEDRAL if square else [(0, r, c) for r in (False, True) for c in (False, True)]
    seen = set()
    for seed in range(48):
        sample = augmented(seed)
        transform = matching_transform(original["gt"], sample["gt"], candidates)
        seen.add(transform)
        for field in ("lr", "up", "guide"):
            assert torch.equal(sample[field], apply_dihedral(original[field], transform))
        assert torch.equal(sample["up"], nearest_up(sample["lr"], 2))
        assert torch.equal(augmented(seed)["gt"], sample["gt"])
    assert seen == set(candidates)
    assert torch.equal(plain[1]["gt"], original["gt"])


@pytest.mark.parametrize("ratio", [2, 3, 4])
def test_transpose_group_keeps_the_decimation_phase(ratio):
    """The toolbox keeps gt rows/cols ratio * i + ratio // 2; decimating a transformed gt must equal
    transforming the decimated gt. The transpose keeps that for every ratio, a flip only for odd
    ones (a flipped patch has its samples at ratio * i + ratio - 1 - ratio // 2)."""
    size = 4 * ratio
    gt = torch.arange(size * size, dtype=torch.float64).reshape(1, size, size)
    start = ratio // 2

    def decimate(x: torch.Tensor) -> torch.Tensor:
        return x[..., start::ratio, start::ratio]

    def commutes(transform) -> bool:
        return torch.equal(decimate(apply_dihedral(gt, transform)), apply_dihedral(decimate(gt), transform))

    assert TRANSPOSE == (1, True, False) and torch.equal(apply_dihedral(gt, TRANSPOSE), gt.transpose(-2, -1))
    assert commutes(TRANSPOSE)
    assert commutes((0, True, False)) == commutes((0, False, True)) == (ratio % 2 == 1)
    draws = {draw_transform("transpose", True, torch.Generator().manual_seed(s)) for s in range(32)}
    assert draws == {(0, False, False), TRANSPOSE}
    assert {draw_transform("transpose", False, torch.Generator().manual_seed(s)) for s in range(8)} == {
        (0, False, False)
    }


def test_detect_layout():
    assert detect_layout(["gt", "ms", "lms", "pan"]) == "pancollection"
    assert detect_layout(["MS", "LMS", "PAN", "extra"]) == "hyperpan"
    assert detect_layout(["GT", "LRHSI", "HSI_up", "RGB"]) == "hyperspectral"
    with pytest.raises(UserInputError, match=r"missing key \['lms'\] of the closest layout"):
        detect_layout(["gt", "ms", "pan"])


def upper(arrays: dict) -> dict:
    return {k.upper(): v for k, v in arrays.items()}


def without(arrays: dict, key: str) -> dict:
    return {k: v for k, v in arrays.items() if k != key}


def replaced(arrays: dict, **changes) -> dict:
    return {**arrays, **changes}


def bands_last(arrays: dict, *keys: str) -> dict:
    return {k: v.transpose(0, 2, 3, 1) if k in keys else v for k, v in arrays.items()}


def with_value(arrays: dict, key: str, index: int, value: float) -> dict:
    changed = arrays[key].copy()
    changed[index, 0, 0, 0] = value
    return replaced(arrays, **{key: changed})


GOOD = pan_arrays()
# case -> (arrays, dataset options, phrase expected in the one-line message)
BAD_FILES = {
    "missing_key": (without(GOOD, "lms"), {"layout": "pancollection"}, "missing key ['lms']"),
    "missing_key_auto": (without(GOOD, "lms"), {}, "no known layout matches"),
    "other_layout": (upper(GOOD), {"layout": "pancollection"}, "look like layout 'hyperpan'"),
    "unknown_layout": (GOOD, {"layout": "pancolection"}, "did you mean 'pancollection'"),
    "group": (replaced(GOOD, pan=None), {}, "'pan' is a group"),
    "not_numeric": (replaced(GOOD, pan=np.zeros((3, 1, 8, 8), "S1")), {}, "not numeric"),
    "not_4d": (replaced(GOOD, pan=GOOD["pan"][:, 0]), {}, "not 4-D"),
    "n_differs": (replaced(GOOD, pan=GOOD["pan"][:2]), {}, "sample count N differs"),
    "spatial": (replaced(GOOD, pan=GOOD["pan"][..., :6, :6]), {}, "spatial size differs"),
    "ratio_not_integer": (replaced(GOOD, ms=GOOD["ms"][..., :3, :3]), {}, "not an integer"),
    "ratio_axes": (replaced(GOOD, ms=GOOD["ms"][..., :2]), {}, "ratio differs between axes"),
    "ratio_configured": (GOOD, {"ratio": 4}, "ratio is 2"),
    "up_bands": (replaced(GOOD, lms=GOOD["lms"][:, :3]), {}, "band count differs"),
    "gt_bands": (replaced(GOOD, gt=GOOD["gt"][:, :3]), {}, "band count differs"),
    "all_bands_last": (bands_last(GOOD, *GOOD), {}, "bands last? store as N x C x H x W"),
    "gt_bands_last": (bands_last(GOOD, "gt"), {}, "bands last? store as N x C x H x W"),
    "swapped": (replaced(GOOD, ms=GOOD["lms"], lms=GOOD["ms"]), {}, "look swapped"),
    "empty": ({k: v[:0] for k, v in GOOD.items()}, {}, "empty (N = 0"),
    "nan": (with_value(GOOD, "gt", 1, np.nan), {}, "NaN or Inf pixels in 'gt' sample 1"),
    "inf": (with_value(GOOD, "pan", 2, np.inf), {}, "NaN or Inf pixels in 'pan' sample 2"),
    "exceeds": ({k: v * 20 for k, v in GOOD.items()}, {}, "exceed scale 2047: set scale"),
    "exceeds_16bit": ({k: v * 20 for k, v in GOOD.items()}, {}, "here 65535"),
    "exceeds_11bit": (
        GOOD,
        {"scale": 1023},
        "exceed scale 1023: set scale to the data's bit-depth maximum, here 2047",
    ),
    "normalised": ({k: v / 2047 for k, v in GOOD.items()}, {}, "already normalised to [0, 1]"),
    "negative": (with_value(GOOD, "lms", 0, -5000.0), {}, "far below 0"),
    "no_gt_required": (without(GOOD, "gt"), {"require_gt": True}, "no ground-truth key"),
}


@pytest.mark.parametrize("case", BAD_FILES)
def test_bad_file_is_refused_with_one_line(tmp_path, case):
    arrays, options, phrase = BAD_FILES[case]
    path = write_h5(tmp_path / f"{case}.h5", arrays)
    with pytest.raises(UserInputError) as info:
        FusionH5Dataset(path, **{"scale": 2047, **options})
    message = str(info.value)
    assert phrase in message and path in message and "\n" not in message


def test_good_base_file_is_accepted(tmp_path):
    ds = FusionH5Dataset(write_h5(tmp_path / "good.h5", GOOD), 2047)
    assert (len(ds), ds.ratio, ds.lr_channels) == (3, 2, 4)


@pytest.mark.parametrize(
    ("make", "options", "phrase"),
    [
        (lambda p: str(p / "nope.h5"), {}, "does not exist"),
        (lambda p: str(p), {}, "is a directory"),
        (lambda p: write_text(p / "t.h5", "gt ms lms pan"), {}, "is not an HDF5 file"),
        (lambda p: write_h5(p / "g.h5", GOOD), {"scale": 0}, "scale must be a positive number"),
        (lambda p: write_h5(p / "g.h5", GOOD), {"scale": "abc"}, "scale must be a positive"),
        (lambda p: write_h5(p / "g.h5", GOOD), {"max_samples": 0}, "max_samples must be >= 1"),
    ],
)
def test_bad_path_or_option_is_refused(tmp_path, make, options, phrase):
    path = make(tmp_path)
    kwargs = {"scale": 2047, **options}
    with pytest.raises(UserInputError) as info:
        FusionH5Dataset(path, **kwargs)
    assert phrase in str(info.value) and "\n" not in str(info.value)


def test_nan_in_an_unchecked_sample_is_refused_when_read(tmp_path):
    arrays = with_value(pan_arrays(n=5), "ms", 1, np.nan)
    ds = FusionH5Dataset(write_h5(tmp_path / "n.h5", arrays), 2047)  # checks samples 0, 2, 4
    assert torch.isfinite(ds[0]["lr"]).all()
    with pytest.raises(UserInputError, match=r"NaN or Inf pixels in \['ms'\] of sample 1"):
        ds[1]


def test_check_compatible(tmp_path):
    wv3, pavia = open_fixture("wv3"), open_fixture("pavia")
    check_compatible(wv3, open_fixture("wv3_full"), "test set")
    with pytest.raises(UserInputError, match=r"validation set .* \(lr bands 8 vs 12\)"):
        check_compatible(wv3, pavia, "validation set")
    ratio2 = FusionH5Dataset(write_h5(tmp_path / "r2.h5", pan_arrays(bands=8)), 2047)
    with pytest.raises(UserInputError, match=r"\(ratio 4 vs 2\)"):
        check_compatible(wv3, ratio2, "test set")
    with pytest.raises(UserInputError, match="guide bands 1 vs 3"):
        check_compatible(pavia, open_fixture("cave"), "test set")


def test_check_min_size():
    ds = open_fixture("wv3")
    check_min_size(ds, 16)
    with pytest.raises(UserInputError, match="16x16.*smaller than the patch size 32"):
        check_min_size(ds, 32)
    with pytest.raises(UserInputError, match="patch size must be >= 1"):
        check_min_size(ds, 0)
