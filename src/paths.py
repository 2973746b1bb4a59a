"""Where the checkout's parts are: the one place that knows the repository's layout.

Scripts, the DDP launcher and the benchmarks find the configs and scripts from here, so a
module can move without its idea of the repository root going wrong.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONF_DIR = ROOT / "conf"  # Hydra's config folder, shared by every script
SCRIPTS_DIR = ROOT / "scripts"
TRAIN_SCRIPT = SCRIPTS_DIR / "train.py"
# An experiment's published figures, summary.md and write-up (compare.py --publish); the
# folder is the experiment's config name, so conf/experiment/NAME.yaml -> scripts/results/NAME/.
RESULTS_DIR = SCRIPTS_DIR / "results"
