"""Free-running generation, `val/gen_exact_match`, and scripts/inspect_model.py, refusals too."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf, open_dict
from PIL import Image
from torch import nn

from src.data.datamodule import VAL_STREAM, task_batch
from src.data.tasks import AssociativeRecall, Sort
from src.modules import exact_matches, greedy_generate
from src.preflight.checks import ConfigError
from tests.helpers import CONF, ROOT, run_script

INSPECT_SCRIPT = ROOT / "scripts" / "inspect_model.py"
# A short run: partly trained (some val examples right, not all), 2 layers x 2 heads.
RUN = [
    "heads=2",
    "task.length=4",
    "task.num_symbols=5",
    "trainer.max_steps=80",
    "trainer.val_check_interval=40",
    "data.val_size=128",
    "trainer.enable_model_summary=false",
]
PROMPT = "e a d b"  # sort, length 4, symbols a..e


class SortOracle(nn.Module):
    """A model that is perfect on Sort: one-hot logits on the true next answer token."""

    def __init__(self, task: Sort) -> None:
        super().__init__()
        self.task = task

    def forward(self, idx: torch.Tensor, head_mask=None):
        B, T = idx.shape
        n = self.task.length
        answers = idx[:, :n].sort(dim=1).values  # (B, n), from the prompt alone
        logits = torch.zeros(B, T, self.task.vocab_size)
        for t in range(n, T):  # input position t predicts answer t - n
            logits[:, t].scatter_(1, answers[:, t - n : t - n + 1], 1.0)
        return logits, None


class PlusOne(nn.Module):
    """Predicts `this token + 1`: each answer depends only on the token before it."""

    def __init__(self, vocab: int) -> None:
        super().__init__()
        self.vocab = vocab

    def forward(self, idx: torch.Tensor, head_mask=None):
        return nn.functional.one_hot((idx + 1) % self.vocab, self.vocab).float(), None


def test_greedy_generation_equals_teacher_forced_argmax_on_a_perfect_model():
    task = Sort(length=6, num_symbols=7)
    batch = task_batch(task, 64, seed=0, stream=VAL_STREAM, step=0)
    oracle = SortOracle(task)
    generated = greedy_generate(oracle, *batch)
    teacher_forced = oracle(batch.inputs)[0].argmax(-1)
    mask = batch.loss_mask
    assert torch.equal(generated[mask], teacher_forced[mask])
    assert torch.equal(generated[mask], batch.targets[mask])
    assert exact_matches(generated, batch.targets, mask).all()


def test_generation_feeds_its_own_predictions_back():
    task = Sort(length=5, num_symbols=8)
    batch = task_batch(task, 32, seed=0, stream=VAL_STREAM, step=0)
    model = PlusOne(task.vocab_size)
    generated = greedy_generate(model, *batch)  # (B, T)
    teacher_forced = model(batch.inputs)[0].argmax(-1)
    first = task.length  # input position of the separator: predicts the first answer
    # the first answer is the same either way ((separator + 1) mod vocab = 'a') ...
    assert torch.equal(generated[:, first], teacher_forced[:, first])
    wrong_first = generated[:, first] != batch.targets[:, first]
    assert wrong_first.any()
    # ... then each answer follows the *generated* one before it, not the true one
    for t in range(first + 1, 2 * task.length):
        assert torch.equal(generated[:, t], (generated[:, t - 1] + 1) % task.vocab_size)
    changed = generated[:, first + 1] != teacher_forced[:, first + 1]
    assert changed[wrong_first].all() and not changed[~wrong_first].any()


class ReadsAhead(nn.Module):
    """A non-causal cheat: predicts the token at t+1 by reading it (when it can see it)."""

    def __init__(self, vocab: int) -> None:
        super().__init__()
        self.vocab = vocab

    def forward(self, idx: torch.Tensor, head_mask=None):
        ahead = torch.cat([idx[:, 1:], torch.zeros_like(idx[:, :1])], dim=1)  # (B, T)
        return nn.functional.one_hot(ahead, self.vocab).float(), None


def test_a_model_that_reads_ahead_is_right_teacher_forced_but_not_when_generating():
    task = Sort(length=5, num_symbols=8)
    batch = task_batch(task, 32, seed=0, stream=VAL_STREAM, step=0)
    model = ReadsAhead(task.vocab_size)
    mask = batch.loss_mask
    teacher_forced = model(batch.inputs)[0].argmax(-1)
    assert exact_matches(teacher_forced[:, :-1], batch.targets[:, :-1], mask[:, :-1]).all()
    generated = greedy_generate(model, *batch)  # the prefix only: nothing ahead to read
    assert not exact_matches(generated, batch.targets, mask).any()


def test_for_a_causal_model_generation_is_right_exactly_where_teacher_forcing_is(trained_run):
    """Where every teacher-forced answer is right, generation feeds back exactly the true
    tokens, so it gets the same answers; where one is wrong, generation is wrong there too.
    Token accuracy can only fall: an early mistake can derail the later answers."""
    run_dir, net, task, val = trained_run
    mask = val.loss_mask
    generated = greedy_generate(net, *val)
    teacher_forced = net(val.inputs)[0].argmax(-1)
    tf_right = exact_matches(teacher_forced, val.targets, mask)
    assert 0 < tf_right.sum() < len(tf_right)  # partly trained
    assert torch.equal(exact_matches(generated, val.targets, mask), tf_right)
    gen_tokens = ((generated == val.targets) & mask).sum()
    assert gen_tokens <= ((teacher_forced == val.targets) & mask).sum()


def test_gen_exact_match_is_at_most_teacher_forced_on_a_partly_trained_model(trained_run):
    run_dir, *_ = trained_run
    metrics = json.loads((run_dir / "metrics.json").read_text())["metrics"]
    assert {"val/exact_match", "val/gen_exact_match", "val/gen_acc"} <= set(metrics)
    assert 0.0 < metrics["val/exact_match"] < 1.0  # partly trained: the test says something
    assert metrics["val/gen_exact_match"] <= metrics["val/exact_match"]
    assert metrics["val/gen_acc"] <= metrics["val/acc"]


# ---------------------------------------------------------------- inspect_model.py


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """A short run written as scripts/train.py would: its folder name has `=` and `,`."""
    from src.inspect.load import load
    from src.training.run import train

    logs = tmp_path_factory.mktemp("logs")
    run_dir = logs / "runs" / "2026-01-01_00-00-00_heads=2,task.length=4"
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=RUN)
    with open_dict(cfg):
        cfg.paths.output_dir = str(run_dir)
        cfg.paths.log_dir = str(logs)
    torch.manual_seed(0)
    train(cfg)
    (run_dir / ".hydra").mkdir()
    OmegaConf.save(cfg, run_dir / ".hydra" / "config.yaml")  # as Hydra saves it
    loaded = load(run_dir, run_dir / "checkpoints" / "last.ckpt")
    val = task_batch(loaded.task, 128, seed=1234, stream=VAL_STREAM, step=0)
    return run_dir, loaded.net, loaded.task, val


def inspect_cfg(out: Path, *overrides: str):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("inspect", overrides=list(overrides))
    with open_dict(cfg):
        cfg.paths.output_dir = str(out)
    return cfg


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*")}


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


@pytest.mark.slow
def test_inspect_script_as_typed_and_its_refusal(trained_run, tmp_path):
    """The user's command line: an unquoted run folder with `=` and `,` in its name."""
    run_dir, *_ = trained_run
    before = snapshot(run_dir)
    ok = run_script(INSPECT_SCRIPT, f"run={run_dir}", f"prompt={PROMPT}", cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr[-3000:]
    assert "expected   a b d e" in ok.stdout
    (out,) = (tmp_path / "logs" / "inspect").iterdir()  # its own folder
    assert {p.name for p in out.glob("*.png")} == {"example1_layer0.png", "example1_layer1.png"}

    bad = run_script(INSPECT_SCRIPT, f"run={run_dir}", "prompt=e a z b", cwd=tmp_path)
    assert bad.returncode == 2
    assert "Traceback" not in bad.stderr + bad.stdout
    paragraph = bad.stderr.strip()
    assert (
        paragraph.startswith("error: prompt='e a z b': 'z' is not a glyph")
        and "\n\n" not in paragraph
    )
    assert snapshot(run_dir) == before


@pytest.mark.slow
def test_a_refused_inspection_leaves_no_folder_behind(tmp_path):
    """As typed, with the default log folder: Hydra makes logs/inspect/<time>_default/ before
    the values are checked; a refusal removes it, and nothing that was there before."""
    earlier = tmp_path / "logs" / "inspect" / "2026-01-01_00-00-00_default" / "transcript.txt"
    earlier.parent.mkdir(parents=True)
    earlier.write_text("an earlier inspection\n")
    proc = run_script(INSPECT_SCRIPT, "run=logs/runs/nowhere", "prompt=d c z", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert proc.stderr.strip().startswith("error: run=logs/runs/nowhere: no such folder")
    assert sorted(p for p in tmp_path.rglob("*")) == [
        tmp_path / "logs",
        tmp_path / "logs" / "inspect",
        earlier.parent,
        earlier,
    ]

    earlier.unlink()
    earlier.parent.rmdir()
    proc = run_script(INSPECT_SCRIPT, "run=logs/runs/nowhere", "prompt=d c z", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert not list(tmp_path.iterdir())  # no empty logs/inspect/<time>_default/, logs/inspect
