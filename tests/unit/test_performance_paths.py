"""The accelerator switches work (speed itself is scripts/bench.py's job, never a test's)."""

import json

import pytest
import torch

from src.training.run import train
from tests.helpers import TINY


def test_bf16_mixed_precision_trains(compose_cfg, tmp_path):
    result = train(compose_cfg("trainer.precision=bf16-mixed", *TINY))
    assert result["status"] == "finished" and result["step"] == 6
    assert all(torch.isfinite(torch.tensor(v)) for v in result["metrics"].values())


@pytest.mark.slow
def test_compile_true_compiles_the_training_step_once_and_saves_a_plain_checkpoint(
    compose_cfg, tmp_path
):
    """compile=true compiles the training forward once, however long the run (compiling
    the LightningModule recompiled training_step at every step, since it reads the step
    counter, until torch gave up after 8). Graphs for validation and the end-of-run views
    (no grad, head masks) come after training and are counted separately."""
    import lightning as L
    from torch._dynamo.utils import counters

    graphs_after_step = []

    class CountGraphs(L.Callback):
        def on_train_batch_end(self, *args, **kwargs):
            graphs_after_step.append(counters["stats"]["unique_graphs"])

    torch._dynamo.reset()
    counters.clear()
    # without the diagnostics' explicit-path graphs, which only make compiling slower
    cfg = compose_cfg(
        "compile=true", "~callbacks.attention_diagnostics", *TINY, "trainer.max_steps=12"
    )
    train(cfg, extra_callbacks=[CountGraphs()])
    assert json.loads((tmp_path / "metrics.json").read_text())["step"] == 12
    # one graph for steps 1-4; validation after step 4 (and 8) adds its own once
    assert graphs_after_step[:4] == [1] * 4, graphs_after_step
    assert graphs_after_step[8:] == [graphs_after_step[8]] * 4, graphs_after_step
    state = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    assert all("_orig_mod" not in key for key in state)  # loads into an uncompiled model


@pytest.mark.parametrize("value, mode", [("true", None), ("reduce-overhead", "reduce-overhead")])
def test_compile_modes_reach_torch_compile(compose_cfg, monkeypatch, value, mode):
    """compile=MODE compiles the network with that torch.compile mode (reduce-overhead: CUDA
    graphs on a GPU); the compiling itself is tested above, and timed by scripts/bench.py."""
    from src.modules import TransformerLM

    modes = []
    monkeypatch.setattr(TransformerLM, "compile", lambda self, **kw: modes.append(kw["mode"]))
    train(compose_cfg(f"compile={value}", *TINY, "trainer.max_steps=2"))
    assert modes == [mode]
