"""Demo datasets built from the real crops shipped in ``datasets/demo/`` (see its README.md).

``ensure_demo('landsat8')`` writes ``train_landsat8.h5``, ``valid_landsat8.h5``,
``test_landsat8_multiExm1.h5`` and ``test_landsat8_OrigScale_multiExm1.h5`` next to the crops on
first use (a few seconds) with :func:`data.prepare.prepare` and the configurations below, and reuses
them afterwards unless the options changed.

- 'landsat8': Landsat-8 OLI, MS B1-B7 (30 m) sharpened by the PAN B8 (15 m), ratio 2,
  pixel-is-point grids (the PAN is resampled by half a pixel, see :mod:`data.scene`),
  layout pancollection, scale 32767 (the data stay below 2^15; the L1 product is 16-bit).
- 'landsat8_fullres': the same scene, split and files (named ``*_landsat8_fullres*``; training
  patches as cut, without the eight transforms, to pair with the native-resolution ones) plus
  ``train_landsat8_fullres_OrigScale.h5`` and ``valid_landsat8_fullres_OrigScale.h5``: the training
  and validation regions at native resolution (32 x 32 MS pixels, PAN 64 x 64, no gt), for
  training with the full-resolution losses (options/fullres_landsat8.yml).
- 'sentinel2': Sentinel-2 L1C, the 20 m bands B05, B06, B07, B8A, B11, B12 sharpened by the
  four 10 m bands B02, B03, B04, B08, ratio 2, layout hyperspectral (GT, LRHSI, HSI_up, RGB
  with the 4-band guide in 'RGB'), scale 8191 (reflectance x 10000, below 2^13 here).

All use the MTF preset 'none' (Nyquist gain 0.3 for every MS band), 32 x 32 training patches
at stride 16 (for 'landsat8' and 'sentinel2' each written in all eight flips and quarter turns,
``data.prepare``'s default ``--augment dihedral``: flipped at full resolution, then degraded) and
four 64 x 64 test images from a held-out region.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import h5py

from data.prepare import prepare
from data.prepare_config import PrepareConfig, output_paths
from data.split import Rect
from utils.errors import UserInputError
from utils.registry import suggest

DEMO_ROOT = Path(__file__).resolve().parents[1] / "datasets" / "demo"
COMMON = {"sensor": "none", "patch": 32, "stride": 16, "test_size": 64, "val_fraction": 0.1, "grid": "auto"}


@dataclass(frozen=True)
class Demo:
    """A demo: its MS and guide crops (file names in the demo folder), its test region
    (ROW, COL, H, W in MS pixels) and value scale."""

    ms: tuple[str, ...]
    pan: tuple[str, ...]
    test_region: Rect
    scale: float
    full_train: bool = False  # also full-resolution training and validation files

    def config(self, root: Path, name: str) -> PrepareConfig:
        """The :class:`PrepareConfig` that builds this demo's files in ``root``."""
        return PrepareConfig(
            ms=[str(root / f) for f in self.ms],
            pan=[str(root / f) for f in self.pan],
            out=str(root),
            name=name,
            test_region=self.test_region,
            scale=self.scale,
            full_train=self.full_train,
            **COMMON,
        )


DEMOS: dict[str, Demo] = {
    "landsat8": Demo(("l8_ms.tif",), ("l8_pan.tif",), Rect(64, 320, 64, 256), 32767),
    "landsat8_fullres": Demo(("l8_ms.tif",), ("l8_pan.tif",), Rect(64, 320, 64, 256), 32767, True),
    "sentinel2": Demo(("s2_20m.tif",), ("s2_10m.tif",), Rect(128, 128, 128, 128), 8191),
}


def _up_to_date(paths: dict[str, Path], command: str) -> bool:
    """True when every file exists and was made by ``command``."""
    if not all(p.exists() for p in paths.values()):
        return False
    try:
        with h5py.File(paths["train"], "r") as file:
            return file.attrs.get("command") == command
    except OSError:  # damaged or half-copied: build it again
        return False


def ensure_demo(name: str, root: str | Path = DEMO_ROOT, force: bool = False) -> dict[str, Path]:
    """Build demo ``name``'s HDF5 files in ``root`` unless they exist; return their paths.

    Returns {'train', 'valid', 'test_reduced', 'test_full'} (and 'train_full', 'valid_full'
    for a demo with full-resolution training files) -> Path. The files are written to
    temporary names and renamed, so an interrupted or concurrent build leaves no half file.
    """
    if name not in DEMOS:
        raise UserInputError(f"unknown demo '{name}'{suggest(name, DEMOS)}; known: {', '.join(DEMOS)}")
    root = Path(root)
    demo = DEMOS[name]
    missing = [f for f in (*demo.ms, *demo.pan) if not (root / f).is_file()]
    if missing:
        raise UserInputError(
            f"demo crop {root / missing[0]} is missing: run datasets/demo/make_crops.py "
            "(see datasets/demo/README.md)"
        )
    config = demo.config(root, name)
    paths = output_paths(root, name, full=True, full_train=demo.full_train)
    if not force and _up_to_date(paths, config.command_line()):
        return paths
    config.force = True
    return prepare(config, progress=False)
