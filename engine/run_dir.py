"""Run folders: ``logs/<task>/<name>/<timestamp>/`` with the options, command, environment and log.

Each run folder holds ``options.yml`` (the resolved options), ``command.txt`` (the command line),
``environment.txt`` (versions and machine), ``train.log`` (the text log), ``checkpoints/`` and
the TensorBoard event files. Resuming a run continues in its own folder.
"""

from __future__ import annotations

import logging
import platform
import shlex
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from engine.options import Options, dump_options, load_options
from utils.errors import UserInputError
from utils.schema import to_dict

if TYPE_CHECKING:
    import torch

LOGGER_NAME = "ramsf"


def run_root(options: Options) -> Path:
    """``<log_root>/<task>/<name>``: the folder holding every run of this option set."""
    return Path(options.log_root) / options.task / options.name


def list_runs(options: Options) -> list[Path]:
    """Existing run folders of this option set, oldest first."""
    root = run_root(options)
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and (p / "options.yml").is_file())


def create_run_dir(options: Options) -> Path:
    """Make a new timestamped run folder and write options, command and environment into it."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = run_root(options) / stamp
    suffix = 1
    while path.exists():
        path = run_root(options) / f"{stamp}-{suffix}"
        suffix += 1
    try:
        path.mkdir(parents=True)
    except OSError as exc:
        raise UserInputError(
            f"cannot create the run folder '{path}' ({exc.strerror}): set log_root to a writable folder"
        ) from None
    (path / "options.yml").write_text(dump_options(options))
    (path / "command.txt").write_text(shlex.join([sys.executable, *sys.argv]) + "\n")
    (path / "environment.txt").write_text(environment_report())
    return path


def processor_name() -> str:
    """The CPU model (from /proc/cpuinfo on Linux), or what the platform module knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_name(device: torch.device) -> str:
    """A readable name of a torch device: the GPU model or the CPU model with its thread count."""
    import torch

    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{processor_name()}, {torch.get_num_threads()} threads"


def source_commit() -> str | None:
    """The git commit of this code (with ``+changes`` when the work tree differs), or None."""
    import subprocess

    root = Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    return head.stdout.strip() + ("+changes" if dirty.stdout.strip() else "")


def environment_report() -> str:
    """Versions of Python, the key packages and the machine, one per line."""
    import h5py
    import numpy
    import torch

    lines = [
        f"python {platform.python_version()}",
        f"platform {platform.platform()}",
        f"torch {torch.__version__} (cuda available: {torch.cuda.is_available()})",
        f"numpy {numpy.__version__}",
        f"h5py {h5py.__version__}",
        f"cpu {processor_name()}",
        *([f"commit {commit}"] if (commit := source_commit()) else []),
        f"threads {torch.get_num_threads()}",
    ]
    if torch.cuda.is_available():
        lines += [f"gpu {torch.cuda.get_device_name(i)}" for i in range(torch.cuda.device_count())]
    return "\n".join(lines) + "\n"


def setup_logger(verbose: bool = True) -> logging.Logger:
    """The training logger, writing to the console when ``verbose``; :func:`log_to_file` adds the
    run folder's ``train.log`` once the folder exists."""
    logger = logging.getLogger(LOGGER_NAME)
    for handler in logger.handlers:  # a previous run's console and train.log handlers
        handler.close()
    logger.handlers.clear()
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    if verbose:
        console = logging.StreamHandler(sys.stdout)
        console.setLevel(logging.INFO)  # training losses (DEBUG) go to the file and TensorBoard only
        console.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(console)
    return logger


def log_to_file(logger: logging.Logger, run_dir: Path) -> None:
    """Also write every record of ``logger`` (DEBUG and up) to ``run_dir/train.log``."""
    handler = logging.FileHandler(run_dir / "train.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%Y-%m-%d %H:%M:%S"))
    logger.addHandler(handler)


def latest_checkpoint(options: Options, name: str = "latest.pth") -> Path | None:
    """The newest run folder's ``checkpoints/<name>``, if any run of these options saved one."""
    for run in reversed(list_runs(options)):
        path = run / "checkpoints" / name
        if path.is_file():
            return path
    return None


def run_of(checkpoint: Path) -> Path | None:
    """The train.py run folder a checkpoint sits in (``RUN/checkpoints/NAME.pth`` beside
    ``RUN/options.yml``), or None for a file elsewhere."""
    run = checkpoint.parent.parent
    return run if checkpoint.parent.name == "checkpoints" and (run / "options.yml").is_file() else None


def find_resume(options: Options) -> tuple[Path | None, Path | None]:
    """The run folder to continue (None: a new one) and the checkpoint to resume from.

    ``train.resume: auto`` continues the newest run of the same name in its own folder when it
    has a ``latest.pth``; ``none`` starts a new run; a path resumes from that file in a new run
    (refused, as ``auto`` is, when the options differ from those of the run folder it sits in).
    Only reads: nothing is written until :func:`open_run`, once every input has been checked.
    """
    resume = options.train.resume
    if resume == "none":
        return None, None
    if resume == "auto":
        found = latest_checkpoint(options)
        if found is None:
            return None, None
        run = found.parent.parent
        check_same_training(options, run)
        return run, found
    path = Path(resume)
    if not path.is_file():
        raise UserInputError(
            f"option 'train.resume' is '{resume}', which is no file: use auto, none or a checkpoint path"
        )
    source = run_of(path)
    if source is not None:
        check_same_training(options, source)
    return None, path


def open_run(options: Options, run: Path | None) -> Path:
    """``run`` with this command line appended to its ``command.txt``, or a new run folder."""
    if run is None:
        return create_run_dir(options)
    with open(run / "command.txt", "a") as handle:
        handle.write(shlex.join([sys.executable, *sys.argv]) + "\n")
    return run


# Options that do not change what is trained: a resumed run may change them.
NOT_TRAINING = {
    "train.resume",
    "log_root",
    "tensorboard",
    "device",
    "demo",
    "test",
    "adapt",
    "data.root",
    "data.test_reduced",
    "data.test_full",
    "data.num_workers",
    "train.log_every",
    "train.save_every",
    "val.images",
}


def training_signature(options: Options) -> dict[str, object]:
    """Flat ``{'train.optimizer.lr': 0.0003, ...}`` of the options that decide the trained weights."""
    tree = to_dict(options)
    tree["data"]["train"] = options.data.resolve(options.data.train) if options.data.train else None
    tree["data"]["valid"] = options.data.resolve(options.data.valid) if options.data.valid else None
    full = options.data.valid_full
    tree["data"]["valid_full"] = options.data.resolve(full) if full else None
    flat: dict[str, object] = {}

    def walk(node: object, prefix: str) -> None:
        if prefix in NOT_TRAINING:
            return
        if isinstance(node, dict) and node and prefix != "model":
            for key, value in node.items():
                walk(value, f"{prefix}.{key}" if prefix else key)
        else:
            flat[prefix] = node

    walk(tree, "")
    return flat


def check_same_training(options: Options, run: Path) -> None:
    """Refuse to resume ``run`` with options that would train something else."""
    saved = training_signature(load_options(run / "options.yml"))
    now = training_signature(options)
    changed = [
        f"{k} {saved.get(k)!r} -> {now.get(k)!r}"
        for k in sorted(set(saved) | set(now))
        if saved.get(k) != now.get(k)
    ]
    if changed:
        raise UserInputError(
            f"the options differ from those of the run being resumed ({run}): {'; '.join(changed[:4])}; "
            "set train.resume: none to start a new run with them (train.init_from: a checkpoint "
            "starts one from its weights)"
        )
