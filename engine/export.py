"""Release a trained model: ``python -m engine.export RUN_OR_CHECKPOINT OUT.pth``.

Writes the weights and the model record of a checkpoint (``best.pth`` of a run folder by default)
without the optimizer, scheduler and scaler states, so the file is about a third of the size;
``test.py``, ``predict.py`` and ``test.checkpoint: OUT.pth`` load it as they load any checkpoint
written by ``train.py``. Beside it, ``OUT.json`` records where it came from: the training command,
the options, the step, the validation history and the commit of the code that trained it.
"""

from __future__ import annotations

import argparse
import subprocess
from pathlib import Path

from engine.checkpoint import load_checkpoint, save_atomic
from utils.errors import UserInputError, exit_on_user_error
from utils.jsonio import dumps_strict

KEPT = ("model", "model_record", "step", "best", "history", "metric")


def source_checkpoint(path: Path) -> Path:
    """``path`` itself, or ``checkpoints/best.pth`` of a run folder."""
    if path.is_dir():
        path = path / "checkpoints" / "best.pth"
    if not path.is_file():
        raise UserInputError(f"'{path}' is neither a checkpoint nor a run folder with checkpoints/best.pth")
    return path


def git_commit(folder: Path) -> str | None:
    """The commit checked out in ``folder`` (None outside a git checkout)."""
    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=folder, capture_output=True, text=True, check=True
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    return done.stdout.strip()


def export(source: Path, out: Path, commit: str | None = None) -> dict:
    """Write the weights-only checkpoint ``out`` and its provenance ``out.json``; return the latter."""
    path = source_checkpoint(source)
    state = load_checkpoint(path)
    if "model_record" not in state:
        raise UserInputError(
            f"checkpoint '{path}' has no model record: export checkpoints written by train.py"
        )
    save_atomic({k: state[k] for k in KEPT if k in state}, out)
    run = path.parent.parent
    info = {
        "checkpoint": out.name,
        "from": str(path),
        "command": (run / "command.txt").read_text().strip() if (run / "command.txt").is_file() else None,
        "options": (run / "options.yml").read_text() if (run / "options.yml").is_file() else None,
        "commit": commit if commit is not None else git_commit(Path(__file__).resolve().parents[1]),
        "step": state.get("step"),
        "best": state.get("best"),
        "validation": state.get("history"),
    }
    out.with_suffix(".json").write_text(dumps_strict(info, indent=1) + "\n")
    return info


@exit_on_user_error
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m engine.export", description=__doc__)
    parser.add_argument("source", type=Path, help="a run folder (its best.pth) or a checkpoint file")
    parser.add_argument("out", type=Path, help="the weights-only checkpoint to write (.pth)")
    args = parser.parse_args(argv)
    info = export(args.source, args.out)
    print(f"wrote {args.out} and {args.out.with_suffix('.json')} (step {info['step']})")


if __name__ == "__main__":
    main()
