"""Summarise a sweep: `python scripts/compare.py logs/multiruns/<time>`.

Writes loss_curves.png and summary.md into the sweep folder and prints the table.
"""

import argparse
import sys
from pathlib import Path

from src.compare import EXACT, CompareError, compare


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
    args = parser.parse_args()
    if not args.sweep_dir.is_dir():
        sys.exit(
            f"error: {args.sweep_dir} is not a folder; pass a sweep folder such as "
            "logs/multiruns/<time>."
        )
    try:
        print(compare(args.sweep_dir, args.threshold_metric, args.threshold))
    except CompareError as err:
        sys.exit(f"error: {err}")
    print(f"\nwrote {args.sweep_dir / 'loss_curves.png'} and {args.sweep_dir / 'summary.md'}")


if __name__ == "__main__":
    main()
