"""Summarise a sweep: `python scripts/compare.py logs/multiruns/<time>`.

Writes loss_curves.png (curves over steps), final_vs_<knob>.png (final metrics against the
swept knob) and summary.md into the sweep folder, and prints the table. With --publish, a
sweep of `-m experiment=NAME` is also copied to scripts/results/NAME/, the folder the README
shows.

A record that cannot be read (a damaged metrics.json or .hydra/config.yaml) is named on a
line of its own after the table; a folder that cannot be compared is refused with exit code 2.
"""

import argparse
import sys
from pathlib import Path
from typing import NoReturn

from src.analysis.compare import compare
from src.analysis.runs import EXACT, CompareError
from src.paths import RESULTS_DIR, ROOT
from src.process_exit import run_then_exit


def refuse(message: str) -> NoReturn:
    """One paragraph on stderr and exit code 2, as for a bad argument: nothing was compared."""
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweep_dir", type=Path, help="a folder of runs (e.g. logs/multiruns/...)")
    parser.add_argument(
        "--threshold-metric", default=EXACT, help=f"metric for 'steps to reach' (default {EXACT})"
    )
    parser.add_argument(
        "--threshold",
        type=float,
        default=0.9,
        help="value to reach: at least this, or at most for a loss (default 0.9)",
    )
    parser.add_argument(
        "--x",
        default=None,
        help="the knob for the final-metric plot's x axis (default: heads if it varies, "
        "else the first varying numeric knob)",
    )
    parser.add_argument(
        "--publish",
        action="store_true",
        help=f"also copy them to {RESULTS_DIR.relative_to(ROOT)}/NAME/ "
        "(a sweep of experiment=NAME)",
    )
    args = parser.parse_args()
    if not args.sweep_dir.is_dir():
        refuse(
            f"{args.sweep_dir} is not a folder; pass a sweep folder such as logs/multiruns/<time>."
        )
    try:
        result = compare(
            args.sweep_dir, args.threshold_metric, args.threshold, args.x, args.publish
        )
    except CompareError as err:
        refuse(str(err))
    print(result.text)
    curves, final, summary = (file.name for file in result.written)
    print(f"\nwrote {curves}, {final} and {summary} into {args.sweep_dir}")
    if result.published is not None:
        print(f"and copied them to {result.published}")


if __name__ == "__main__":
    run_then_exit(main, __file__)
