"""Write the tiny HDF5 fixtures of the three public layouts under tests/data/<layout>/.

Usage: ``python tests/data/make_fixtures.py``. Seeded: running it again writes identical files.
Arrays are N x C x H x W float64 at digital-number scale, under the public keys:

| file | keys | N | bands | H x W (low-res) | ratio | values |
|---|---|---|---|---|---|---|
| pancollection/train_wv3_tiny.h5 | gt, ms, lms, pan | 4 | 8 | 16x16 (4x4) | 4 | 0..2047 |
| pancollection/test_wv3_OrigScale_tiny.h5 | ms, lms, pan | 2 | 8 | 32x32 (8x8) | 4 | 0..2047 |
| hyperpan/train_pavia_tiny.h5 | GT, MS, LMS, PAN | 3 | 12 | 16x16 (4x4) | 4 | 0..4095 |
| hyperspectral/train_cave_x8_tiny.h5 | GT, LRHSI, HSI_up, RGB | 2 | 31 | 32x32 (4x4) | 8 | 0..1 |

The CAVE-like file is stored gzip-compressed per sample (values on a 1/256 grid) to stay under
200 KB; h5py reads it like the uncompressed public files.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).parent


def scene(rng: np.random.Generator, n: int, bands: int, size: int) -> np.ndarray:
    """n x bands x size x size reflectances in [0, 1]: three smooth abundance maps mixing three
    smooth spectra, stretched to [0, 0.95], plus a little noise."""
    grid = np.linspace(0.0, 1.0, size)
    rows, cols = np.meshgrid(grid, grid, indexing="ij")
    freq = rng.uniform(0.5, 3.0, (n, 3, 2, 1, 1))
    phase = rng.uniform(0.0, 2 * np.pi, (n, 3, 1, 1))
    waves = 2 * np.pi * (freq[:, :, 0] * rows + freq[:, :, 1] * cols) + phase
    abundance = 0.5 + 0.5 * np.sin(waves)
    steps = rng.uniform(-0.2, 0.2, (3, bands))
    spectra = np.clip(rng.uniform(0.3, 0.7, (3, 1)) + np.cumsum(steps, axis=1) / 3, 0.05, 0.95)
    image = np.einsum("nkhw,kc->nchw", abundance, spectra)
    image = 0.95 * (image - image.min()) / (image.max() - image.min())
    return np.clip(image + 0.02 * rng.standard_normal(image.shape), 0.0, 1.0)


def degrade(image: np.ndarray, ratio: int) -> tuple[np.ndarray, np.ndarray]:
    """(low-res block mean N x C x H/r x W/r, its bicubic upsampling N x C x H x W)."""
    n, c, h, w = image.shape
    low = image.reshape(n, c, h // ratio, ratio, w // ratio, ratio).mean(axis=(3, 5))
    up = F.interpolate(torch.from_numpy(low), scale_factor=ratio, mode="bicubic", align_corners=False)
    return low, up.numpy()


def band_means(image: np.ndarray, groups: int) -> np.ndarray:
    """N x groups x H x W: the mean of ``groups`` contiguous slices of the bands."""
    return np.stack([part.mean(axis=1) for part in np.array_split(image, groups, axis=1)], axis=1)


def write(path: Path, arrays: dict[str, np.ndarray], compress: bool = False) -> None:
    """Write ``arrays`` as float64 datasets (optionally gzip per sample) into a new file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as file:
        for key, value in arrays.items():
            options = (
                dict(chunks=(1, *value.shape[1:]), compression="gzip", compression_opts=9, shuffle=True)
                if compress
                else {}
            )
            file.create_dataset(key, data=value.astype(np.float64), track_times=False, **options)


def pancollection(rng: np.random.Generator, n: int, size: int, with_gt: bool) -> dict:
    """WV3-like 8-band MS + PAN at 11-bit DN, ratio 4 (reduced resolution or, without gt, full)."""
    truth = scene(rng, n, 8, size) * 2047
    ms, lms = degrade(truth, 4)
    pan = np.rint(band_means(truth, 1))
    fields = {"gt": np.rint(truth)} if with_gt else {}
    return {**fields, "ms": ms, "lms": lms, "pan": pan}


def hyperpan(rng: np.random.Generator) -> dict:
    """Pavia-like 12-band HS + PAN at 12-bit DN, ratio 4."""
    truth = np.rint(scene(rng, 3, 12, 16) * 4095)
    ms, lms = degrade(truth, 4)
    return {"GT": truth, "MS": ms, "LMS": lms, "PAN": np.rint(band_means(truth, 1))}


def hyperspectral(rng: np.random.Generator) -> dict:
    """CAVE-like 31-band HS + 3-band RGB in [0, 1] on a 1/256 grid, ratio 8."""
    truth = scene(rng, 2, 31, 32)
    low, up = degrade(truth, 8)
    grid = {"GT": truth, "LRHSI": low, "HSI_up": np.clip(up, 0, 1), "RGB": band_means(truth, 3)}
    return {key: np.rint(value * 256) / 256 for key, value in grid.items()}


def main() -> None:
    write(
        ROOT / "pancollection" / "train_wv3_tiny.h5",
        pancollection(np.random.default_rng(1), 4, 16, with_gt=True),
    )
    write(
        ROOT / "pancollection" / "test_wv3_OrigScale_tiny.h5",
        pancollection(np.random.default_rng(2), 2, 32, with_gt=False),
    )
    write(ROOT / "hyperpan" / "train_pavia_tiny.h5", hyperpan(np.random.default_rng(3)))
    write(
        ROOT / "hyperspectral" / "train_cave_x8_tiny.h5",
        hyperspectral(np.random.default_rng(4)),
        compress=True,
    )


if __name__ == "__main__":
    main()
