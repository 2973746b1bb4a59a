"""Run folders saved while the classes lived at other import paths still load.

`fixtures/run_with_old_targets` is a real run folder (8 steps, d_model=16, 1 layer, 2 heads)
written by `scripts/train.py` when its config named `src.lit_module.AttentionLM`,
`src.callbacks.*` and `src.checkpointing.AtomicCheckpointIO`. It must still open in
inspect, be found by `ckpt_path=last`, and resume from its checkpoint.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import hydra.utils
import pytest
import yaml

from src.runs.targets import MOVED, current_target, current_targets
from tests.helpers import ROOT, TRAIN_SCRIPT, run_script

FIXTURE = Path(__file__).parent / "fixtures" / "run_with_old_targets"
OVERRIDES = yaml.safe_load((FIXTURE / ".hydra" / "overrides.yaml").read_text())


@pytest.fixture
def old_run(tmp_path: Path) -> Path:
    """The fixture, copied where a user's logs/ would hold it, under a name the project makes."""
    run = tmp_path / "logs" / "runs" / ("2026-12-05_01-08-30_" + ",".join(sorted(OVERRIDES)))
    shutil.copytree(FIXTURE, run)
    return run


def test_the_fixture_names_classes_by_their_old_paths():
    """Else this file tests nothing: the saved config must hold targets that moved."""
    saved = yaml.safe_load((FIXTURE / ".hydra" / "config.yaml").read_text())
    assert saved["model"]["_target_"] == "src.lit_module.AttentionLM"
    assert saved["callbacks"]["print_samples"]["_target_"] == "src.callbacks.PrintSamples"
    with pytest.raises(ImportError):
        hydra.utils.get_class(saved["model"]["_target_"])


def test_every_saved_target_resolves_to_a_class_that_exists():
    saved = current_targets(yaml.safe_load((FIXTURE / ".hydra" / "config.yaml").read_text()))
    targets = []

    def collect(node):
        if isinstance(node, dict):
            targets.extend(v for k, v in node.items() if k == "_target_")
            for value in node.values():
                collect(value)
        elif isinstance(node, list):
            for value in node:
                collect(value)

    collect(saved)
    assert len(targets) >= 10
    for target in targets:
        assert callable(hydra.utils.get_object(target)), target
    for old in MOVED:
        assert current_target(old) != old
    assert current_target("src.data.tasks.Sort") == "src.data.tasks.Sort"  # never moved


def test_inspect_opens_a_run_saved_with_the_old_paths(old_run, tmp_path):
    proc = run_script(
        ROOT / "scripts" / "inspect_model.py",
        f"run={old_run}",
        "prompt=d c a b h g f e",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert "layer" in proc.stdout.lower()
    assert list((tmp_path / "logs" / "inspect").glob("*/example1_layer0.png"))


def test_ckpt_path_last_finds_a_finished_run_saved_with_the_old_paths(old_run, tmp_path):
    """Its config differs from today's only in the targets' paths: the same config."""
    proc = run_script(TRAIN_SCRIPT, *OVERRIDES, "ckpt_path=last", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    new = [r for r in (tmp_path / "logs" / "runs").iterdir() if r != old_run]
    record = json.loads((new[0] / "metrics.json").read_text())
    assert record["copied_from"] == str(old_run.resolve())
    assert record["step"] == 8


def test_a_checkpoint_saved_with_the_old_paths_resumes(old_run, tmp_path):
    ckpt = old_run / "checkpoints" / "last.ckpt"
    longer = [o for o in OVERRIDES if not o.startswith("trainer.max_steps=")]
    proc = run_script(
        TRAIN_SCRIPT, *longer, "trainer.max_steps=12", f"ckpt_path={ckpt}", cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    new = [r for r in (tmp_path / "logs" / "runs").iterdir() if r != old_run]
    record = json.loads((new[0] / "metrics.json").read_text())
    assert record["status"] == "finished" and record["step"] == 12
    assert record["resumed_from"] == str(ckpt.resolve())
