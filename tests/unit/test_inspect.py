"""scripts/inspect_model.py's work in this process: a prompt answered and drawn, prompts
parsed, and bad prompts or missing models refused (the script as typed:
tests/integration/test_inspect_script.py)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from PIL import Image

from src.data.tasks import AssociativeRecall
from src.preflight.checks import ConfigError
from tests.helpers import INSPECTED_RUN as RUN
from tests.helpers import PROMPT, compose_config, snapshot


def inspect_cfg(out: Path, *overrides: str):
    return compose_config("inspect", overrides, out)


def test_inspect_answers_a_prompt_and_writes_a_png_per_layer(trained_run, tmp_path):
    from src.inspect.report import inspect_model

    run_dir, net, *_ = trained_run
    before = snapshot(run_dir)
    text = inspect_model(inspect_cfg(tmp_path, f"run='{run_dir}'", f"prompt='{PROMPT}'"))
    assert "example 1: e a d b |" in text
    assert "  expected   a b d e" in text  # the task's own rule
    assert "  generated  " in text
    assert "Head knock-out" in text and "layer 1" in text
    assert "answer 'a' at position 5, predicted by query 4 ('|')" in text
    pngs = sorted(p.name for p in tmp_path.glob("*.png"))
    assert pngs == ["example1_layer0.png", "example1_layer1.png"]
    for png in pngs:
        with Image.open(tmp_path / png) as image:
            assert image.format == "PNG"
    assert (tmp_path / "transcript.txt").read_text().strip() == text
    assert f"wrote {tmp_path / 'attention.html'}" in text  # the interactive page
    assert snapshot(run_dir) == before  # nothing written into the inspected run


def test_each_layers_figure_has_one_titled_panel_per_head_and_a_colour_bar():
    from src.analysis.attention_stats import visible_keys
    from src.inspect.views import plot_layer

    weights = torch.softmax(torch.randn(3, 5, 5).masked_fill(~visible_keys(5, True), -1e9), -1)
    tokens = list("abc|d")
    figure = plot_layer(weights, tokens, visible_keys(5, True), 1, [4], "title")
    panels = [ax for ax in figure.axes if ax.get_title()]
    assert [ax.get_title() for ax in panels] == [f"layer 1, head {h}" for h in range(3)]
    assert len(figure.axes) == 4  # three heads and the colour bar
    for ax in panels:
        assert [t.get_text() for t in ax.get_xticklabels()] == tokens
        assert [t.get_text() for t in ax.get_yticklabels()] == tokens
        assert ax.get_xticklabels()[4].get_color() == "red"  # a wrongly generated token
        data = ax.get_images()[0].get_array()
        assert data.mask[0, 1] and not data.mask[1, 0]  # the causal mask is drawn masked


def test_random_draws_from_the_val_set_and_ckpt_path_last_finds_the_run(trained_run, tmp_path):
    from src.inspect.report import inspect_model

    run_dir, *_ = trained_run
    logs = run_dir.parents[1]
    text = inspect_model(
        inspect_cfg(tmp_path, *RUN, "ckpt_path=last", f"paths.log_dir={logs}", "random=2")
    )
    assert f"model: {run_dir}" in text
    assert "example 2:" in text and "example 3:" not in text
    assert len(list(tmp_path.glob("*.png"))) == 4  # 2 examples x 2 layers


def test_prompts_parse_for_every_position_kind_of_a_task():
    from src.inspect.prompts import PromptLayout, parse_prompt, prompt_batch

    task = AssociativeRecall(num_pairs=2, num_queries=2, num_keys=4, num_values=3)
    layout = PromptLayout.of(task)
    assert len(layout.free) == 2 * 2 + 2 and list(layout.fixed.values()) == [task.sep]
    sequence = parse_prompt(task, "a 2 c 0 c a")  # table a->2, c->0; queries c, a
    batch, known = prompt_batch(task, sequence)
    assert known
    answers = [task.render(t) for t in batch.targets[batch.loss_mask].tolist()]
    assert answers == ["0", "2"]
    with pytest.raises(
        ConfigError, match=r"glyph 2 \('c'\) cannot stand there.*Allowed at that place: 0 1 2"
    ):
        parse_prompt(task, "a c c 0 c a")  # a key where a value goes


def test_group_max_sum_prompts_get_the_sum_of_the_group_maxima():
    from src.data.tasks import GroupMaxSum
    from src.inspect.prompts import parse_prompt, prompt_batch

    task = GroupMaxSum(D=2, length=6, num_values=8)
    batch, known = prompt_batch(task, parse_prompt(task, "A3 B0 A1 B5 A7 B2"))
    assert known and [task.render(t) for t in batch.targets[batch.loss_mask].tolist()] == ["12"]
    batch, known = prompt_batch(task, parse_prompt(task, "A3 A0 A1 A5 A7 A2"))  # no B
    assert not known


BAD = {
    "unknown glyph": (
        ["prompt='e a z b'"],
        r"'z' is not a glyph of the sort task\. Allowed: a b c d e \|",
    ),
    "wrong length": (
        ["prompt='e a d'"],
        r"has 3 glyphs; the sort task expects 4 \(with the separator, 5\)",
    ),
    "random out of range": (["random=1000"], r"random=1000 is not allowed.*from 1 to 128"),
}


@pytest.mark.parametrize("row", list(BAD))
def test_a_bad_prompt_is_refused_naming_what_is_allowed(trained_run, tmp_path, row):
    from src.inspect.report import inspect_model

    run_dir, *_ = trained_run
    overrides, message = BAD[row]
    before = snapshot(run_dir)
    with pytest.raises(ConfigError, match=message):
        inspect_model(inspect_cfg(tmp_path / "out", f"run='{run_dir}'", *overrides))
    assert snapshot(run_dir) == before
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def _without(run_dir: Path, tmp_path: Path, part: str) -> Path:
    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy)
    shutil.rmtree(copy / part)
    return copy


@pytest.mark.parametrize(
    "case, message",
    [
        ("missing", r"run=.*: no such folder\. Allowed: a run folder written by"),
        ("no config", r"has no \.hydra/config\.yaml, so the model cannot be rebuilt"),
        ("no checkpoint", r"has no checkpoints/last\.ckpt .* no weights to look at"),
        ("no last", r"^ckpt_path=last found no checkpoints/last\.ckpt under .* from a run with "),
    ],
)
def test_a_missing_model_is_refused_before_any_work(trained_run, tmp_path, case, message):
    from src.inspect.report import inspect_model

    run_dir, *_ = trained_run
    before = snapshot(run_dir)
    which = {
        "missing": [f"run={tmp_path / 'nowhere'}"],
        "no config": [
            f"run='{_without(run_dir, tmp_path, '.hydra') if case == 'no config' else ''}'"
        ],
        "no checkpoint": [
            f"run='{_without(run_dir, tmp_path, 'checkpoints') if case == 'no checkpoint' else ''}'"
        ],
        "no last": [*RUN, "heads=1", "ckpt_path=last", f"paths.log_dir={run_dir.parents[1]}"],
    }[case]
    with pytest.raises(ConfigError, match=message):
        inspect_model(inspect_cfg(tmp_path / "out", *which, f"prompt='{PROMPT}'"))
    assert snapshot(run_dir) == before
