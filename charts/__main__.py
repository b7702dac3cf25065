"""``python -m charts RUN_DIR [--out charts] [--stem NAME]``: redraw the charts of a comparison run."""

from __future__ import annotations

import argparse
from pathlib import Path

from charts.figures import draw_comparison
from utils.errors import exit_on_user_error


@exit_on_user_error
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("run_dir", help="run folder holding comparison.json and comparison_images.npz")
    parser.add_argument("--out", default="charts", help="folder for the images (default: charts)")
    parser.add_argument("--stem", default=None, help="file name prefix (default: the comparison's name)")
    args = parser.parse_args(argv)
    for path in draw_comparison(Path(args.run_dir), Path(args.out), args.stem):
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
