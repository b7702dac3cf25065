"""The paper's comparison figures, drawn from a comparison run (engine/compare.py) with matplotlib.

- Efficiency-performance (EP) chart: one quality index against the time per image (log axis),
  marker area proportional to the parameter count (training-free methods: open diamonds).
- Visual comparison: RGB composites of every method on one test image, all stretched with the
  reference's 2-98% limits, and below each its mean absolute error map against the reference
  (one colour scale for all methods).
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import torch

from engine.visualize import rgb_composite, stretch_limits
from metrics.report import HIGHER_IS_BETTER
from utils.errors import UserInputError

PANELS_PER_ROW = 7


def load_run(run_dir: Path) -> tuple[dict, dict[str, np.ndarray]]:
    """``comparison.json`` and ``comparison_images.npz`` of a comparison run folder."""
    table, images = run_dir / "comparison.json", run_dir / "comparison_images.npz"
    for path in (table, images):
        if not path.is_file():
            raise UserInputError(
                f"'{path}' does not exist: give the run folder that test.py wrote for a comparison "
                "(compare.methods in the option file)"
            )
    with np.load(images, allow_pickle=False) as archive:
        arrays = {k: archive[k] for k in archive.files}
    return json.loads(table.read_text()), arrays


def index_values(results: dict, key: str) -> dict[str, float]:
    """{method: mean of ``key``} from whichever resolution reports it (NaN when missing)."""
    out = {}
    for label, entry in results["methods"].items():
        stat = entry["reduced"].get(key) or entry["full"].get(key)
        mean = None if stat is None else stat["mean"]
        out[label] = math.nan if mean is None else float(mean)
    return out


def ep_chart(results: dict, path: Path) -> Path:
    """Quality index ``results['chart_index']`` against seconds per image, sized by parameters."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    key = results["chart_index"]
    values = index_values(results, key)
    largest = max([e["params"] for e in results["methods"].values()] + [1])
    fig, ax = plt.subplots(figsize=(7.5, 5), dpi=120)
    order = sorted(results["methods"], key=lambda m: results["methods"][m]["seconds_per_image"])
    below = {m: i % 2 == 1 for i, m in enumerate(order)}  # alternate label sides: neighbours overlap less
    for label, entry in results["methods"].items():
        x, y = entry["seconds_per_image"], values[label]
        if not math.isfinite(y):
            continue
        if entry["params"] == 0:
            ax.scatter(x, y, s=60, marker="D", facecolors="none", edgecolors="0.35", linewidths=1.2)
        else:
            area = 80 + 1400 * math.sqrt(entry["params"] / largest)
            ax.scatter(x, y, s=area, alpha=0.55, edgecolors="black", linewidths=0.8)
        offset = (6, -11 if below[label] else 5)
        ax.annotate(label, (x, y), xytext=offset, textcoords="offset points", fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel(f"time per image [s], log scale ({results['machine']})")
    ax.xaxis.label.set_fontsize(8)
    ax.margins(0.15)
    better = "higher" if HIGHER_IS_BETTER.get(key, False) else "lower"
    ax.set_ylabel(f"{key} ({better} is better)")
    size = "x".join(str(s) for s in results["image_size"])
    ax.set_title(f"{results['name']}: {key} vs time per {size} image; area ~ parameters, ◇ training-free")
    ax.title.set_fontsize(9)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def error_scale(errors: dict[str, np.ndarray]) -> float:
    """Top of the error maps' shared colour scale: the median over methods of each map's 99th
    percentile (H x W maps, any unit), so that one failed method (errors 1e4 times the others')
    saturates its own map instead of blacking out every other; 1e-12 when there is none."""
    tops = [np.percentile(e, 99) for e in errors.values()]
    return max(float(np.median(tops)), 1e-12) if tops else 1e-12


def visual_comparison(results: dict, images: dict[str, np.ndarray], path: Path) -> Path:
    """RGB composites and absolute-error maps of every method on the comparison's test image."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bands = results["rgb_bands"]
    methods = [m for m in results["methods"] if m in images]
    reference = images.get("gt", images["up"])
    ref = torch.from_numpy(reference)[None]
    limits = stretch_limits(ref[:, bands])
    panels = [("reference" if "gt" in images else "upsampled input", reference)]
    panels += [(m, images[m]) for m in methods]
    errors = {m: np.abs(images[m] - reference).mean(axis=0) for m in methods} if "gt" in images else {}
    vmax = error_scale(errors)
    per_row = min(PANELS_PER_ROW, len(panels))
    blocks = -(-len(panels) // per_row)
    rows = blocks * (2 if errors else 1)
    fig, axes = plt.subplots(rows, per_row, figsize=(2.1 * per_row, 2.25 * rows), dpi=110, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    image = None
    for i, (label, array) in enumerate(panels):
        block, col = divmod(i, per_row)
        top = block * (2 if errors else 1)
        rgb = rgb_composite(torch.from_numpy(array)[None], bands, limits)[0].permute(1, 2, 0).numpy()
        axes[top, col].imshow(rgb, interpolation="nearest")
        axes[top, col].set_title(label, fontsize=8)
        if label in errors:
            image = axes[top + 1, col].imshow(errors[label], cmap="inferno", vmin=0, vmax=vmax)
            axes[top + 1, col].set_title(f"|{label} - GT|", fontsize=7)
    if image is not None:
        fig.colorbar(
            image, ax=axes.ravel().tolist(), shrink=0.6, extend="max", label="mean absolute error [DN]"
        )
    fig.suptitle(f"{results['name']}: test image, RGB bands {bands} (0-based)", fontsize=9)
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)
    return path


def draw_comparison(run_dir: Path, out_dir: Path, stem: str | None = None) -> list[Path]:
    """Draw ``<stem>_ep.png`` and ``<stem>_visual.png`` into ``out_dir`` and copy the table there
    (``<stem>.md``, ``<stem>.csv``); return their paths."""
    results, images = load_run(run_dir)
    stem = stem or results["name"]
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserInputError(f"cannot create '{out_dir}' ({exc.strerror}): give a writable --out") from None
    tables = []
    for suffix in ("md", "csv"):  # the table next to its charts, for a README to link
        target = out_dir / f"{stem}.{suffix}"
        shutil.copyfile(run_dir / f"comparison.{suffix}", target)
        tables.append(target)
    return [
        ep_chart(results, out_dir / f"{stem}_ep.png"),
        visual_comparison(results, images, out_dir / f"{stem}_visual.png"),
        *tables,
    ]
