"""Prompts typed in the task's glyphs, or validation examples.

Which positions the user types, which the task fixes (the `|` separator) and which are
answers is read off the task's own samples, so every task works without a parser of its own.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from omegaconf import DictConfig
from torch import Tensor

from src.data.datamodule import VAL_STREAM, task_batch
from src.data.tasks import Batch, Task
from src.preflight.checks import ConfigError


@dataclass
class PromptLayout:
    """Where a task's sequence positions come from (full sequence, T+1 tokens).

    free: typed by the user; fixed: always the same token (the separator); answers: what the
    model generates. allowed[p]: the tokens position p takes in the task's samples.
    """

    length: int
    free: list[int]
    fixed: dict[int, int]
    answers: list[int]
    allowed: dict[int, list[int]]

    @staticmethod
    def of(task: Task, samples: int = 512) -> PromptLayout:
        batch = task.sample(samples, torch.Generator().manual_seed(0))
        sequence = torch.cat([batch.inputs, batch.targets[:, -1:]], dim=1)  # (S, T+1)
        answers = (batch.loss_mask[0].nonzero().flatten() + 1).tolist()
        given = [p for p in range(sequence.size(1)) if p not in answers]
        fixed = {p: int(sequence[0, p]) for p in given if (sequence[:, p] == sequence[0, p]).all()}
        allowed = {p: sorted(set(sequence[:, p].tolist())) for p in given}
        free = [p for p in given if p not in fixed]
        return PromptLayout(sequence.size(1), free, fixed, answers, allowed)


def parse_prompt(task: Task, text: str) -> Tensor:
    """The prompt's glyphs -> the full (T+1,) sequence, answers still 0.

    The user types the free positions; the fixed ones (`|`) may be typed or left out.
    """
    layout = PromptLayout.of(task)
    glyphs = str(text).split()
    given = sorted([*layout.free, *layout.fixed])
    if len(glyphs) == len(layout.free):
        positions = layout.free
    elif len(glyphs) == len(given):
        positions = given
    else:
        example = " ".join(
            task.render(layout.allowed[p][i % 3 % len(layout.allowed[p])])
            for i, p in enumerate(layout.free)
        )
        raise ConfigError(
            f"prompt={text!r} has {len(glyphs)} glyphs; the {task.name} task expects "
            f'{len(layout.free)} (with the separator, {len(given)}), e.g. prompt="{example}".'
        )
    vocabulary = {task.render(t): t for t in range(task.vocab_size)}
    sequence = torch.zeros(layout.length, dtype=torch.long)
    for p in layout.fixed:
        sequence[p] = layout.fixed[p]
    for i, (glyph, p) in enumerate(zip(glyphs, positions)):
        allowed = " ".join(task.render(t) for t in layout.allowed[p])
        if glyph not in vocabulary:
            raise ConfigError(
                f"prompt={text!r}: {glyph!r} is not a glyph of the {task.name} task. "
                f"Allowed: {' '.join(vocabulary)}."
            )
        if vocabulary[glyph] not in layout.allowed[p]:
            raise ConfigError(
                f"prompt={text!r}: glyph {i + 1} ({glyph!r}) cannot stand there in the "
                f"{task.name} task. Allowed at that place: {allowed}."
            )
        sequence[p] = vocabulary[glyph]
    return sequence


def prompt_batch(task: Task, sequence: Tensor) -> tuple[Batch, bool]:
    """A one-example Batch from a typed prompt (answers from the task's rule), and whether
    the rule gave every answer (if not, the model's own answers stand in for scoring)."""
    layout = PromptLayout.of(task)
    expected = task.expected_answers(sequence, layout.answers)
    sequence = sequence.clone()
    for p, token in zip(layout.answers, expected):
        sequence[p] = 0 if token is None else token
    loss_mask = torch.zeros(layout.length - 1, dtype=torch.bool)
    loss_mask[[p - 1 for p in layout.answers]] = True
    batch = Batch(sequence[None, :-1], sequence[None, 1:], loss_mask[None])
    return batch, all(token is not None for token in expected)


def examples(cfg: DictConfig, task: Task, data: DictConfig) -> tuple[Batch, bool]:
    """The examples asked for: the typed prompt, or the first `random` of the run's val set
    (`data`: the run's data config)."""
    prompt, count = cfg.get("prompt"), cfg.get("random")
    if prompt is not None and count:
        raise ConfigError(
            f"prompt={prompt!r} and random={count} both choose examples. Allowed: one of them."
        )
    if prompt is not None:
        return prompt_batch(task, parse_prompt(task, prompt))
    size = data.val_size
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= size:
        raise ConfigError(
            f'random={count!r} is not allowed: give prompt="..." in the task\'s glyphs, or '
            f"random=N with N from 1 to {size} (the run's val set)."
        )
    val = task_batch(task, size, data.val_seed, VAL_STREAM, 0)  # the run's val set
    return Batch(*(t[:count] for t in val)), True
