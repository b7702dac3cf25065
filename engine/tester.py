"""Testing a trained checkpoint: per-image indices on every test file, tables, CSV/JSON, images."""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from data.datasets import FusionData
from engine.checkpoint import load_model_weights
from engine.evaluation import Scores, check_dim_cut, evaluate
from engine.model_record import (
    build_from_record,
    check_against_record,
    is_training_free,
    recorded_checkpoint,
    training_free_record,
)
from engine.options import Options, model_kwargs
from engine.run_dir import create_run_dir, list_runs, run_of
from engine.training_parts import select_device
from metrics.report import csv_number, format_mean_std
from utils.errors import UserInputError
from utils.jsonio import dumps_strict
from utils.tables import text_table


def find_checkpoint(options: Options) -> Path:
    """``test.checkpoint``: ``best``/``latest`` of the newest run of these options, or a path."""
    choice = options.test.checkpoint
    if choice not in ("best", "latest"):
        return Path(choice)
    runs = list_runs(options)
    if not runs:
        raise UserInputError(
            f"no run of '{options.name}' under '{options.log_root}': train first "
            "(python train.py --option_path ...) or set test.checkpoint to a checkpoint file"
        )
    path = runs[-1] / "checkpoints" / f"{choice}.pth"
    if not path.is_file():
        hint = (
            "the run had no validation file: set test.checkpoint: latest" if choice == "best" else "train it"
        )
        raise UserInputError(f"the newest run {runs[-1]} has no {choice}.pth: {hint}")
    return path


def load_trained_model(options: Options, path: Path, device: torch.device) -> tuple[torch.nn.Module, dict]:
    """Rebuild the checkpoint's model (its stored band counts, ratio and options) and load it."""
    state, record = recorded_checkpoint(path, "checkpoint")
    name, _ = model_kwargs(options)
    if record["name"] != name:
        raise UserInputError(
            f"checkpoint '{path}' holds a {record['name']} model but model.name is {name}: "
            "point test.checkpoint at a checkpoint of this model"
        )
    model = build_from_record(record)
    load_model_weights(model, state, str(path))
    return model.to(device).eval(), record


def test_files(options: Options) -> list[tuple[str, bool]]:
    """(resolved path, has reference) of every test file: reduced-resolution ones first."""
    resolve = options.data.resolve
    files = [(resolve(f), True) for f in options.data.test_reduced]
    files += [(resolve(f), False) for f in options.data.test_full]
    if not files:
        raise UserInputError("no test files: set data.test_reduced and/or data.test_full")
    return files


def model_for_testing(
    options: Options, device: torch.device
) -> tuple[torch.nn.Module, dict, Path | None, str]:
    """(model in eval mode, its record, the run folder results go to, checkpoint or 'training-free').

    A trained model comes from ``test.checkpoint``; its results go beside the training run. A
    training-free method (built for the band counts of the first test file) or a released
    checkpoint outside a run folder gets None: a new run folder, made once the inputs are checked.
    """
    name, kwargs = model_kwargs(options)
    if is_training_free(name):
        file, reduced = test_files(options)[0]
        data = options.data.dataset(file, require_gt=reduced)
        model, record = training_free_model(name, kwargs, data, options.data.sensor, device)
        return model, record, None, "training-free"
    path = find_checkpoint(options)
    model, record = load_trained_model(options, path, device)
    return model, record, run_of(path), str(path)


def training_free_model(
    name: str, kwargs: dict, data: FusionData, sensor: str, device: torch.device
) -> tuple[torch.nn.Module, dict]:
    """(model in eval mode on ``device``, its record) of a training-free method sized by ``data``;
    ``sensor`` fills its MTF preset."""
    record = training_free_record(name, kwargs, data, sensor)
    return build_from_record(record).to(device).eval(), record


def format_table(title: str, scores: dict[str, Scores], keys: list[str]) -> str:
    """A text table: one row per method with mean +- std of each index and the time per image."""
    rows = []
    for method, s in scores.items():
        mean, std = s.mean(), s.std()
        cells = [format_mean_std(mean[k], std[k]) for k in keys]
        seconds = sum(s.seconds) / max(len(s.seconds), 1)
        rows.append([method, *cells, f"{seconds:.3f}"])
    return title + "\n" + text_table(["method", *keys, "s/img"], rows)


def format_per_image(scores: Scores, keys: list[str]) -> str:
    """One line per image of one method."""
    rows = [
        [str(i), *(f"{scores.values[k][i]:.4f}" for k in keys)] for i in range(len(scores.values[keys[0]]))
    ]
    return text_table(["image", *keys], rows)


def save_fused(fused: torch.Tensor, scale: float, folder: Path, stem: str, start: int, fmt: str) -> None:
    """Write fused images (N x C x H x W, scaled) at digital-number scale, one file per image.

    ``.mat`` and ``.tif`` are bands last (H x W x C) as MATLAB and GIS tools expect; ``.h5`` is
    bands first (C x H x W) under the key ``fused``, like the public collections.
    """
    folder.mkdir(parents=True, exist_ok=True)
    images = (fused.double() * scale).cpu().numpy()
    for offset, image in enumerate(images):
        path = folder / f"{stem}_{start + offset:03d}.{fmt}"
        if fmt == "mat":
            import scipy.io

            scipy.io.savemat(path, {"I_fused": image.transpose(1, 2, 0)})
        elif fmt == "tif":
            import tifffile

            tifffile.imwrite(path, image.transpose(1, 2, 0).astype("float32"))
        else:
            import h5py

            with h5py.File(path, "w") as handle:
                handle.create_dataset("fused", data=image)


def run_tests(options: Options, log: Callable[[str], object] = print) -> dict:
    """Score the trained model (and the upsampled-input baseline) on every test file."""
    device = select_device(options.device)
    model, record, run_dir, source = model_for_testing(options, device)
    log(f"checkpoint: {source}")
    results: dict = {"checkpoint": source, "files": {}}
    opened = []  # every file is opened and checked before anything is scored or written
    for file, reduced in test_files(options):
        data = options.data.dataset(file, require_gt=reduced)
        check_against_record(data, record, file, "test")
        if reduced:
            check_dim_cut(data, options.test.dim_cut, "test.dim_cut")
        opened.append((file, reduced, data))
    run_dir = run_dir or create_run_dir(options)
    for file, reduced, data in opened:
        if not reduced and data.has_gt:
            log(f"note: '{file}' has gt but is listed under test_full: scored without reference")
        stem = Path(file).stem
        saver = None
        if options.test.save_images is not None:
            counter = {"n": 0}

            def saver(
                batch: dict, fused: torch.Tensor, stem: str = stem, counter: dict[str, int] = counter
            ) -> None:
                save_fused(
                    fused,
                    options.data.scale,
                    run_dir / "fused",
                    stem,
                    counter["n"],
                    options.test.save_images,
                )
                counter["n"] += fused.shape[0]

        loader = DataLoader(data, batch_size=options.test.batch_size, num_workers=options.data.num_workers)
        common = dict(
            device=device,
            scale=options.data.scale,
            ratio=record["ratio"],
            dim_cut=options.test.dim_cut,
            sensor=options.data.sensor,
        )
        scores = {record["name"]: evaluate(model, loader, on_batch=saver, **common)}
        if options.test.baseline:
            scores["EXP (input up)"] = evaluate(None, loader, **common)
        keys = list(scores[record["name"]].values)
        kind = "reduced resolution" if reduced else "full resolution"
        log(f"\n{file} ({kind}, {len(data)} images)")
        log(format_per_image(scores[record["name"]], keys))
        log(format_table("mean +- std", scores, keys))
        results["files"][file] = {
            "resolution": kind,
            "methods": {
                m: {"mean": s.mean(), "std": s.std(), "per_image": s.values} for m, s in scores.items()
            },
        }
    write_results(results, run_dir)
    log(f"\nresults written to {run_dir / 'test_results.json'} and .csv")
    return results


def write_results(results: dict, run_dir: Path) -> None:
    """``test_results.json`` (everything) and ``test_results.csv`` (one row per file, method, index)."""
    (run_dir / "test_results.json").write_text(dumps_strict(results))
    with open(run_dir / "test_results.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file", "resolution", "method", "index", "mean", "std"])
        for file, entry in results["files"].items():
            for method, values in entry["methods"].items():
                for key, mean in values["mean"].items():
                    writer.writerow(
                        [
                            file,
                            entry["resolution"],
                            method,
                            key,
                            csv_number(mean),
                            csv_number(values["std"][key]),
                        ]
                    )
