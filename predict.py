"""Fuse a whole scene: ``python predict.py --option_path O --pan P --lr M --out F [--checkpoint C]
[--adapt STEPS]``.

Reads the guide (PAN, or the high-resolution MS/RGB image) and the low-resolution image as
GeoTIFF (or .npy bands first / .mat bands last), fuses them in overlapping tiles with bounded
memory (engine/tiling.py: the result equals one pass over the scene), and writes a float32
GeoTIFF in digital numbers with the guide's georeferencing tags, band-sequential, written tile
by tile into a memory-mapped file. The model comes from the checkpoint (default: the option
file's ``test.checkpoint``, i.e. the best of its newest run); ``data.scale`` from the options.

``--adapt STEPS`` first fine-tunes a copy of the checkpoint's model on crops of this scene with
losses that need no ground truth (``adapt.*`` options, engine/adapt.py) and saves the adapted
weights beside the output (``F`` with the suffix ``.adapted.pth``, loadable with ``--checkpoint``);
the given checkpoint file is only read.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np
import tifffile
import torch
from tqdm import tqdm

from data.scene import TIFF_SUFFIXES, read_image
from engine.adapt import adapt
from engine.checkpoint import save_atomic
from engine.options import add_option_arguments, dump_options, load_options
from engine.tester import find_checkpoint, load_trained_model
from engine.tiling import TILE_MULTIPLE, UPSAMPLING_MARGIN, fuse_tiled
from engine.training_parts import select_device
from utils.errors import UserInputError, exit_on_user_error
from utils.memory import keep_freed_memory

GEO_TAGS = (33550, 33922, 34264, 34735, 34736, 34737)  # pixel scale, tie point, transform, GeoKeys


def geo_tags(path: str) -> list[tuple]:
    """The GeoTIFF tags of ``path`` as tifffile ``extratags`` (empty for other formats)."""
    if Path(path).suffix.lower() not in TIFF_SUFFIXES:
        return []
    with tifffile.TiffFile(path) as tif:
        tags = tif.pages[0].tags
        return [(t.code, t.dtype, t.count, t.value, True) for t in tags.values() if t.code in GEO_TAGS]


def load_inputs(pan_path: str, lr_path: str, record: dict) -> tuple[np.ndarray, np.ndarray]:
    """The guide (G x H x W) and low-resolution image (C x h x w) as float32, checked against the
    checkpoint's band counts and ratio: H = ratio * h and W = ratio * w exactly."""
    guide, lr = read_image(pan_path), read_image(lr_path)
    ratio = record["ratio"]
    if guide.shape[0] != record["guide_channels"]:
        raise UserInputError(
            f"--pan {pan_path} has {guide.shape[0]} bands but the model was trained with "
            f"{record['guide_channels']}: give the guide image of the training sensor"
        )
    if lr.shape[0] != record["lr_channels"]:
        raise UserInputError(
            f"--lr {lr_path} has {lr.shape[0]} bands but the model was trained with "
            f"{record['lr_channels']}: give the low-resolution image of the training sensor"
        )
    if guide.shape[1:] != (lr.shape[1] * ratio, lr.shape[2] * ratio):
        raise UserInputError(
            f"the guide is {guide.shape[1]}x{guide.shape[2]} and the low-resolution image "
            f"{lr.shape[1]}x{lr.shape[2]}, not ratio {ratio} (expected a guide of "
            f"{lr.shape[1] * ratio}x{lr.shape[2] * ratio}): crop both to the same area on the "
            "block grid (python -m data.prepare aligns and crops scenes)"
        )
    for name, array in (("--pan", guide), ("--lr", lr)):
        if not np.isfinite(array).all():
            raise UserInputError(f"{name} image has NaN or infinite pixels: fill or crop them")
    return guide.astype(np.float32, copy=False), lr.astype(np.float32, copy=False)


def tile_sizes(tile: int, margin: int, ratio: int) -> tuple[int, int]:
    """Core and margin in low-resolution pixels from guide pixels (core a multiple of 8)."""
    core = max(TILE_MULTIPLE, tile // ratio // TILE_MULTIPLE * TILE_MULTIPLE)
    return core, math.ceil(margin / ratio) + UPSAMPLING_MARGIN


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    add_option_arguments(parser)
    parser.add_argument("--pan", required=True, help="guide image: PAN (1 band) or high-resolution MS/RGB")
    parser.add_argument("--lr", required=True, help="low-resolution MS/HS image on the guide's block grid")
    parser.add_argument("--out", required=True, help="output GeoTIFF (float32 digital numbers)")
    parser.add_argument("--checkpoint", default=None, help="a .pth from train.py (default: test.checkpoint)")
    parser.add_argument("--tile", type=int, default=512, help="tile core in guide pixels (default 512)")
    parser.add_argument("--margin", type=int, default=64, help="model context around each tile, guide pixels")
    parser.add_argument(
        "--adapt",
        type=int,
        default=0,
        metavar="STEPS",
        help="fine-tune a copy of the model on this scene for STEPS steps first (adapt.* options)",
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace --out (and its weights) if it exists"
    )
    return parser.parse_args(argv)


@exit_on_user_error
def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    keep_freed_memory()
    options = load_options(args.option_path, args.set)
    out = Path(args.out)
    if out.exists() and not args.overwrite:
        raise UserInputError(f"--out {out} exists: choose another name or pass --overwrite")
    if out.suffix.lower() not in (".tif", ".tiff"):
        raise UserInputError(f"--out {out} must be a .tif file (GeoTIFF)")
    if args.tile < 1 or args.margin < 0:
        raise UserInputError("--tile must be positive and --margin 0 or more (guide pixels)")
    adapted = adapted_path(out)
    if args.adapt < 0:
        raise UserInputError(f"--adapt must be 0 (no adaptation) or a number of steps, got {args.adapt}")
    if args.adapt and adapted.exists() and not args.overwrite:
        raise UserInputError(
            f"{adapted} (the adapted weights) exists: choose another --out or pass --overwrite"
        )
    if args.checkpoint is not None:
        options.test.checkpoint = args.checkpoint
    device = select_device(options.device)
    path = find_checkpoint(options)
    model, record = load_trained_model(options, path, device)
    guide, lr = load_inputs(args.pan, args.lr, record)
    scale = options.data.scale
    ratio = record["ratio"]
    core, margin = tile_sizes(args.tile, args.margin, ratio)
    if args.adapt:
        torch.manual_seed(options.seed)
        report = adapt(model, lr, guide, ratio, options, args.adapt, device)
        state = {"model": model.state_dict(), "model_record": record, "adapted_from": str(path)}
        save_atomic({**state, "adapt": report, "adapt_options": dump_options(options)}, adapted)
        print(f"wrote the adapted weights {adapted}")
    shape = (lr.shape[0], *guide.shape[1:])
    out.parent.mkdir(parents=True, exist_ok=True)
    fused = tifffile.memmap(
        out,
        shape=shape,
        dtype="float32",
        photometric="minisblack",
        planarconfig="separate",
        extratags=geo_tags(args.pan),
        metadata=None,
    )
    start = time.perf_counter()
    with tqdm(total=lr.shape[1] * lr.shape[2], desc="fuse", unit="px", unit_scale=True) as bar:
        fuse_tiled(model, lr, guide, ratio, core, margin, fused, device, scale, progress=bar.update)
    fused.flush()
    seconds = time.perf_counter() - start
    del fused
    print(f"wrote {out} ({shape[0]} x {shape[1]} x {shape[2]}) in {seconds:.1f} s from {path}")
    result = {"out": str(out), "seconds": seconds, "checkpoint": str(path)}
    return {**result, "adapted": str(adapted)} if args.adapt else result


def adapted_path(out: Path) -> Path:
    """Where ``--adapt`` saves the adapted weights: beside ``out``, ``fused.tif`` -> ``fused.adapted.pth``."""
    return out.with_suffix(".adapted.pth")


if __name__ == "__main__":
    main()
