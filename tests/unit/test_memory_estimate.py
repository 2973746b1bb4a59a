"""The config-only estimate that refuses runs too large for the machine, and heads the log."""

import pytest

from src.preflight.checks import ConfigError
from src.preflight.memory import check_memory, estimate_memory
from src.training.build import build


@pytest.mark.parametrize(
    "overrides",
    [
        [],
        ["heads=2", "model.net.bias=true"],
        ["model.net.head_dim=8", "model.net.layers=3", "model.net.positional=sinusoidal"],
        ["task=assoc_recall", "model.net.max_seq_len=64", "model.net.mlp_ratio=2"],
    ],
    ids=str,
)
def test_the_parameter_count_is_the_models(compose_cfg, overrides):
    cfg = compose_cfg(*overrides)
    parts = build(cfg)
    task = parts.task
    estimate = estimate_memory(cfg, task.vocab_size, task.seq_len)
    assert estimate.params == sum(p.numel() for p in parts.model.parameters())


def test_the_estimate_grows_with_the_knobs_it_names(compose_cfg):
    base = estimate_memory(compose_cfg(), 11, 16)
    longer = estimate_memory(compose_cfg("task.length=16"), 11, 32)
    assert longer.map_bytes == 4 * base.map_bytes  # the (T, T) maps
    deeper = estimate_memory(compose_cfg("model.net.layers=4"), 11, 16)
    assert deeper.activation_bytes > base.activation_bytes and deeper.params > base.params


def test_a_run_over_the_limit_is_refused_with_the_knob_to_lower(compose_cfg, monkeypatch):
    cfg = compose_cfg("data.batch_size=4096")
    estimate = estimate_memory(cfg, 11, 16)
    limit = estimate.total_bytes - 1  # whatever this machine has: just short of the need
    monkeypatch.setattr(
        "src.preflight.memory.available_memory", lambda accelerator: (limit, "available")
    )
    with pytest.raises(ConfigError, match=r"Lower data.batch_size=4096 \(or"):
        check_memory(cfg, estimate)
    monkeypatch.setattr(
        "src.preflight.memory.available_memory", lambda accelerator: (limit + 1, "x")
    )
    check_memory(cfg, estimate)  # fits: no error
