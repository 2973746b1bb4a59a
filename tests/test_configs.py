"""Every config in conf/ composes with Hydra's compose API and builds."""

import itertools

import pytest
from hydra import compose, initialize_config_dir

from src.train import ConfigError, build
from tests.conftest import CONF, TINY, group_options

GROUPS = ["task", "data", "model", "trainer", "logger", "callbacks", "paths", "experiment"]


def test_every_group_has_options():
    for group in GROUPS:
        assert group_options(group), group


@pytest.mark.parametrize(
    "override",
    [f"{g}={o}" for g in GROUPS for o in group_options(g) if g != "trainer"] + ["trainer=default"],
)
def test_every_config_composes_and_instantiates(compose_cfg, override):
    cfg = compose_cfg(override, *TINY)
    parts = build(cfg)
    task, model = parts["task"], parts["model"]
    assert model.net.token_embedding.num_embeddings == task.vocab_size
    assert parts["trainer"].max_steps == 6


def test_gpu_trainer_config_composes():
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=["trainer=gpu"])
    assert cfg.trainer.accelerator == "gpu" and cfg.trainer.precision == "bf16-mixed"


def test_top_level_knobs_reach_the_attention(compose_cfg):
    model = build(compose_cfg("heads=2", "scale=false", "model.net.d_model=32"))["model"]
    attn = model.net.blocks[0].attn
    assert (attn.heads, attn.head_dim, attn.scale) == (2, 16, 1.0)
    model = build(compose_cfg("scale=0.25"))["model"]
    assert model.net.blocks[-1].attn.scale == 0.25


def test_trainer_arguments_are_overridable(compose_cfg):
    trainer = build(compose_cfg("trainer.max_steps=17", "trainer.log_every_n_steps=3"))["trainer"]
    assert trainer.max_steps == 17 and trainer.log_every_n_steps == 3


@pytest.mark.parametrize(
    "override, match",
    [
        ("heads=3", r"`model.net`: heads=3 does not divide d_model=64"),
        ("heads=0", r"`model.net`: heads=0 is not allowed"),
        ("scale=abc", r"scale='abc' is not allowed"),
        ("model.net.layers=0", r"layers=0 is not allowed"),
        ("task.length=0", r"`task`: task.length=0"),
        ("data.batch_size=0", r"`data`: data.batch_size=0"),
        ("model.lr=0", r"model.lr=0 is not allowed"),
    ],
)
def test_bad_values_raise_config_error_naming_the_key(compose_cfg, override, match):
    with pytest.raises(ConfigError, match=match):
        build(compose_cfg(override))


def test_run_names_come_from_overrides_and_stay_short():
    from src.config import run_name

    assert run_name("") == "default"
    assert run_name("heads=2,scale=false") == "heads=2,scale=false"
    long = ",".join(f"model.net.key{i}={i}" for i in range(40))
    assert len(run_name(long)) < 140 and run_name(long) != run_name(long + "1")
    assert run_name("data.file=/tmp/x") == "data.file=%2Ftmp%2Fx"  # one folder, not three


def _sweep_points(params) -> list[list[str]]:
    """Every combination of a sweeper's params, as override lists (Hydra's own parser)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides([f"{k}={v}" for k, v in params.items()])
    choices = [
        [f"{o.key_or_group}={v}" for v in o.sweep_string_iterator()]
        if o.is_sweep_override()
        else [f"{o.key_or_group}={o.get_value_element_as_str()}"]
        for o in parsed
    ]
    return [list(point) for point in itertools.product(*choices)]


@pytest.mark.parametrize("experiment", group_options("experiment"))
def test_every_point_of_an_experiments_sweep_builds_and_it_has_eight_seeds(experiment):
    """A typo in a sweep value (heads=3 at d_model 64, a task knob that does not exist)
    fails here, not an hour into the sweep; every grid in README Results has >= 8 seeds."""
    import hydra

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=[f"experiment={experiment}"], return_hydra_config=True)
        assert experiment in cfg.hydra.sweep.dir  # its own folder name
        points = _sweep_points(cfg.hydra.sweeper.params)
        seeds = {o for point in points for o in point if o.startswith("seed=")}
        assert len(seeds) >= 8
        distinct = {tuple(o for o in point if not o.startswith("seed=")) for point in points}
        for point in sorted(distinct):
            job = compose("train", overrides=[f"experiment={experiment}", *point])
            task = hydra.utils.instantiate(job.task)
            net = hydra.utils.instantiate(
                job.model.net, vocab_size=task.vocab_size, max_seq_len=task.seq_len
            )
            assert net.blocks[0].attn.heads == job.heads
