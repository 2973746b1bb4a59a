"""What a user sees first in TensorBoard, checked in process: the order TIME SERIES gives a
real run's cards (TensorBoard's rule, tests/time_series.py), the log10 loss curves the
CUSTOM SCALARS loss chart plots, the HPARAMS values and trial names, the knock-out chart's
title, and compare reading runs saved under the old tag names. Over HTTP and in a browser:
tests/integration/test_tensorboard_http.py."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from src.analysis import metric_names as names
from src.analysis.runs import read_curves
from src.analysis.tensorboard_views import LOSS_CHART, custom_scalars_layout, hparams_summaries
from src.runs.folders import trial_name
from src.training.callbacks.diagnostics import knockout_bar_image, knockout_title
from src.training.run import train
from tests.helpers import TINY, compose_config, read_events
from tests.time_series import EXPANDED_GROUPS, card_groups, sorted_tags

LEARNING = [names.TRAIN_LOSS, names.VAL_LOSS, names.TRAIN_EXACT_MATCH, names.VAL_EXACT_MATCH]


@pytest.mark.parametrize(
    ("tags", "order"),
    [  # TensorBoard's own expectations (tensorboard/webapp/metrics/utils_test.ts)
        (["a", "B"], ["B", "a"]),
        (["03", "1"], ["1", "03"]),
        (["a/b/03", "a/b/1"], ["a/b/1", "a/b/03"]),
        (["a0.1", "a0.01"], ["a0.01", "a0.1"]),
        (["a1e+5", "a9e-6"], ["a9e-6", "a1e+5"]),
        (["a+/a", "a/a", "ab/c", "ab/a"], ["a/a", "a+/a", "ab/a", "ab/c"]),
        (["a+0a", "a0a", "ab0a"], ["a0a", "a+0a", "ab0a"]),
        (["a", "//", "/", ""], ["", "/", "//", "a"]),
        (["0..2", "0..03"], ["0..2", "0..03"]),
        (
            ["attn/x", "train/loss", "attention/layer0"],
            ["attention/layer0", "attn/x", "train/loss"],
        ),
    ],
)
def test_time_series_order_is_tensorboards(tags, order):
    assert sorted_tags(tags) == order


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("run")
    train(compose_config("train", ["heads=2", "trainer.log_every_n_steps=1", *TINY], run_dir))
    return run_dir


def test_time_series_opens_on_loss_and_exact_match(tiny_run):
    """The first two tag groups are the ones TIME SERIES opens: they hold the learning
    curves, and every image and per-head chart comes after them, collapsed."""
    tags = read_events(tiny_run).Tags()
    groups = card_groups([*tags["scalars"], *tags["images"]])
    opened = [tag for _, group in groups[:EXPANDED_GROUPS] for tag in group]
    assert [name for name, _ in groups[:EXPANDED_GROUPS]] == ["train", "val"], groups
    assert set(LEARNING) <= set(opened)
    assert tags["images"] and not set(tags["images"]) & set(opened)
    order = sorted_tags([*tags["scalars"], *tags["images"]])
    assert max(order.index(t) for t in LEARNING) < min(order.index(t) for t in tags["images"])
    assert names.EPOCH not in tags["scalars"]  # always 0 here, and it sorted before train/


def test_loss_log10_curves_are_the_log_of_the_loss_curves(tiny_run):
    events = read_events(tiny_run)
    for loss, log10 in [
        (names.TRAIN_LOSS, names.TRAIN_LOSS_LOG10),
        (names.VAL_LOSS, names.VAL_LOSS_LOG10),
    ]:
        plain, logged = events.Scalars(loss), events.Scalars(log10)
        assert [e.step for e in logged] == [e.step for e in plain]
        assert [e.value for e in logged] == pytest.approx(
            [math.log10(e.value) for e in plain], abs=1e-5
        )
    layout = custom_scalars_layout(layers=2)["loss and exact match"]
    assert layout[LOSS_CHART] == ["Multiline", [names.TRAIN_LOSS_LOG10, names.VAL_LOSS_LOG10]]


def test_hparams_values_are_written_as_typed_and_the_trial_named():
    """TensorBoard prints a number_value with five significant digits (2.0000, 64.000):
    every value is written as the text a user types."""
    from tensorboard.plugins.hparams import api_pb2, plugin_data_pb2

    hparams = {"heads": 2, "d_model": 64, "lr": 0.003, "scale": False, "task": "sort"}
    experiment, start, _ = hparams_summaries(hparams, "finished", "heads=2 · runs/x")
    data = plugin_data_pb2.HParamsPluginData
    start = data.FromString(start.value[0].metadata.plugin_data.content).session_start_info
    shown = {name: value.WhichOneof("kind") for name, value in start.hparams.items()}
    assert set(shown.values()) == {"string_value"}
    typed = {name: value.string_value for name, value in start.hparams.items()}
    assert typed == {"heads": "2", "d_model": "64", "lr": "0.003", "scale": "false", "task": "sort"}
    assert start.group_name == "heads=2 · runs/x"
    infos = data.FromString(experiment.value[0].metadata.plugin_data.content).experiment
    assert {info.type for info in infos.hparam_infos} == {api_pb2.DATA_TYPE_STRING}


def test_trial_names_differ_in_their_first_characters(tmp_path):
    """TensorBoard's Trial ID column shows about 15 characters of the name; the run's folder
    path (the default name) showed `multiruns/2026-...` for every job of a sweep."""
    logs = tmp_path / "logs"
    sweep = logs / "multiruns" / "2026-01-31_12-00-00"
    jobs = [sweep / "0_data.val_size=64,heads=1", sweep / "1_data.val_size=64,heads=2"]
    runs = [logs / "runs" / "2026-01-31_12-00-00_heads=2", logs / "runs" / "2026-01-31_12-00-01"]
    named = [trial_name(path, logs) for path in [*jobs, *runs]]
    assert named == [
        "0_data.val_size=64,heads=1 · multiruns/2026-01-31_12-00-00",
        "1_data.val_size=64,heads=2 · multiruns/2026-01-31_12-00-00",
        "heads=2 · runs/2026-01-31_12-00-00",
        "2026-01-31_12-00-01 · runs",
    ]
    assert len({name[:12] for name in named}) == len(named)
    assert trial_name(tmp_path / "elsewhere", logs) == f"elsewhere · {tmp_path.resolve()}"


def test_knockout_chart_shows_the_base_loss_uncut():
    """A trained model's base loss is often below 0.001; it was cut to `0.000` at the
    image's right edge. Nothing is drawn in the outermost columns now."""
    assert "0.000326" in knockout_title(0, 0.000326)
    for heads in (1, 4, 32):
        image = knockout_bar_image(torch.linspace(0, 1, heads), 0.000326, layer=0)
        edges = np.concatenate([image[:, :3], image[:, -3:]], axis=1)
        assert (edges > 250).all(), f"{heads} heads: something drawn at the image's edge"


def test_compare_reads_runs_saved_under_the_old_tag_names(tmp_path):
    """Runs saved before the diagnostics moved under `xray/` wrote `attn/entropy`; compare
    reads them under today's names."""
    from torch.utils.tensorboard import SummaryWriter

    with SummaryWriter(str(tmp_path)) as writer:
        for tag in ["attn/entropy", "knockout/layer0/head1", "grad/layer1/key", "val/loss"]:
            writer.add_scalar(tag, 0.5, 10)
    curves = read_curves(tmp_path)
    assert set(curves) == {
        names.ATTN_ENTROPY,
        names.knockout_tag(0, 1),
        names.grad_tag(1, "key"),
        names.VAL_LOSS,
    }
    assert curves[names.ATTN_ENTROPY] == ([10], [0.5])
