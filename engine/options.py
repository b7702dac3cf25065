"""The option file: its schema (every key documented here), loading, overrides and saving.

``python train.py --option_path option.yml --set train.optimizer.lr=1e-4`` reads the YAML with
``yaml.safe_load``, applies the ``--set`` overrides (values parsed as YAML), and checks the
result against the dataclasses below. Unknown keys and wrong types are refused with a one-line
message naming the key (and the closest valid key).
"""

from __future__ import annotations

import argparse
import inspect
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import yaml

from data.augment import GROUPS
from data.datasets import DATASETS, FusionData
from engine.losses import LOSSES
from metrics.report import FULL_KEYS, REDUCED_KEYS
from protocols.mtf import canonical_sensor
from utils.errors import UserInputError
from utils.registry import suggest
from utils.schema import from_dict, set_path, to_dict


@dataclass
class DataOptions:
    """Where the HDF5 files are and how to read them."""

    scale: float  # digital-number scale the files are divided by (2047 for WV3, 1023 for GF2)
    root: str | None = None  # folder that relative file names below are resolved against
    type: str = "FusionH5Dataset"  # a registered dataset class (data.datasets.DATASETS)
    train: str | None = None  # training file (with gt; without: full-resolution losses only)
    valid: str | None = None  # validation file (with gt): SAM, ERGAS, Q2n, PSNR
    valid_full: str | None = None  # full-resolution validation file (no gt): D_lambda, D_s, QNR, HQNR
    test_reduced: list[str] = field(default_factory=list)  # reduced-resolution test files
    test_full: list[str] = field(default_factory=list)  # full-resolution test files (no gt)
    layout: Literal["auto", "pancollection", "hyperpan", "hyperspectral"] = "auto"
    ratio: int | None = None  # checked against the files; inferred when null
    # training-sample augmentation: true or dihedral (random flips and quarter turns), transpose
    # (identity or transpose: keeps the decimation phase of even ratios, see data/augment.py), false
    augment: bool | Literal[GROUPS] = False
    num_workers: int = 0  # DataLoader worker processes
    max_valid_samples: int | None = None  # validate on the first N samples only
    sensor: str = "none"  # MTF preset for the full-resolution indices (QB, WV3, ...)
    rgb_bands: list[int] | None = None  # bands shown as R, G, B in TensorBoard (0-based)

    def resolve(self, name: str) -> str:
        """``name`` under ``root`` when it is relative and a root is set."""
        if self.root is None or Path(name).is_absolute():
            return name
        return str(Path(self.root) / name)

    def dataset(self, path: str, **kwargs: Any) -> FusionData:
        """The registered dataset ``type`` reading ``path`` (already resolved) at this scale and layout."""
        return DATASETS.build(self.type, path=path, scale=self.scale, layout=self.layout, **kwargs)

    def check(self) -> None:
        if self.scale <= 0:
            raise UserInputError(f"option 'data.scale' must be positive, got {self.scale}")
        for key, check, value in (
            ("sensor", canonical_sensor, self.sensor),
            ("type", DATASETS.get, self.type),
        ):
            try:
                check(value)
            except UserInputError as exc:
                raise UserInputError(f"option 'data.{key}': {exc}") from None
        if self.max_valid_samples is not None and self.max_valid_samples < 1:
            raise UserInputError(
                f"option 'data.max_valid_samples' is {self.max_valid_samples}: "
                "give 1 or more, or null for all"
            )
        if self.rgb_bands is not None and (len(self.rgb_bands) != 3 or min(self.rgb_bands) < 0):
            raise UserInputError(
                "option 'data.rgb_bands' must be three band indices (0-based), e.g. [4, 2, 1]"
            )
        if self.num_workers < 0:
            raise UserInputError("option 'data.num_workers' must be 0 or more")


@dataclass
class LossTerm:
    """One weighted loss term; its other keys are the loss's options, e.g.
    ``{name: SpatialConsistency, weight: 0.3, window: 4}`` (a ``sensor`` left out is data.sensor)."""

    EXTRA_KEYS: ClassVar[str] = "options"
    name: str = "L1"  # a registered loss (L1, MSE, Charbonnier, SAM, SpectralConsistency, ...)
    weight: float = 1.0
    options: dict[str, Any] = field(default_factory=dict)  # the keys besides name and weight

    def check(self) -> None:
        parameters = inspect.signature(LOSSES.get(self.name)).parameters.values()
        accepted = [p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
        for key in self.options:
            if key not in accepted:
                raise UserInputError(
                    f"unknown option '{key}' of loss {self.name}{suggest(str(key), accepted)}; "
                    f"it takes: {', '.join(accepted) or 'no options (name and weight only)'}"
                )

    def spec(self) -> tuple[str, float, dict[str, Any]]:
        """(name, weight, options) as :class:`engine.losses.CompositeLoss` takes a term."""
        return self.name, self.weight, dict(self.options)


@dataclass
class OptimizerOptions:
    name: Literal["Adam", "AdamW", "SGD"] = "Adam"
    lr: float = 3e-4
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    eps: float = 1e-8
    weight_decay: float = 0.0
    momentum: float = 0.9  # SGD only

    def check(self) -> None:
        if not 0 < self.lr < 1e37:  # near 3.4e38 the optimizer's float32 arithmetic overflows
            raise UserInputError(
                f"option 'train.optimizer.lr' must be positive and below 1e37, got {self.lr} "
                "(typical: 1e-4 to 1e-3)"
            )


@dataclass
class SchedulerOptions:
    name: Literal["none", "MultiStepLR", "CosineAnnealingLR"] = "none"
    milestones: list[int] = field(default_factory=list)  # MultiStepLR: in epochs or iterations, as trained
    gamma: float = 0.1  # MultiStepLR factor
    eta_min: float = 0.0  # cosine floor


@dataclass
class TrainOptions:
    batch_size: int = 32
    epochs: int | None = None  # train for this many epochs ...
    iterations: int | None = None  # ... or this many optimizer steps (exactly one of the two)
    patch_size: int | None = None  # refuse training images smaller than this
    loss: list[LossTerm] = field(default_factory=lambda: [LossTerm()])
    optimizer: OptimizerOptions = field(default_factory=OptimizerOptions)
    scheduler: SchedulerOptions = field(default_factory=SchedulerOptions)
    grad_clip: float | None = None  # max gradient norm
    # validate, keep best.pth and infer with an exponential moving average of the weights, updated
    # after every step with this decay (e.g. 0.995: about the last 200 steps; engine/ema.py, measured
    # in README, "How the recipe was chosen"); null: off
    ema_decay: float | None = None
    nonfinite_loss: Literal["stop", "skip"] = "stop"  # what a NaN/Inf loss does
    # mixed precision: bf16, fp16 (GPUs, with loss scaling), auto (bf16 where the device computes
    # bf16 natively: GPUs, CPUs with AMX or AVX-512 BF16; float32 elsewhere) or none; also what
    # predict.py --adapt trains in
    amp: Literal["none", "auto", "bf16", "fp16"] = "none"
    resume: str = "auto"  # auto (latest checkpoint of this run name), none, or a checkpoint path
    init_from: str | None = None  # start from these weights (same model record), fresh optimizer, step 0
    log_every: int = 10  # iterations between logged training losses
    save_every: int = 200  # iterations between 'latest' checkpoints (also at each validation)

    def check(self) -> None:
        if (self.epochs is None) == (self.iterations is None):
            raise UserInputError("set exactly one of 'train.epochs' and 'train.iterations'")
        length, key = (self.epochs, "epochs") if self.epochs is not None else (self.iterations, "iterations")
        if length < 1:
            raise UserInputError(f"option 'train.{key}' is {length}: it must be at least 1")
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise UserInputError(
                f"option 'train.grad_clip' is {self.grad_clip}: give a positive gradient norm "
                "(e.g. 1.0), or leave it out for no clipping"
            )
        if self.ema_decay is not None and not 0 <= self.ema_decay < 1:
            raise UserInputError(
                f"option 'train.ema_decay' is {self.ema_decay}: give a decay in [0, 1) such as "
                "0.995, or null for no weight averaging"
            )
        if not self.loss:
            raise UserInputError(
                "option 'train.loss' needs at least one term, e.g. [{name: L1, weight: 1.0}]"
            )
        if self.patch_size is not None and self.patch_size < 1:
            raise UserInputError(
                f"option 'train.patch_size' is {self.patch_size}: give 1 or more pixels, or null"
            )
        for key in ("batch_size", "log_every", "save_every"):
            if getattr(self, key) < 1:
                raise UserInputError(f"option 'train.{key}' must be at least 1")


REDUCED_VALIDATION = ("SAM", "ERGAS", "Q2n", "PSNR")
"""Validation indices on a reduced-resolution file (``data.valid``, with gt)."""
FULL_VALIDATION = ("D_lambda", "D_s", "QNR", "HQNR")
"""Validation indices on a full-resolution file (``data.valid_full``, no gt)."""


@dataclass
class ValOptions:
    every: int = 1  # validate every N epochs (or N iterations when 'unit' is iteration)
    unit: Literal["epoch", "iteration"] = "epoch"
    # the best checkpoint's metric: SAM, ERGAS, Q2n, PSNR (data.valid; REDUCED_VALIDATION) or
    # D_lambda, D_s, QNR, HQNR (data.valid_full; FULL_VALIDATION)
    metric: Literal[(*REDUCED_VALIDATION, *FULL_VALIDATION)] = "SAM"
    dim_cut: int = 0  # border cut for validation indices (patches are small)
    images: int = 2  # validation images shown in TensorBoard

    def check(self) -> None:
        if self.every < 1 or self.images < 0 or self.dim_cut < 0:
            raise UserInputError("options 'val.every' must be >= 1 and 'val.images', 'val.dim_cut' >= 0")


@dataclass
class TestOptions:
    checkpoint: str = "best"  # best, latest, or a path to a .pth file
    dim_cut: int = 21  # the toolbox demo's border cut; 0 turns it off
    save_images: Literal["mat", "tif", "h5"] | None = None
    batch_size: int = 1
    baseline: bool = True  # also score the upsampled input ('EXP' for 23-tap files)

    def check(self) -> None:
        if self.batch_size < 1 or self.dim_cut < 0:
            raise UserInputError("options 'test.batch_size' must be >= 1 and 'test.dim_cut' >= 0")


def full_resolution_losses() -> list[LossTerm]:
    """The default full-resolution loss: spectral + 0.01 spatial consistency (chosen on the
    Landsat-8 demo's full-resolution validation HQNR; Z-PNN's 0.36 let the spatial term take over)."""
    return [LossTerm("SpectralConsistency", 1.0), LossTerm("SpatialConsistency", 0.01)]


@dataclass
class AdaptOptions:
    """``predict.py --adapt STEPS``: fine-tuning a copy of the checkpoint on the scene it fuses."""

    loss: list[LossTerm] = field(default_factory=full_resolution_losses)  # needs no gt
    lr: float = 1e-5  # Adam learning rate (Z-PNN's for WV3)
    crop: int = 128  # crop side in guide pixels (the scene, if smaller)
    batch_size: int = 4  # crops per step (one when a crop covers the scene)

    def check(self) -> None:
        if not 0 < self.lr < 1:
            raise UserInputError(
                f"option 'adapt.lr' must be in (0, 1), got {self.lr} (typical: 1e-5 to 1e-4)"
            )
        if self.crop < 16 or self.batch_size < 1:
            raise UserInputError(
                "options 'adapt.crop' must be >= 16 (guide pixels) and 'adapt.batch_size' >= 1"
            )
        if not self.loss:
            raise UserInputError(
                "option 'adapt.loss' needs at least one term, e.g. [{name: SpectralConsistency}]"
            )


@dataclass
class CompareMethod:
    """One row of a comparison: a trained model (its option file) or a training-free method."""

    label: str | None = None  # row name; default: the model name
    option_path: str | None = None  # option file of a trained model (its newest run is used)
    checkpoint: str = "best"  # best, latest or a .pth path (with option_path)
    model: dict[str, Any] | None = None  # a training-free method, e.g. {name: GSA}

    def check(self) -> None:
        if (self.option_path is None) == (self.model is None):
            raise UserInputError(
                "each compare.methods entry needs exactly one of 'option_path' (a trained model) "
                "and 'model' (a training-free method such as {name: GSA})"
            )
        if self.model is not None and "name" not in self.model:
            raise UserInputError("a compare.methods 'model' entry needs a 'name', e.g. {name: GSA}")


@dataclass
class CompareOptions:
    """``python test.py`` with methods listed here writes one comparison table (engine/compare.py)."""

    methods: list[CompareMethod] = field(default_factory=list)
    image: int = 0  # test image (index in the first reduced-resolution file) of the visual figure
    charts: str | None = "charts"  # folder the EP chart and visual comparison are drawn into
    chart_index: str = "ERGAS"  # the quality index on the EP chart's vertical axis
    flops: bool = True  # count FLOPs (torch.utils.flop_counter) on one test image

    def check(self) -> None:
        if self.image < 0:
            raise UserInputError("option 'compare.image' must be 0 or more")
        if self.chart_index not in REDUCED_KEYS + FULL_KEYS:
            raise UserInputError(
                f"option 'compare.chart_index' is '{self.chart_index}'; use one of "
                f"{', '.join(REDUCED_KEYS + FULL_KEYS)}"
            )
        labels = [m.label for m in self.methods if m.label is not None]
        if len(labels) != len(set(labels)):
            raise UserInputError("compare.methods labels must be unique")


@dataclass
class Options:
    """The whole option file."""

    name: str
    task: Literal["pansharpening", "hs_pansharpening", "hsms_fusion"]
    data: DataOptions
    model: dict[str, Any] = field(default_factory=dict)  # {name: RAMSF, width: 64, ...}
    train: TrainOptions = field(default_factory=TrainOptions)
    val: ValOptions = field(default_factory=ValOptions)
    test: TestOptions = field(default_factory=TestOptions)
    compare: CompareOptions = field(default_factory=CompareOptions)
    adapt: AdaptOptions = field(default_factory=AdaptOptions)
    seed: int = 42
    device: str = "auto"  # auto, cpu, cuda, cuda:1
    deterministic: bool = False  # deterministic kernels (exact resume on GPU)
    demo: str | None = None  # build the shipped demo data (landsat8, sentinel2) on first use
    log_root: str = "logs"
    tensorboard: bool = True

    def check(self) -> None:
        if "name" not in self.model and not self.compare.methods:
            raise UserInputError("option 'model.name' is required (e.g. RAMSF)")


def parse_override(text: str) -> tuple[str, Any]:
    """``'train.lr=1e-4'`` -> ``('train.lr', 0.0001)``; the value is parsed as YAML."""
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise UserInputError(f"--set expects KEY=VALUE (e.g. train.batch_size=16), got '{text}'")
    try:
        value = yaml.safe_load(raw) if raw else None
    except yaml.YAMLError:
        raise UserInputError(
            f"--set {text}: the value is not valid YAML (quote strings, close brackets)"
        ) from None
    return key.strip(), value


def load_options(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Options:
    """Read, override and check an option file."""
    path = Path(path)
    if not path.is_file():
        raise UserInputError(f"option file '{path}' does not exist: give --option_path an existing YAML file")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise UserInputError(f"option file '{path}' is not valid YAML{where}: fix its syntax") from None
    if not isinstance(raw, dict):
        raise UserInputError(f"option file '{path}' must hold a mapping of options")
    for text in overrides:
        key, value = parse_override(text)
        set_path(raw, key, value)
    return from_dict(Options, raw)


def dump_options(options: Options) -> str:
    """The resolved options as YAML text."""
    return yaml.safe_dump(to_dict(options), sort_keys=False)


def add_option_arguments(parser: argparse.ArgumentParser) -> None:
    """The command-line arguments shared by train.py and test.py."""
    parser.add_argument("--option_path", "--option-path", required=True, help="YAML option file")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override an option, e.g. --set train.optimizer.lr=1e-4 (repeatable)",
    )


def model_kwargs(options: Options) -> tuple[str, dict[str, Any]]:
    """The model's registered name and its keyword arguments from ``options.model``."""
    spec = dict(options.model)
    if "name" not in spec:
        raise UserInputError(
            "option 'model.name' is required (this file only lists compare.methods: run test.py with it)"
        )
    name = spec.pop("name")
    if not isinstance(name, str):
        raise UserInputError(f"option 'model.name' must be a string, got {name!r}")
    return name, spec


def load_command_options(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Options:
    """The options of a train.py or test.py command: :func:`load_options`, then the demo's data
    files built from the shipped crops when ``demo`` names one (a few seconds, the first time)."""
    options = load_options(path, overrides)
    if options.demo:
        from data.demo import ensure_demo

        ensure_demo(options.demo)
    return options
