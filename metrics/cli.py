"""``python -m metrics``: score a method's fused images with the toolbox's quality indices.

Reduced resolution (a reference exists)::

    python -m metrics --fused out.mat --gt test_wv3_multiExm1.h5 --ratio 4

Full resolution (no reference)::

    python -m metrics --fused out.mat --ms test_wv3_OrigScale_multiExm1.h5 \
        --pan test_wv3_OrigScale_multiExm1.h5 --ratio 4 --sensor WV3

Values must reach the indices at digital-number (DN) scale, because Q2n casts to uint16:
``--scale S`` declares the files normalised and multiplies them by S. Bad input prints one
``error:`` line on stderr and exits with status 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import numpy as np
import torch

from metrics import (
    FULL_KEYS,
    HIGHER_IS_BETTER,
    REDUCED_KEYS,
    full_resolution_report,
    reduced_resolution_report,
)
from metrics.report import mean_std
from protocols.mtf import SENSOR_GAINS, canonical_sensor
from utils.cli import OneLineParser, int_at_least, positive_float
from utils.errors import UserInputError, exit_on_user_error
from utils.image_io import SUFFIXES, read_image
from utils.jsonio import dumps_strict
from utils.tables import text_table

ROLES = ("fused", "gt", "ms", "pan", "lms")
SENSORS = tuple(SENSOR_GAINS)
DEFAULT_DIM_CUT = 21
# A peak ratio above this between two inputs means they are not on the same value scale.
SCALE_MISMATCH = 50.0

EXAMPLES = f"""examples:
  python -m metrics --fused out.npy --gt test_wv3_multiExm1.h5 --ratio 4
  python -m metrics --fused out.mat --gt gt.mat --ratio 4 --scale 2047 --json
  python -m metrics --fused out.h5 --ms full.h5 --pan full.h5 --ratio 4 --sensor WV3

inputs: {", ".join(SUFFIXES)}.
layouts: N x C x H x W (bands first) for .npy/.npz/.h5, H x W x C (x N) for .mat, H x W x C
for .tif without a sample axis; --layout overrides (letters of nchw, e.g. chw, hwc, nhwc).
"""


def sensor_name(text: str) -> str:
    """Canonical spelling of a sensor name (case-insensitive; see ``protocols.mtf.canonical_sensor``)."""
    try:
        return canonical_sensor(text)
    except UserInputError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def build_parser() -> argparse.ArgumentParser:
    """The command's options: one input group per role, then the index settings."""
    parser = OneLineParser(
        prog="python -m metrics",
        description="Score fused images with the MATLAB toolbox's quality indices "
        "(reduced resolution with --gt, full resolution with --ms and --pan).",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    helps = {
        "fused": "the method's output (required)",
        "gt": "reference image: reduced-resolution scoring",
        "ms": "low-resolution MS/HS image: full-resolution scoring (with --pan)",
        "pan": "PAN image at the fused image's size: full-resolution scoring (with --ms)",
        "lms": "MS upsampled to PAN size (default: 23-tap interpolation of --ms)",
    }
    for role in ROLES:
        group = parser.add_argument_group(f"--{role}")
        group.add_argument(f"--{role}", metavar="FILE", help=helps[role])
        group.add_argument(f"--{role}-key", metavar="NAME", help=f"array to read from --{role}")
        group.add_argument(f"--{role}-layout", metavar="AXES", help=f"axis order of --{role}")
        group.add_argument(
            f"--{role}-scale", type=positive_float, metavar="S", help=f"multiply --{role} by S"
        )
    common = parser.add_argument_group("all inputs (a per-input option wins)")
    common.add_argument("--key", metavar="NAME", help="array to read from .h5/.mat/.npz files")
    common.add_argument("--layout", metavar="AXES", help="axis order, letters of nchw")
    common.add_argument(
        "--scale",
        type=positive_float,
        metavar="S",
        help="the files are normalised to [0, 1]: multiply them by S (e.g. 2047 for 11-bit "
        "data) to get digital numbers; default: the files are already at DN scale",
    )
    index = parser.add_argument_group("indices")
    index.add_argument(
        "--ratio", type=int_at_least(1), required=True, help="resolution ratio (a positive integer)"
    )
    index.add_argument(
        "--dim-cut",
        type=int_at_least(0),
        help=f"border cut of indexes_evaluation.m (reduced resolution; default {DEFAULT_DIM_CUT}, 0: none)",
    )
    index.add_argument(
        "--sensor",
        type=sensor_name,
        default="none",
        help=f"MTF of the sensor (full resolution): {', '.join(SENSORS)}; default none",
    )
    index.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    index.add_argument("--json", action="store_true", help="print JSON instead of a table")
    return parser


def check_mode(args: argparse.Namespace) -> str:
    """'reduced' (--gt) or 'full' (--ms and --pan); refuse mixed or missing inputs."""
    if args.fused is None:
        raise UserInputError("--fused is required: the method's output file")
    full = args.ms is not None or args.pan is not None
    if args.gt is not None and full:
        raise UserInputError(
            "give either --gt (reduced resolution) or --ms and --pan (full resolution), not both"
        )
    if args.gt is None and not full:
        raise UserInputError("give --gt (reduced resolution) or --ms and --pan (full resolution)")
    if full and (args.ms is None or args.pan is None):
        raise UserInputError("full resolution needs both --ms and --pan")
    if full and args.dim_cut is not None:
        raise UserInputError("--dim-cut applies to reduced resolution (--gt) only")
    if not full and (args.lms is not None or args.sensor != "none"):
        raise UserInputError("--lms and --sensor apply to full resolution (--ms/--pan) only")
    return "full" if full else "reduced"


def _shape(tensor: torch.Tensor) -> str:
    return " x ".join(str(size) for size in tensor.shape)


def load_inputs(
    args: argparse.Namespace, device: torch.device
) -> tuple[dict[str, torch.Tensor], dict[str, dict]]:
    """Read, check and scale every given input: N x C x H x W float64 tensors at DN scale.

    Also returns, per role, what was read (path, array name, N x C x H x W shape, scale).
    """
    images: dict[str, torch.Tensor] = {}
    sources: dict[str, dict] = {}
    for role in ROLES:
        path = getattr(args, role)
        if path is None:
            continue
        key = getattr(args, f"{role}_key") or args.key
        layout = getattr(args, f"{role}_layout") or args.layout
        scale = getattr(args, f"{role}_scale") or args.scale
        stored, name = read_image(path, role, key, layout)
        array = np.ascontiguousarray(stored, dtype=np.float64)
        bad = int(np.count_nonzero(~np.isfinite(array)))
        if bad:
            raise UserInputError(f"--{role} {path} has {bad} NaN or Inf values; fix the file")
        tensor = torch.from_numpy(array).to(device)
        images[role] = tensor * scale if scale else tensor
        sources[role] = {"path": str(path), "key": name, "shape": list(array.shape), "scale": scale}
    return images, sources


def check_shapes(images: dict[str, torch.Tensor], ratio: int) -> None:
    """Refuse inputs whose image count, band count or size do not fit each other and ``ratio``."""
    fused = images["fused"]
    n, bands, height, width = fused.shape
    for role, tensor in images.items():
        if tensor.shape[0] != n:
            raise UserInputError(
                f"--fused holds {n} images but --{role} {tensor.shape[0]} "
                f"(fused {_shape(fused)}, {role} {_shape(tensor)})"
            )
    expected = {
        "gt": (bands, height, width),
        "lms": (bands, height, width),
        "pan": (1, height, width),
    }
    if "ms" in images:
        if height % ratio or width % ratio:
            raise UserInputError(f"--fused is {height} x {width} pixels, not a multiple of --ratio {ratio}")
        expected["ms"] = (bands, height // ratio, width // ratio)
    for role, (c, h, w) in expected.items():
        if role not in images:
            continue
        got = images[role].shape
        if got[1] != c:
            raise UserInputError(
                f"--fused has {bands} bands but --{role} {got[1]}"
                + (" (a PAN image has one band)" if role == "pan" else "")
                + f" (fused {_shape(fused)}, {role} {_shape(images[role])})"
            )
        if got[2:] != (h, w):
            needs = f" and --ratio {ratio} needs {h} x {w}" if role == "ms" else ""
            raise UserInputError(
                f"--{role} is {got[2]} x {got[3]} pixels but --fused {height} x {width}{needs} "
                f"(fused {_shape(fused)}, {role} {_shape(images[role])})"
            )


def scale_warning(peaks: dict[str, float], scaled: bool) -> str | None:
    """One-line warning when inputs look normalised (all peaks <= 1 and no ``--scale`` given)
    or when their peaks differ so much that they cannot share one value scale."""
    low = min(peaks, key=peaks.get)
    high = max(peaks, key=peaks.get)
    if peaks[low] > 0 and peaks[high] / peaks[low] > SCALE_MISMATCH:
        return (
            f"warning: --{low} peaks at {peaks[low]:.4g} but --{high} at {peaks[high]:.4g}: "
            f"they are not on the same scale; fix it with --{low}-scale or --{high}-scale"
        )
    if not scaled and peaks[high] <= 1:
        return (
            "warning: all values are within [0, 1]; the indices need digital numbers (Q2n "
            "casts to uint16): pass --scale 2047 (11-bit data) or your data's maximum DN"
        )
    return None


def summarise(values: dict[str, torch.Tensor]) -> dict[str, dict]:
    """Per index: per-image values, mean and sample standard deviation (N - 1, as MATLAB's std)."""
    summary = {}
    for name, tensor in values.items():
        per_image = tensor.detach().double().cpu().tolist()
        mean, std = mean_std(per_image)
        summary[name] = {"per_image": per_image, "mean": mean, "std": std}
    return summary


def format_table(summary: dict[str, dict], title: str) -> str:
    """A fixed-width text table: one row per image, then mean and std rows for stacks."""
    n = len(next(iter(summary.values()))["per_image"])
    rows = [[str(i), *(f"{v['per_image'][i]:.4f}" for v in summary.values())] for i in range(n)]
    if n > 1:
        rows += [[stat, *(f"{v[stat]:.4f}" for v in summary.values())] for stat in ("mean", "std")]
    better = ", ".join(f"{k} {'higher' if HIGHER_IS_BETTER[k] else 'lower'}" for k in summary)
    return f"{title}\n{text_table(['image', *summary], rows)}\nbetter: {better}"


def run(args: argparse.Namespace) -> dict:
    """Load the inputs named in ``args``, compute the report and return it as a JSON-ready dict."""
    mode = check_mode(args)
    try:
        device = torch.device(args.device)
        torch.empty(0, device=device)
    except (RuntimeError, AssertionError) as exc:
        raise UserInputError(f"--device {args.device} is not usable here: {exc}") from None
    images, sources = load_inputs(args, device)
    check_shapes(images, args.ratio)
    peaks = {role: tensor.max().item() for role, tensor in images.items()}
    warning = scale_warning(peaks, any(src["scale"] for src in sources.values()))
    if warning:
        print(warning, file=sys.stderr)
    settings: dict = {"mode": mode, "ratio": args.ratio}
    if mode == "reduced":
        dim_cut = DEFAULT_DIM_CUT if args.dim_cut is None else args.dim_cut
        settings["dim_cut"] = dim_cut
        values = reduced_resolution_report(images["fused"], images["gt"], args.ratio, dim_cut)
        values = {k: values[k] for k in REDUCED_KEYS}
    else:
        settings["sensor"] = args.sensor
        values = full_resolution_report(
            images["fused"], images["ms"], images["pan"], args.ratio, args.sensor, images.get("lms")
        )
        values = {k: values[k] for k in FULL_KEYS}
    return {**settings, "inputs": sources, "indices": summarise(values)}


def describe(result: dict) -> str:
    """The table's title line: mode, inputs, image count and size, settings."""
    fused = result["inputs"]["fused"]
    n, c, h, w = fused["shape"]
    settings = f"ratio {result['ratio']}, " + (
        f"border cut {result['dim_cut']}" if result["mode"] == "reduced" else f"sensor {result['sensor']}"
    )
    others = ", ".join(
        f"{role} {src['path']}" + (f" [{src['key']}]" if src["key"] else "")
        for role, src in result["inputs"].items()
    )
    images = f"{n} image{'s' if n > 1 else ''} of {c} x {h} x {w}"
    return f"{result['mode']} resolution: {images}; {others}; {settings}"


@exit_on_user_error
def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m metrics``; returns the exit status (0)."""
    args = build_parser().parse_args(argv)
    result = run(args)
    if args.json:
        print(dumps_strict(result, indent=2))
    else:
        print(format_table(result["indices"], describe(result)))
    return 0
