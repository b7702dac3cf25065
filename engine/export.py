"""Release a trained model: ``python -m engine.export RUN_OR_CHECKPOINT OUT.pth [--test OPTIONS]``.

Writes the weights (their moving average where training kept one, ``train.ema_decay``) and the
model record of a checkpoint (``best.pth`` of a run folder by default) without the optimizer,
scheduler and scaler states (nor the trained weights beside their average), about a third of the size;
``test.py``, ``predict.py`` and ``test.checkpoint: OUT.pth`` load it as they load any checkpoint
written by ``train.py``. Beside it, ``OUT.json`` records where it came from: the training command,
the resolved options, the commit of the code that trained it (from the run's environment.txt),
the step and the validation history; with ``--test OPTIONS`` also the test indices that
``test.py --option_path OPTIONS`` gives with the exported file (mean over each test file).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from engine.checkpoint import load_checkpoint, model_weights, save_atomic
from engine.options import load_options
from engine.run_dir import run_of, source_commit
from engine.tester import run_tests
from utils.cli import OneLineParser
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


def run_files(path: Path) -> dict[str, str | None]:
    """command.txt, options.yml and the commit line of environment.txt of the run folder holding
    checkpoint ``path`` (None each when the checkpoint is not in a run folder)."""
    run = run_of(path)
    read = {
        n: (run / n).read_text() if run is not None and (run / n).is_file() else None
        for n in ("command.txt", "options.yml", "environment.txt")
    }
    commits = [
        line.split(" ", 1)[1]
        for line in (read["environment.txt"] or "").splitlines()
        if line.startswith("commit ")
    ]
    return {
        "command": read["command.txt"].strip() if read["command.txt"] else None,
        "options": read["options.yml"],
        "commit": commits[0] if commits else None,
    }


def test_means(options_path: Path, checkpoint: Path) -> dict[str, dict[str, float]]:
    """{'reduced' | 'full': {index: mean}} of ``test.py`` with ``checkpoint`` on the test files of
    ``options_path`` (results written to a temporary folder)."""
    with tempfile.TemporaryDirectory() as tmp:
        options = load_options(options_path, [f"test.checkpoint={checkpoint}", f"log_root={tmp}"])
        results = run_tests(options, log=lambda *a: None)
    means: dict[str, dict[str, float]] = {}
    for entry in results["files"].values():
        kind = "reduced" if entry["resolution"] == "reduced resolution" else "full"
        method = next(iter(entry["methods"]))  # the model's row; the input baseline follows
        means[kind] = entry["methods"][method]["mean"]
    return means


def export(source: Path, out: Path, test_options: Path | None = None) -> dict:
    """Write the weights-only checkpoint ``out`` and its provenance ``out.json``; return the latter."""
    path = source_checkpoint(source)
    state = load_checkpoint(path)
    if "model_record" not in state:
        raise UserInputError(
            f"checkpoint '{path}' has no model record: export checkpoints written by train.py"
        )
    kept = {k: state[k] for k in KEPT if k in state}
    kept["model"] = model_weights(state)  # the weights validation scored: their average, if kept
    save_atomic(kept, out)
    info = {
        "checkpoint": out.name,
        **run_files(path),
        "step": state.get("step"),
        "best": state.get("best"),
        "validation": state.get("history"),
    }
    if info["commit"] is None:
        info["commit"] = source_commit()
        info["commit_note"] = "the commit checked out at export time (the run did not record one)"
    if test_options is not None:
        info["test"] = test_means(test_options, out)
        info["test_options"] = str(test_options)
    out.with_suffix(".json").write_text(dumps_strict(info, indent=1) + "\n")
    return info


@exit_on_user_error
def main(argv: list[str] | None = None) -> None:
    parser = OneLineParser(prog="python -m engine.export", description=__doc__)
    parser.add_argument("source", type=Path, help="a run folder (its best.pth) or a checkpoint file")
    parser.add_argument("out", type=Path, help="the weights-only checkpoint to write (.pth)")
    parser.add_argument(
        "--test", type=Path, metavar="OPTIONS", help="also record test.py's indices with these options"
    )
    args = parser.parse_args(argv)
    info = export(args.source, args.out, args.test)
    print(f"wrote {args.out} and {args.out.with_suffix('.json')} (step {info['step']})")


if __name__ == "__main__":
    main()
