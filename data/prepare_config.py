"""What ``python -m data.prepare`` builds, in typed form: :class:`PrepareConfig` (its options,
and the command line that builds the same files), the file names of the public collections
(:func:`output_paths`) and the size checks."""

from __future__ import annotations

import shlex
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from data.samples import check_augment, check_degrade
from data.split import Rect, count_patches
from utils.errors import UserInputError


@dataclass
class PrepareConfig:
    """What :func:`data.prepare.prepare` builds: the typed form of ``python -m data.prepare``'s options.

    ms / pan: image files (GeoTIFF, .npy C x H x W, .mat H x W x C, ``file.mat:VAR``), several
    files are stacked as bands; without ``pan`` the guide is synthesised from the MS bands with
    ``pan_weights`` (one PAN band, one weight per MS band) or ``guide_bands`` (0-based band
    copies). Sizes (``patch``, ``stride``, ``test_size``, ``test_region``) are in aligned MS pixels;
    ``scale`` is 'auto' (the smallest 2^k - 1 covering the data) or a positive number.
    """

    ms: list[str]
    out: str
    name: str
    pan: list[str] | None = None
    pan_weights: list[float] | None = None
    guide_bands: list[int] | None = None
    ratio: int | None = None
    sensor: str = "none"
    gains: list[float] | None = None
    patch: int = 64
    stride: int | None = None  # default: patch / 2
    degrade: str = "patch"  # data.samples.DEGRADE_MODES
    augment: str | None = None  # AUGMENT_MODES; default: 'dihedral' (all eight transforms of each
    # training patch) with degrade 'patch', 'none' with 'region' or full_train
    val_fraction: float = 0.1
    test_region: Rect | None = None  # default: the last test_size rows
    test_size: int = 64
    grid: str = "auto"
    scale: str | float = "auto"
    layout: str = "auto"
    full_train: bool = False  # also full-resolution training and validation files
    force: bool = False
    augment_given: bool = field(default=False, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.stride is None:
            self.stride = max(1, self.patch // 2)
        check_degrade(self.degrade)
        self.augment_given = self.augment is not None
        if self.augment is None:
            self.augment = "dihedral" if self.degrade == "patch" and not self.full_train else "none"
        check_augment(self.augment, self.degrade, self.full_train)

    def argv(self) -> list[str]:
        """The ``python -m data.prepare`` arguments that build the same files."""

        def joined(values: Iterable[object]) -> str:
            return ",".join(str(v) for v in values)  # str(float): the shortest exact form

        flags = ["--ms", *map(str, self.ms)]
        if self.pan:
            flags += ["--pan", *map(str, self.pan)]
        for flag, values in (("--pan-weights", self.pan_weights), ("--guide-bands", self.guide_bands)):
            if values is not None:
                flags += [flag, joined(values)]
        if self.ratio is not None:
            flags += ["--ratio", str(self.ratio)]
        flags += ["--sensor", self.sensor]
        if self.gains is not None:
            flags += ["--gains", joined(self.gains)]
        flags += [
            "--patch",
            str(self.patch),
            "--stride",
            str(self.stride),
            "--test-size",
            str(self.test_size),
            "--degrade",
            self.degrade,
        ]
        flags += ["--augment", self.augment]
        flags += ["--val-fraction", str(self.val_fraction), "--grid", self.grid]
        if self.test_region is not None:
            flags += ["--test-region", joined(self.test_region)]
        flags += ["--scale", str(self.scale), "--layout", self.layout]
        flags += ["--out", str(self.out), "--name", self.name]
        flags += ["--full-train"] if self.full_train else []
        return flags + (["--force"] if self.force else [])

    def command_line(self) -> str:
        """The command recorded in every file's ``command`` attribute (``--force`` left out)."""
        return "python -m data.prepare " + shlex.join([a for a in self.argv() if a != "--force"])


def output_paths(out: Path, name: str, full: bool, full_train: bool = False) -> dict[str, Path]:
    """The file names of the public collections for dataset ``name`` (``full``: the
    full-resolution test file; ``full_train``: full-resolution training and validation files)."""
    if not name or any(ch in name for ch in "/\\") or name.startswith("."):
        raise UserInputError(f"--name must be a plain name such as 'landsat8', got '{name}'")
    paths = {
        "train": out / f"train_{name}.h5",
        "valid": out / f"valid_{name}.h5",
        "test_reduced": out / f"test_{name}_multiExm1.h5",
    }
    if full:
        paths["test_full"] = out / f"test_{name}_OrigScale_multiExm1.h5"
    if full_train:
        paths["train_full"] = out / f"train_{name}_OrigScale.h5"
        paths["valid_full"] = out / f"valid_{name}_OrigScale.h5"
    return paths


def check_sizes(config: PrepareConfig, ratio: int) -> None:
    """Patch, stride and test size must be positive multiples of the ratio."""
    for flag, value in (
        ("--patch", config.patch),
        ("--stride", config.stride),
        ("--test-size", config.test_size),
    ):
        if value < ratio or value % ratio:
            raise UserInputError(f"{flag} {value} must be a positive multiple of the ratio {ratio}")


def training_bytes(config: PrepareConfig, train: list[Rect], channels: int, guide: int, ratio: int) -> int:
    """Bytes of the training file's float64 arrays (gt, up, lr, guide) over the regions ``train``,
    with ``config.augment``'s copies."""
    p = config.patch
    per_sample = 8 * (2 * channels * p * p + channels * (p // ratio) ** 2 + guide * p * p)
    samples = sum(count_patches(r, p, config.stride) for r in train)
    return samples * per_sample * (8 if config.augment == "dihedral" else 1)


def free_memory() -> int:
    """Bytes of memory available now (Linux's MemAvailable); unlimited where it is not known."""
    try:
        with open("/proc/meminfo") as info:
            lines = [line.split() for line in info if line.startswith("MemAvailable:")]
        return int(lines[0][1]) * 1024
    except (OSError, IndexError, ValueError):  # not Linux
        return 2**62


def fit_augment(config: PrepareConfig, train_bytes: int, free: int | None = None) -> str | None:
    """Write each patch once when the default eight-transform training file would take more than
    a third of the free memory (prepare holds it about twice): sets ``config.augment`` to 'none'
    and returns the line to print; None (nothing changed) otherwise or when --augment was given."""
    free = free_memory() if free is None else free
    if config.augment != "dihedral" or config.augment_given or 3 * train_bytes <= free:
        return None
    config.augment = "none"
    return (
        f"note: all eight flips and turns would make a {train_bytes / 1e9:.1f} GB training file, more "
        f"than a third of the {free / 1e9:.1f} GB of free memory: writing each patch once (train it "
        "with data.augment: dihedral), or pass --augment dihedral to write the eight copies anyway"
    )
