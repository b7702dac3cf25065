"""Per-edge error ratios (metrics.border) of the input ``up``, classical methods and checkpoints.

    python bench/border_report.py --option_path option.yml [--split valid|valid-mosaic|test|both]
        [--checkpoint LABEL=logs/.../checkpoints/best.pth ...] [--classical BDSD-PC MTF-GLP-FS]

``valid-mosaic``: each validation image as the seamless 2 x 2 mosaic of itself and its flips,
twice the size (the test crops' size on the demo), to see size-dependent borders without looking
at the test crops. Prints, per split, one row per method: the mean (min-max over images) ratio
of each edge's outermost-line mean |fused - gt| to the interior's (outer 4 pixels left out), and
SAM / ERGAS / Q2n (the toolbox indices, dim_cut 0, digital-number scale) averaged over the images.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.checkpoint import load_checkpoint, load_model_weights
from engine.model_record import build_from_record, training_free_record
from engine.options import load_options
from metrics import reduced_resolution_report
from metrics.border import EDGES, mean_edge_ratios


def load_all(dataset) -> dict:
    samples = [dataset[i] for i in range(len(dataset))]
    return {k: torch.stack([s[k] for s in samples]) for k in ("lr", "up", "guide", "gt")}


def mirror_mosaic(batch: dict) -> dict:
    """Every image as the seamless 2 x 2 mosaic of itself and its flips (twice the height and
    width, lr, up, guide and gt alike): validation images at the size of larger test crops, whose
    border is the original image's border."""

    def mosaic(x: torch.Tensor) -> torch.Tensor:
        top = torch.cat((x, x.flip(-1)), dim=-1)
        return torch.cat((top, top.flip(-2)), dim=-2)

    return {k: mosaic(v) for k, v in batch.items()}


@torch.no_grad()
def fuse_all(model, batch: dict, size: int = 16) -> torch.Tensor:
    if model is None:
        return batch["up"]
    model.eval()
    parts = []
    for start in range(0, batch["up"].shape[0], size):
        lr, up, guide = (batch[k][start : start + size] for k in ("lr", "up", "guide"))
        parts.append(model(lr, up, guide).float())
    return torch.cat(parts)


def trained(path: str):
    state = load_checkpoint(path)
    model = build_from_record(state["model_record"])
    load_model_weights(model, state, path)
    return model.eval()


def row(label: str, fused: torch.Tensor, batch: dict, scale: float, ratio: int) -> str:
    ratios = mean_edge_ratios([(fused, batch["gt"])])
    cells = [f"{r.mean():.3f} ({r.min():.1f}-{r.max():.1f})" for r in (ratios[e] for e in EDGES)]
    report = reduced_resolution_report(fused.double() * scale, batch["gt"].double() * scale, ratio, dim_cut=0)
    idx = [f"{report[k].mean():.4f}" for k in ("SAM", "ERGAS", "Q2n")]
    return f"{label:24s} " + " ".join(f"{c:16s}" for c in cells) + " " + " ".join(f"{c:8s}" for c in idx)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--option_path", default="option.yml")
    parser.add_argument("--split", choices=("valid", "valid-mosaic", "test", "both"), default="both")
    parser.add_argument("--checkpoint", nargs="*", default=[], help="LABEL=PATH")
    parser.add_argument("--classical", nargs="*", default=["BDSD-PC", "MTF-GLP-FS"])
    args = parser.parse_args(argv)
    options = load_options(args.option_path)
    data = options.data
    splits = {"valid": [data.valid], "valid-mosaic": [data.valid], "test": list(data.test_reduced)}
    chosen = ("valid", "valid-mosaic", "test") if args.split == "both" else (args.split,)
    models = [(c.split("=", 1)[0], trained(c.split("=", 1)[1])) for c in args.checkpoint]
    for split in chosen:
        for file in splits[split]:
            dataset = data.dataset(data.resolve(file), require_gt=True)
            batch = load_all(dataset)
            if split == "valid-mosaic":
                batch = mirror_mosaic(batch)
            print(f"\n{split}: {file} ({len(dataset)} images, {tuple(batch['gt'].shape[1:])})")
            print(f"{'method':24s} " + " ".join(f"{e:16s}" for e in EDGES) + " SAM      ERGAS    Q2n")
            print(row("up (23-tap)", batch["up"], batch, data.scale, dataset.ratio))
            for name in args.classical:
                record = training_free_record(name, {}, dataset, data.sensor)
                model = build_from_record(record)
                print(row(name, fuse_all(model, batch), batch, data.scale, dataset.ratio))
            for label, model in models:
                print(row(label, fuse_all(model, batch), batch, data.scale, dataset.ratio))


if __name__ == "__main__":
    main()
