"""Whole-scene inference with predict.py: time and peak memory on a scene of any size.

    python bench/bench_scene.py --option_path option.yml --size 8192

The scene is the shipped Landsat-8 demo crop (PAN 15 m, 7 MS bands 30 m) mirrored and repeated
to ``size`` x ``size`` PAN pixels (georeferenced like the crop), written as GeoTIFFs into
``--work``; predict.py then fuses it with the option file's trained checkpoint in a child
process, whose wall time and peak resident memory are printed.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np

from data.scene import read_grid, read_image, write_geotiff


def mirrored(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """``image`` (C x h x w) extended to C x height x width by repeated mirroring."""
    rows = np.arange(height) % (2 * image.shape[1])
    rows = np.where(rows < image.shape[1], rows, 2 * image.shape[1] - 1 - rows)
    cols = np.arange(width) % (2 * image.shape[2])
    cols = np.where(cols < image.shape[2], cols, 2 * image.shape[2] - 1 - cols)
    return image[:, rows][:, :, cols]


def make_scene(size: int, ratio: int, folder: Path) -> tuple[Path, Path]:
    """PAN (size x size) and MS (size/ratio) GeoTIFFs built from the shipped demo crops."""
    demo = ROOT / "datasets" / "demo"
    pan, ms = read_image(demo / "l8_pan.tif"), read_image(demo / "l8_ms.tif")
    h, w = ms.shape[1:]
    pan = pan[:, : h * ratio, : w * ratio]
    folder.mkdir(parents=True, exist_ok=True)
    pan_path, ms_path = folder / f"scene{size}_pan.tif", folder / f"scene{size}_ms.tif"
    write_geotiff(pan_path, mirrored(pan, size, size), read_grid(demo / "l8_pan.tif"))
    write_geotiff(ms_path, mirrored(ms, size // ratio, size // ratio), read_grid(demo / "l8_ms.tif"))
    return pan_path, ms_path


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--option_path", default="option.yml", help="a trained option file (ratio 2 demo)")
    parser.add_argument("--size", type=int, default=2048, help="scene size in PAN pixels")
    parser.add_argument("--tile", type=int, default=1024)
    parser.add_argument("--work", default="/tmp/ramsf_scene", help="folder for the scene and output")
    args = parser.parse_args()
    work = Path(args.work)
    pan, ms = make_scene(args.size, 2, work)
    out = work / f"scene{args.size}_fused.tif"
    command = [
        sys.executable,
        str(ROOT / "predict.py"),
        "--option_path",
        args.option_path,
        "--pan",
        str(pan),
        "--lr",
        str(ms),
        "--out",
        str(out),
        "--tile",
        str(args.tile),
        "--overwrite",
    ]
    start = time.perf_counter()
    subprocess.run(command, cwd=ROOT, check=True)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20
    print(
        f"scene {args.size}^2 PAN + 7 x {args.size // 2}^2 MS, tile {args.tile}: "
        f"{seconds:.0f} s, peak resident memory {peak:.2f} GiB, output {out.stat().st_size / 2**30:.2f} GiB"
    )


if __name__ == "__main__":
    main()
