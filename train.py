"""Train a fusion model: ``python train.py --option_path option.yml [--set key=value ...]``."""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")  # huge pages: large CPU tensors allocate faster

from utils.errors import exit_on_user_error
from utils.options import add_option_arguments, load_options
from utils.run_dir import prepare_training_run, setup_logger
from utils.trainer import Trainer
from utils.training_parts import seed_everything


@exit_on_user_error
def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__)
    add_option_arguments(parser)
    parser.add_argument(
        "--stop-after",
        type=int,
        default=None,
        metavar="STEP",
        help="stop (with a checkpoint) once this global step is reached; run again to resume",
    )
    args = parser.parse_args(argv)
    options = load_options(args.option_path, args.set)
    if options.demo:
        from data.demo import ensure_demo

        ensure_demo(options.demo)
    run_dir, resume_path = prepare_training_run(options)
    logger = setup_logger(run_dir)
    logger.info(f"run folder: {run_dir}")
    seed_everything(options.seed, options.deterministic)
    trainer = Trainer(options, run_dir, logger)
    if resume_path is not None:
        trainer.resume_from(resume_path)
    return trainer.fit(stop_after=args.stop_after)


if __name__ == "__main__":
    main()
