"""The files a training reads, checked against its losses and validation metric before anything
is written: a training file without ``gt`` only with losses that need none, a reduced-resolution
validation file (``data.valid``, with gt) and/or a full-resolution one (``data.valid_full``)."""

from __future__ import annotations

from data.datasets import FusionH5Dataset, check_compatible
from engine.evaluation import check_dim_cut
from engine.losses import CompositeLoss
from engine.options import FULL_VALIDATION, REDUCED_VALIDATION, Options
from utils.errors import UserInputError

FULL_BLOCK = 32
"""The block size of the full-resolution indices (D_lambda, D_s): image sides must be multiples."""


def open_training_file(options: Options, loss: CompositeLoss) -> FusionH5Dataset:
    """``data.train``; without ``gt`` (a full-resolution file) only when no loss term needs it."""
    data = options.data
    if data.train is None:
        raise UserInputError("option 'data.train' is required for training: give the training HDF5 file")
    train_set = data.dataset(data.resolve(data.train), ratio=data.ratio)
    needing = loss.needing("gt")
    if needing and not train_set.has_gt:
        raise UserInputError(
            f"training file '{train_set.path}' has no ground truth (a full-resolution file) but the loss "
            f"{', '.join(needing)} needs it: train with losses that need none (SpectralConsistency, "
            "SpatialConsistency) or give a reduced-resolution file"
        )
    loss.check(train_set.lr_channels, train_set.ratio)
    return train_set


def open_validation_files(options: Options, train_set: FusionH5Dataset) -> dict[str, FusionH5Dataset]:
    """{'reduced': data.valid, 'full': data.valid_full} (those given), checked against the training
    file and against ``val.metric``, which must be an index that one of them gives."""
    data = options.data
    opened: dict[str, FusionH5Dataset] = {}
    for kind, name in (("reduced", data.valid), ("full", data.valid_full)):
        if name is None:
            continue
        dataset = data.dataset(data.resolve(name), ratio=train_set.ratio, max_samples=data.max_valid_samples)
        check_compatible(train_set, dataset, "validation file")
        if kind == "reduced":
            check_dim_cut(dataset, options.val.dim_cut, "val.dim_cut")
        if kind == "reduced" and not dataset.has_gt:
            raise UserInputError(
                f"validation file '{dataset.path}' has no ground truth (a full-resolution file): "
                "give it as data.valid_full (scored by D_lambda, D_s, QNR, HQNR)"
            )
        if kind == "full" and dataset.has_gt:
            raise UserInputError(
                f"validation file '{dataset.path}' has ground truth (a reduced-resolution file): give it "
                "as data.valid, and a file without gt (data.prepare's *_OrigScale files) as data.valid_full"
            )
        if kind == "full" and any(side % FULL_BLOCK for side in dataset.size):
            raise UserInputError(
                f"full-resolution validation file '{dataset.path}' has images of "
                f"{dataset.size[0]}x{dataset.size[1]}: D_lambda and D_s need sides that are "
                f"multiples of {FULL_BLOCK} guide pixels"
            )
        opened[kind] = dataset
    metric = options.val.metric
    kind = "reduced" if metric in REDUCED_VALIDATION else "full"
    if opened and kind not in opened:
        given, wanted = (
            ("data.valid_full", "data.valid") if kind == "reduced" else ("data.valid", "data.valid_full")
        )
        choices = FULL_VALIDATION if kind == "reduced" else REDUCED_VALIDATION
        raise UserInputError(
            f"val.metric {metric} is scored on {wanted}, which is not given (only {given}): "
            f"set {wanted} or choose val.metric among {', '.join(choices)}"
        )
    return opened


def summary(means: dict[str, float]) -> str:
    """``SAM 1.2345 ERGAS 1.2345 Q2n 0.9123 PSNR 35.12 QNR 0.9512 ...`` of the indices present."""
    return " ".join(
        f"{key} {means[key]:.2f}" if key == "PSNR" else f"{key} {means[key]:.4f}"
        for key in (*REDUCED_VALIDATION, *FULL_VALIDATION)
        if key in means
    )
