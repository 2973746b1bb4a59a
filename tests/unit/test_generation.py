"""Free-running generation against teacher forcing, and `val/gen_exact_match`."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
from torch import nn

from src.data.datamodule import VAL_STREAM, task_batch
from src.data.tasks import Sort
from src.modules import exact_matches, greedy_generate


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


def test_generating_only_the_rows_teacher_forcing_gets_wrong_changes_nothing(trained_run):
    """Validation's shortcut: a causal model's rows that teacher forcing gets all right are
    taken as they are, the rest generated; the result is the full generation's, row for row."""
    run_dir, net, task, val = trained_run
    teacher_forced = net(val.inputs)[0].argmax(-1)
    right = exact_matches(teacher_forced, val.targets, val.loss_mask)
    assert 0 < right.sum() < len(right)  # both kinds of rows
    full = greedy_generate(net, *val)
    assert torch.equal(greedy_generate(net, *val, teacher_forced=teacher_forced), full)


def test_the_shortcut_is_refused_for_a_model_that_can_read_ahead(trained_run, monkeypatch):
    _, net, task, val = trained_run
    monkeypatch.setattr(net, "config", dataclasses.replace(net.config, causal=False))
    with pytest.raises(ValueError, match="only when causal"):
        greedy_generate(net, *val, teacher_forced=val.targets)
