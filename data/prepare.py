"""``python -m data.prepare``: training, validation and test HDF5 files from one scene.

The files mirror the public collections (README, "Using each task's data"): ``DIR/train_NAME.h5``,
``valid_NAME.h5``, ``test_NAME_multiExm1.h5`` (reduced resolution, with ground truth) and
``test_NAME_OrigScale_multiExm1.h5`` (full resolution, no ground truth), arrays N x C x H x W
float64 at digital-number scale (divide by the ``scale`` attribute to get [0, 1]). With
``--full-train`` also ``train_NAME_OrigScale.h5`` and ``valid_NAME_OrigScale.h5``: the training
and validation regions at native resolution (no ground truth), for the full-resolution losses.

Reduced resolution follows Wald's protocol: gt = an MS crop, (ms, guide) =
``wald_protocol(gt, PAN crop)``, lms = ``upsample(ms)``. Full resolution: ms = the MS crop,
guide = the PAN crop, lms = ``upsample(ms)``. With a multi-band guide (``--pan`` several
bands), the guide goes down by the same antialiased bicubic ``imresize`` as a PAN.

Without ``--pan`` the guide is synthesised from the MS bands at the MS resolution, as HS+MS
benchmarks build their RGB image: ``--pan-weights`` (one PAN band, a weighted sum) or
``--guide-bands`` (copies of chosen bands). It is not degraded (it *is* the high-resolution
guide of the gt), and there is no full-resolution test file.

Layout ('auto'): 'pancollection' (keys gt, ms, lms, pan) for a one-band guide,
'hyperspectral' (GT, LRHSI, HSI_up, RGB; 'RGB' holds the guide whatever its band count) for a
multi-band guide; 'hyperpan' (GT, MS, LMS, PAN) on request. Every file also holds ``origin``
(N x 2 int32: top-left MS pixel of each sample in the aligned scene) and attributes with the
split, sensor, ratio, scale and source files.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from data.datasets import LAYOUTS
from data.prepare_config import PrepareConfig, check_sizes, fit_augment, output_paths, training_bytes
from data.samples import (
    AUGMENT_MODES,
    DEGRADE_MODES,
    Fields,
    Protocol,
    Scene,
    concat_samples,
    region_samples,
    region_samples_full,
    test_samples,
    write_h5,
)
from data.scene import GRIDS, align, grid_offset, infer_ratio, read_bands
from data.split import (
    Regions,
    carve_validation,
    check_inside,
    complement,
    count_patches,
    default_test_region,
    parse_rect,
)
from protocols.mtf import canonical_sensor, sensor_gains
from utils.cli import OneLineParser, positive_float
from utils.errors import UserInputError, exit_on_user_error


def _numbers(text: str | None, kind: type, what: str) -> list | None:
    """'1,2,3' -> [1, 2, 3] of ``kind``; None stays None."""
    if text is None:
        return None
    try:
        return [kind(v) for v in text.split(",")]
    except ValueError:
        raise UserInputError(f"{what} must be comma-separated numbers, got '{text}'") from None


def synthetic_weights(config: PrepareConfig, bands: int) -> torch.Tensor:
    """G x C matrix making the guide from the MS bands (--pan-weights or --guide-bands)."""
    weights = config.pan_weights
    if weights is not None:
        if len(weights) != bands:
            raise UserInputError(
                f"--pan-weights has {len(weights)} values for {bands} MS bands: give one per band"
            )
        return torch.tensor([weights], dtype=torch.float64)
    picks = config.guide_bands
    if not picks or min(picks) < 0 or max(picks) >= bands:
        raise UserInputError(f"--guide-bands must list band indices in 0..{bands - 1}")
    return torch.eye(bands, dtype=torch.float64)[picks]


def load_scene(config: PrepareConfig) -> Scene:
    """Read, check and align the MS and guide images named by the arguments."""
    ms_np, ms_grid = read_bands(config.ms, "MS")
    ms = torch.from_numpy(ms_np.astype(np.float64))
    attrs = {"sources_ms": json.dumps([str(p) for p in config.ms]), "sources_pan": "[]"}
    if not config.pan:
        if config.ratio is None or config.ratio < 2:
            raise UserInputError("give --ratio (2 or more) when the guide is synthesised (no --pan)")
        attrs.update(guide="synthetic", grid="none", grid_offset="[0, 0]", ms_origin="[0, 0]")
        return Scene(ms, None, config.ratio, attrs)
    pan_np, pan_grid = read_bands(config.pan, "PAN")
    ratio = infer_ratio(pan_np.shape[1:], ms_np.shape[1:], config.ratio)
    offset = grid_offset(ms_grid, pan_grid, ratio, config.grid)
    ms, pan, origin = align(ms, torch.from_numpy(pan_np.astype(np.float64)), ratio, offset)
    attrs.update(
        sources_pan=json.dumps([str(p) for p in config.pan]),
        guide="pan",
        grid=config.grid,
        grid_offset=json.dumps(list(offset)),
        ms_origin=json.dumps(list(origin)),
    )
    return Scene(ms, pan, ratio, attrs)


def choose_scale(scene: Scene, scale: str | float) -> float:
    """'auto' -> the smallest 2^k - 1 covering every pixel; otherwise the given number."""
    if scale != "auto":
        if not isinstance(scale, int | float) or not scale > 0:
            raise UserInputError(f"--scale must be 'auto' or a positive number, got {scale}")
        return scale
    top = float(scene.ms.max())
    if scene.guide is not None:
        top = max(top, float(scene.guide.max()))
    return 2 ** max(1, math.ceil(math.log2(top + 1.0))) - 1


def plan_split(config: PrepareConfig, height: int, width: int) -> Regions:
    """(test region, training regions, validation region) of a height x width scene."""
    if config.test_region is None:
        test = default_test_region(height, width, config.test_size)
    else:
        test = config.test_region
        check_inside(test, height, width, "test region")
    if min(test.height, test.width) < config.test_size:
        raise UserInputError(
            f"the test region ({test.text()}) is smaller than --test-size {config.test_size}"
        )
    train, valid = carve_validation(
        complement(height, width, test), config.val_fraction, config.patch, config.stride
    )
    return test, [r for r in train if count_patches(r, config.patch, config.stride)], valid


def make_protocol(config: PrepareConfig, scene: Scene) -> Protocol:
    """Check the sensor, gains and synthetic-guide options against the scene."""
    sensor = canonical_sensor(config.sensor)
    gains = config.gains
    sensor_gains(sensor, scene.ms.shape[0], gains)
    weights = None if scene.guide is not None else synthetic_weights(config, scene.ms.shape[0])
    return Protocol(scene.ratio, sensor, gains, weights)


def build_splits(
    scene: Scene, protocol: Protocol, config: PrepareConfig, regions: Regions, progress: bool
) -> dict[str, tuple[Fields, np.ndarray]]:
    """Samples and origins of every split; regions = (test, training list, validation)."""
    test, train, valid = regions
    steps = tqdm(total=len(train) + 2, desc="prepare", disable=not progress, file=sys.stdout)
    splits = {}
    for split, rects in (("train", train), ("valid", [valid])):
        parts, native = [], []
        for rect in rects:
            dihedral = split == "train" and config.augment == "dihedral"
            parts.append(
                region_samples(scene, protocol, rect, config.patch, config.stride, config.degrade, dihedral)
            )
            if config.full_train:
                native.append(
                    region_samples_full(scene, protocol, rect, config.patch, config.stride, config.degrade)
                )
            steps.update()
        splits[split] = concat_samples(parts)
        if native:
            splits[f"{split}_full"] = concat_samples(native)
    reduced, full, origins = test_samples(scene, protocol, test, config.test_size)
    splits["test_reduced"] = (reduced, origins)
    if full is not None:
        splits["test_full"] = (full, origins)
    steps.update()
    steps.close()
    return splits


def write_all(paths: dict[str, Path], splits: dict, keys: dict[str, str], attrs: dict) -> None:
    """Write every split to a temporary file, then rename them all (no half-written file)."""
    temps = {key: path.with_name(f".{path.name}.{os.getpid()}.tmp") for key, path in paths.items()}
    try:
        for key, (fields, origins) in splits.items():
            write_h5(temps[key], fields, origins, keys, dict(attrs, split=key))
        for key, path in paths.items():
            os.replace(temps[key], path)
    finally:
        for temp in temps.values():
            temp.unlink(missing_ok=True)


def prepare(config: PrepareConfig, progress: bool = True) -> dict[str, Path]:
    """Build the files described by ``config``; return their paths by split (train, valid,
    test_reduced and, with a real guide, test_full)."""
    scene = load_scene(config)
    if config.full_train and scene.guide is None:
        raise UserInputError(
            "--full-train needs a real guide (--pan): a synthesised guide has no full resolution"
        )
    paths = output_paths(Path(config.out), config.name, scene.guide is not None, config.full_train)
    existing = [str(p) for p in paths.values() if p.exists()]
    if existing and not config.force:
        raise UserInputError(f"{existing[0]} exists: pass --force to overwrite, or another --name")
    check_sizes(config, scene.ratio)
    protocol = make_protocol(config, scene)
    bands = (protocol.weights if scene.guide is None else scene.guide).shape[0]
    layout = (
        config.layout if config.layout != "auto" else ("pancollection" if bands == 1 else "hyperspectral")
    )
    height, width = scene.ms.shape[-2:]
    test, train, valid = plan_split(config, height, width)
    note = fit_augment(config, training_bytes(config, train, scene.ms.shape[0], bands, scene.ratio))
    if note:
        print(note)
    scale = choose_scale(scene, config.scale)
    say = print if progress else (lambda *a: None)
    say(
        f"aligned scene: {height}x{width} MS pixels, ratio {scene.ratio}, guide of {bands} "
        f"band(s), grid offset {scene.attrs['grid_offset']} PAN pixels; scale {scale}"
    )
    say(
        f"test region {test.text()}; validation region {valid.text()}; training regions "
        + "; ".join(r.text() for r in train)
    )
    splits = build_splits(scene, protocol, config, (test, train, valid), progress)
    attrs = dict(
        scene.attrs,
        ratio=scene.ratio,
        scale=scale,
        sensor=protocol.sensor,
        gains=json.dumps(protocol.gains),
        layout=layout,
        guide_weights=json.dumps(None if protocol.weights is None else protocol.weights.tolist()),
        scene_size=json.dumps([height, width]),
        test_region=json.dumps(test),
        valid_region=json.dumps(valid),
        train_regions=json.dumps(train),
        patch=config.patch,
        stride=config.stride,
        test_size=config.test_size,
        train_augment=config.augment,
        command=config.command_line(),
        origin="top-left MS pixel of each sample, aligned scene",
    )
    Path(config.out).mkdir(parents=True, exist_ok=True)
    write_all(paths, splits, LAYOUTS[layout], attrs)
    for key, (fields, _) in splits.items():
        say(f"{key}: {fields['lr'].shape[0]} samples -> {paths[key]}")
    return paths


def build_parser() -> argparse.ArgumentParser:
    """The command-line options of ``python -m data.prepare``."""
    p = OneLineParser(
        prog="python -m data.prepare",
        description="Build training, validation and "
        "test HDF5 files in the public layouts from one scene (see data/prepare.py).",
    )
    p.add_argument(
        "--ms",
        nargs="+",
        required=True,
        help="MS image: one multi-band file or one "
        "file per band (GeoTIFF, .npy C x H x W, .mat H x W x C, file.mat:VAR)",
    )
    guide = p.add_mutually_exclusive_group(required=True)
    guide.add_argument(
        "--pan",
        nargs="+",
        help="high-resolution guide: a PAN band, or several "
        "bands (multi-band guide, e.g. Sentinel-2 10 m bands)",
    )
    guide.add_argument(
        "--pan-weights", help="synthesise a PAN as the weighted sum of the MS bands: w1,w2,... (one per band)"
    )
    guide.add_argument("--guide-bands", help="synthesise a guide from MS bands i,j,k (0-based)")
    p.add_argument("--ratio", type=int, help="scale ratio (default: from the PAN/MS sizes)")
    p.add_argument(
        "--sensor",
        default="none",
        help="MTF preset: QB, IKONOS, GeoEye1, WV2, WV3, "
        "WV4, GF2, none (Nyquist gain 0.3 for every band; default)",
    )
    p.add_argument("--gains", help="MS Nyquist gains g1,g2,... (one per band), overrides --sensor")
    p.add_argument("--patch", type=int, default=64, help="training gt patch size, MS pixels")
    p.add_argument("--stride", type=int, help="patch stride, MS pixels (default: patch / 2)")
    p.add_argument(
        "--degrade",
        choices=DEGRADE_MODES,
        default="patch",
        help="training/validation patches degraded one by one as the test tiles (patch, default) "
        "or each region as a whole, then cut (region)",
    )
    p.add_argument(
        "--augment",
        choices=AUGMENT_MODES,
        default=None,
        help="training patches each in all eight flips and quarter turns, transformed at full "
        "resolution and then degraded, so every copy keeps a real file's decimation phase "
        "(dihedral, the default with --degrade patch unless 8x the file would not fit in memory), "
        "or as cut (none, the default with --degrade region or --full-train)",
    )
    p.add_argument(
        "--val-fraction",
        type=float,
        default=0.1,
        help="share of the training area held out for validation (default 0.1)",
    )
    p.add_argument(
        "--test-region",
        help="ROW,COL,H,W in aligned MS pixels, held out for the "
        "test files (default: the last --test-size rows)",
    )
    p.add_argument("--test-size", type=int, default=64, help="test tile size, MS pixels")
    p.add_argument(
        "--grid",
        choices=GRIDS,
        default="auto",
        help="PAN/MS grid convention; auto "
        "reads the GeoTIFF tags (pixel-is-point: MS centred on PAN pixel r*i+r/2)",
    )
    p.add_argument(
        "--scale",
        default="auto",
        help="value scale stored with the files (default: the smallest 2^k - 1 covering the data)",
    )
    p.add_argument(
        "--layout",
        choices=("auto", *LAYOUTS),
        default="auto",
        help="HDF5 keys (auto: pancollection for a one-band guide, else hyperspectral)",
    )
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--name", required=True, help="dataset name in the file names")
    p.add_argument(
        "--full-train",
        action="store_true",
        help="also write train_NAME_OrigScale.h5 and valid_NAME_OrigScale.h5: the training and "
        "validation regions at native resolution, no gt (for the full-resolution losses)",
    )
    p.add_argument("--force", action="store_true", help="overwrite existing files")
    p.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    return p


def parse_args(argv: list[str]) -> tuple[PrepareConfig, bool]:
    """``argv`` (without the program name) -> (the typed configuration, quiet); number lists and
    regions are parsed here, at the edge, with one-line errors naming the flag."""
    args = build_parser().parse_args(argv)
    if args.scale == "auto":
        scale = args.scale
    else:
        try:
            scale = positive_float(args.scale)
        except argparse.ArgumentTypeError as exc:
            raise UserInputError(f"--scale: {exc}; or give auto") from None
    config = PrepareConfig(
        ms=list(args.ms),
        out=args.out,
        name=args.name,
        pan=list(args.pan) if args.pan else None,
        pan_weights=_numbers(args.pan_weights, float, "--pan-weights"),
        guide_bands=_numbers(args.guide_bands, int, "--guide-bands"),
        ratio=args.ratio,
        sensor=args.sensor,
        gains=_numbers(args.gains, float, "--gains"),
        patch=args.patch,
        stride=args.stride,
        degrade=args.degrade,
        augment=args.augment,
        val_fraction=args.val_fraction,
        test_region=None if args.test_region is None else parse_rect(args.test_region),
        test_size=args.test_size,
        grid=args.grid,
        scale=scale,
        layout=args.layout,
        full_train=args.full_train,
        force=args.force,
    )
    return config, args.quiet


@exit_on_user_error
def main(argv: list[str] | None = None) -> None:
    """Command-line entry point."""
    config, quiet = parse_args(sys.argv[1:] if argv is None else argv)
    prepare(config, progress=not quiet)


if __name__ == "__main__":
    main()
