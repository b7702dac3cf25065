"""Test a trained model: ``python test.py --option_path option.yml [--set key=value ...]``.

Prints per-image indices and mean +- std for every test file listed in the options, and writes
``test_results.json`` and ``test_results.csv`` into the checkpoint's run folder (a new run folder
for a training-free method such as GSA). With a ``compare.methods`` list it scores every listed
method on the same files instead and writes one comparison table and its charts
(engine/compare.py, charts/figures.py).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from engine.options import add_option_arguments, load_command_options
from engine.tester import run_tests
from utils.errors import exit_on_user_error
from utils.memory import keep_freed_memory


@exit_on_user_error
def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__)
    add_option_arguments(parser)
    args = parser.parse_args(argv)
    keep_freed_memory()
    options = load_command_options(args.option_path, args.set)
    if not options.compare.methods:
        return run_tests(options)
    from engine.compare import run_comparison

    results = run_comparison(options)
    if options.compare.charts:
        from charts.figures import draw_comparison

        for path in draw_comparison(Path(results["run_dir"]), Path(options.compare.charts), options.name):
            print(f"wrote {path}")
    return results


if __name__ == "__main__":
    main()
