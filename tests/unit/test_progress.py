"""What a run shows while it trains: the step bar, and train.log's lines (the estimate, a
line every log_every_n_steps, the model summary without FLOPs)."""

import re
import runpy
import sys

from src.training.timing import PHASES, PHASES_LINE
from tests.helpers import TINY, TRAIN_SCRIPT


def test_train_log_holds_the_estimate_and_a_line_every_log_every_n_steps(
    tmp_path, monkeypatch, capsys
):
    """Through the entry point, so Hydra writes train.log as it does for a user."""
    overrides = [
        *TINY,
        "trainer.log_every_n_steps=2",
        "trainer.enable_progress_bar=true",
        "trainer.enable_model_summary=true",
    ]
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", [str(TRAIN_SCRIPT), *overrides, "trainer.max_steps=6"])
    runpy.run_path(str(TRAIN_SCRIPT), run_name="__main__")
    output = capsys.readouterr()
    (log_file,) = (tmp_path / "logs" / "runs").glob("*/train.log")
    lines = log_file.read_text().splitlines()
    assert re.search(r"torch threads: \d+ \(.+\)$", lines[0])
    assert re.search(r"[\d,]+ params, ~[\d,]+ MiB for activations", lines[1])
    steps = [
        re.search(r"step (\d+)/6  loss [\d.]+  lr [\d.e-]+  [\d.]+ it/s", line) for line in lines
    ]
    assert [int(m.group(1)) for m in steps if m] == [2, 4, 6]
    screen = output.out + output.err
    assert "6/6" in screen and "Epoch 0/-" not in screen  # the bar counts steps
    assert "litlogger" not in screen + log_file.read_text()
    assert "Total params" in log_file.read_text()  # the model summary, without FLOPs
    # where the time went (scripts/bench.py reads it for the default run's shares)
    (phases,) = [PHASES_LINE.search(line) for line in lines if PHASES_LINE.search(line)]
    seconds = dict(zip(PHASES, (float(v) for v in phases.groups())))
    assert seconds["start-up"] > 0.5  # at least the imports of torch and Lightning
    assert seconds["steps"] > 0 and seconds["validation"] > 0  # validated at step 4 and 6
    assert 0 <= seconds["generation"] <= seconds["validation"]
    assert "FLOPs" not in screen + log_file.read_text()
    assert "Total Flops" not in screen + log_file.read_text()


def test_the_step_bar_redraws_at_most_every_interval_and_always_at_the_end(compose_cfg, capsys):
    """Lightning's bar redraws twice a step; ours at most every min_interval_s, and the
    last step is always shown."""
    import lightning as L

    from src.training.build import build
    from src.training.progress import StepProgressBar

    built = build(compose_cfg(*TINY, "trainer.max_steps=30"))
    bar = StepProgressBar(min_interval_s=3600)
    trainer = L.Trainer(
        max_steps=30,
        callbacks=[bar],
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        limit_val_batches=0,
        num_sanity_val_steps=0,
    )
    draws = []
    original = bar.get_metrics
    bar.get_metrics = lambda *a: draws.append(a[0].global_step) or original(*a)
    trainer.fit(built.model, datamodule=built.datamodule)
    assert sorted(set(draws)) == [1, 30]  # the first step, nothing for an hour, the last
    output = capsys.readouterr()
    assert "30/30" in output.out + output.err
