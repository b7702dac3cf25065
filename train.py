"""Train a fusion model: ``python train.py --option_path option.yml [--set key=value ...]``.

Several processes (GPUs, or CPU processes with gloo):
``torchrun --nproc_per_node=N train.py --option_path option.yml`` (see engine/distributed.py).
"""

from __future__ import annotations

import argparse

from engine.distributed import broadcast_object, init_distributed, shutdown
from engine.options import add_option_arguments, load_command_options
from engine.run_dir import find_resume, log_to_file, open_run, setup_logger
from engine.trainer import Trainer
from engine.training_parts import seed_everything
from utils.errors import exit_on_user_error
from utils.memory import keep_freed_memory


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
    keep_freed_memory()  # no page faults on every step (utils/memory.py)
    options = load_command_options(args.option_path, args.set)
    world = init_distributed(options.device)
    try:
        run, resume_path = broadcast_object(find_resume(options) if world.is_main else None, world)
        logger = setup_logger(verbose=world.is_main)
        seed_everything(options.seed, options.deterministic)
        # every input (data, model, checkpoint) is checked before anything is written
        trainer = Trainer(options, logger, world, resume_path)  # a resume skips train.init_from
        if resume_path is not None:
            trainer.resume_from(resume_path)
        # rank 0 opens the run folder and tells the others, which write nothing there
        run_dir = broadcast_object(open_run(options, run) if world.is_main else None, world)
        if world.is_main:
            log_to_file(logger, run_dir)
            logger.info(f"run folder: {run_dir}")
        if resume_path is not None:
            logger.info(f"resumed from {resume_path} at step {trainer.step}/{trainer.total_steps}")
        return trainer.fit(run_dir, stop_after=args.stop_after)
    finally:
        shutdown(world)


if __name__ == "__main__":
    main()
