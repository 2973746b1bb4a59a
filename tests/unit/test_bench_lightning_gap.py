"""The bench's Lightning gap profile (src/bench/rows_model.py, src/bench/timed_loops.py): its
arms train in this process, a few steps at the default shape; no timings are asserted, only
that each arm runs and the manual-optimisation arm trains as the automatic one does."""

import src.bench.timed_loops as loops
from src.bench.rows_model import GAP_ARMS, GAP_PARTS, lightning_gap_rows


def test_the_lightning_gap_profile_names_each_part_and_measures_every_arm():
    """Each GAP_PARTS row subtracts two arms that exist; every arm really trains (the
    manual-optimisation arm included) and returns a positive step time."""
    for _, arm, against in GAP_PARTS:
        assert arm in GAP_ARMS and against in GAP_ARMS
    steps = {name: f(["~callbacks"], 3, 2, "cpu") for name, f in GAP_ARMS.items()}
    assert all(0 < s < 10 for s in steps.values()), steps
    rows = lightning_gap_rows(quick=True, repeats=1)
    assert [r["what"] for r in rows] == [
        f"Lightning gap: {what} (ms/step)" for what, _, _ in GAP_PARTS
    ]


def test_manual_optimisation_arm_takes_the_same_steps_as_the_automatic_one(tmp_path):
    """The gap profile's manual arm must do the same training, or its difference to the
    automatic arm is not the closure's cost: same weights after 5 steps."""
    import lightning as L
    import torch

    weights = []
    for manual in (False, True):
        cfg, parts = loops.build_parts(
            ["~callbacks", "~logger", "trainer.max_steps=5"], str(tmp_path)
        )
        model = parts.model
        if manual:
            loops.make_manual(model)
        L.Trainer(
            max_steps=5,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            limit_val_batches=0,
            num_sanity_val_steps=0,
        ).fit(model, datamodule=parts.datamodule)
        weights.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
    torch.testing.assert_close(weights[0], weights[1])
