"""Every config in conf/ composes with Hydra's compose API and builds."""

import itertools
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from src.preflight.checks import OPTIONAL_EXTRAS, missing_extra
from src.runs.folders import experiment_of, register_resolvers, results_dir
from src.training.build import ConfigError, build
from tests.helpers import CONF, ROOT, TINY, group_options

GROUPS = ["task", "data", "model", "trainer", "logger", "callbacks", "paths", "experiment"]


@pytest.mark.parametrize(
    "override",
    [f"{g}={o}" for g in GROUPS for o in group_options(g) if g != "trainer"] + ["trainer=default"],
)
def test_every_config_composes_and_instantiates(compose_cfg, override):
    cfg = compose_cfg(override, *TINY)
    parts = build(cfg)
    task, model = parts.task, parts.model
    assert model.net.token_embedding.num_embeddings == task.vocab_size
    assert parts.trainer.max_steps == 6


def test_gpu_trainer_config_builds_a_bf16_trainer(compose_cfg):
    """trainer=gpu's arguments are ones Lightning's Trainer accepts (here on the CPU, which
    runs bf16-mixed too), and its precision reaches the Trainer."""
    trainer = build(compose_cfg("trainer=gpu", "trainer.accelerator=cpu", *TINY)).trainer
    assert trainer.precision == "bf16-mixed"


def test_top_level_knobs_reach_the_attention(compose_cfg):
    model = build(compose_cfg("heads=2", "scale=false", "model.net.d_model=32")).model
    attn = model.net.blocks[0].attn
    assert (attn.heads, attn.head_dim, attn.scale) == (2, 16, 1.0)
    model = build(compose_cfg("scale=0.25")).model
    assert model.net.blocks[-1].attn.scale == 0.25


def test_trainer_arguments_are_overridable(compose_cfg):
    trainer = build(compose_cfg("trainer.max_steps=17", "trainer.log_every_n_steps=3")).trainer
    assert trainer.max_steps == 17 and trainer.log_every_n_steps == 3


def test_plus_trainer_arguments_reach_lightnings_trainer(compose_cfg):
    """`+trainer.NAME=VALUE` is not an unknown key: the Trainer reads (and checks) it."""
    parts = build(compose_cfg(*TINY, "+trainer.gradient_clip_val=0.5"))
    assert parts.trainer.gradient_clip_val == 0.5


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["heads=3"], "heads=3 does not divide model.net.d_model=64"),
        (["heads=0"], "heads=0 is not allowed: it must be a positive integer."),
        (["model.net.heads=2"], "model.net.heads=2 is not allowed: the network's heads follows"),
        (["model.net.scale=false"], "model.net.scale=false is not allowed: the network's scale"),
        (["scale=abc"], "scale='abc' is not allowed"),
        (
            ["model.net.layers=0"],
            "model.net.layers=0 is not allowed: it must be a positive integer.",
        ),
        (["task.length=0"], "task.length=0 is not allowed: it must be a positive integer."),
        (["data.batch_size=0"], "data.batch_size=0 is not allowed: it must be a positive integer."),
        (["model.lr=0"], "model.lr=0 is not allowed: it must be a positive number."),
        (
            ["task=assoc_recall", "task.num_pairs=9", "task.num_keys=8"],
            "task.num_pairs=9 is not allowed: keys are distinct, so it must be at most "
            "task.num_keys=8.",
        ),
    ],
)
def test_bad_values_raise_config_error_naming_the_key_once(compose_cfg, overrides, message):
    """The layer says what is wrong with its argument; the config layer names the key that
    held it, as the user typed it (`heads` for the top-level knob), and only once."""
    with pytest.raises(ConfigError) as refused:
        build(compose_cfg(*overrides))
    text = str(refused.value)
    assert text.startswith(message), text
    named = message.split(" ")[0]  # `task.length=0`: the key and its value
    assert text.count(named) == 1 and "invalid value in" not in text, text


@pytest.mark.parametrize(
    "knob, value, built", [("heads", "2", 2), ("scale", "false", False), ("scale", "0.5", 0.5)]
)
def test_the_networks_heads_and_scale_are_set_at_the_top_level_only(
    compose_cfg, knob, value, built
):
    """README, The knobs: `model.net.heads=2` is refused with the top-level key to use, so one
    key says what every run used."""
    with pytest.raises(ConfigError) as refused:
        build(compose_cfg(f"model.net.{knob}={value}"))
    assert str(refused.value).endswith(f"Use {knob}={value} instead.")
    assert getattr(build(compose_cfg(f"{knob}={value}")).model.net.config, knob) == built


def test_an_argument_named_without_a_config_key_says_where_it_came_from(compose_cfg):
    with pytest.raises(ConfigError, match=r"^invalid value in `model.net`: .*'no_such_knob'"):
        build(compose_cfg("+model.net.no_such_knob=1"))


def test_positional_rope_builds_with_no_additive_table(compose_cfg):
    net = build(compose_cfg("model.net.positional=rope", *TINY)).model.net
    assert net.position is None and all(b.attn.rotary is not None for b in net.blocks)


def test_run_names_come_from_overrides_and_stay_short():
    from src.runs.folders import run_name

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


@pytest.mark.parametrize("experiment", group_options("experiment"))
def test_an_experiments_sweep_folder_and_results_folder_are_named_after_its_config(
    experiment, tmp_path
):
    """conf/experiment/NAME.yaml is the one source of NAME: its sweep folder ends with it, and
    its runs record it, which is what compare.py --publish reads to pick scripts/results/NAME/
    (tests/unit/test_compare_summary.py publishes one)."""
    register_resolvers()
    overrides = [f"experiment={experiment}", f"paths.log_dir={tmp_path}"]
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=overrides, return_hydra_config=True)
    assert Path(cfg.hydra.sweep.dir).name.endswith(f"_{experiment}")
    run = tmp_path / "run"
    (run / ".hydra").mkdir(parents=True)
    OmegaConf.save({"hydra": cfg.hydra}, run / ".hydra" / "hydra.yaml", resolve=False)
    assert results_dir(experiment_of(run)) == ROOT / "scripts" / "results" / experiment


def test_every_published_result_belongs_to_an_experiment_config():
    """A results folder the README shows can be made again with `-m experiment=NAME`, and its
    summary.md says which experiment it summarises."""
    experiments = set(group_options("experiment"))
    for summary in sorted((ROOT / "scripts" / "results").glob("*/summary.md")):
        name = summary.parent.name
        assert name in experiments, f"scripts/results/{name}/ has no conf/experiment/{name}.yaml"
        assert summary.read_text().startswith(f"# {name}: "), summary


def test_a_search_without_its_extra_names_the_install_command(monkeypatch):
    assert missing_extra(["heads=2", "scale=false"]) is None
    monkeypatch.setitem(
        OPTIONAL_EXTRAS, "hparams_search", ("hydra_plugins.not_installed", "optuna")
    )
    why = missing_extra(["heads=2", "hparams_search=lr_warmup"])
    assert "hparams_search=lr_warmup" in why and "uv sync --extra optuna" in why
