"""A batch of prompts answered greedily, one `Answer` per example, with the attention the
model paid while answering: what the inspect script prints and draws, and what the notebook
API (src/inspect/api.py) returns, come from here alone."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from src.data.tasks import Batch, Task
from src.modules import TransformerLM, greedy_generate


@dataclass
class Answer:
    """One example as the model answered it. T is the model's input length (the task's
    sequence length minus one); answer positions are those where `loss_mask` is True.

    inputs: the T tokens the model read, its own answers in place (the attention maps are
    over these); sequence: the T+1 tokens, the last answer included; generated: the T
    greedy next-token predictions (the given tokens where no answer is due), lined up with
    `targets`, the task's expected next tokens (the generated ones where the task has no
    rule, `known` False); attention: per layer, the (heads, T, T) softmax weights over
    `inputs`, rows are queries; tokens: `sequence` as the task's glyphs.
    """

    inputs: Tensor
    sequence: Tensor
    generated: Tensor
    targets: Tensor
    loss_mask: Tensor
    known: bool
    attention: list[Tensor]
    tokens: list[str]
    prompt: str  # the glyphs typed or drawn, `_` where an answer goes
    answer: list[str]  # the generated answer glyphs
    expected: list[str] | None  # the task's answer, None where it has no rule

    @property
    def text(self) -> str:
        """The generated answer as typed glyphs, e.g. "a b d e"."""
        return " ".join(self.answer)

    @property
    def wrong(self) -> list[int]:
        """Indices into `answer` of the tokens that differ from `expected`."""
        if self.expected is None:
            return []
        return [i for i, (a, b) in enumerate(zip(self.answer, self.expected)) if a != b]

    @property
    def right(self) -> bool | None:
        """Every answer token as the task's rule says; None where it has no rule."""
        return None if self.expected is None else not self.wrong

    @property
    def wrong_inputs(self) -> list[int]:
        """Positions in `inputs` holding a wrongly generated token (fed back to the model)."""
        answer_at = (self.loss_mask.nonzero().flatten() + 1).tolist()
        return [answer_at[i] for i in self.wrong if answer_at[i] < len(self.inputs)]


def answer_batch(net: TransformerLM, task: Task, batch: Batch, known: bool) -> list[Answer]:
    """Generate each example's answer greedily (each token fed back before the next), then
    read the attention of one forward pass over the generated sequence. `known`: whether
    `batch.targets` holds the task's answers (else only the prompt in it counts)."""
    with torch.no_grad():
        generated = greedy_generate(net, *batch)  # (B, T): the given tokens where no answer
        sequence = torch.cat([batch.inputs[:, :1], generated], dim=1)  # (B, T+1), as read
        _, maps = net(sequence[:, :-1], need_weights=True)
    given = torch.cat([batch.inputs, batch.targets[:, -1:]], dim=1).tolist()
    answers = []
    for i, mask in enumerate(batch.loss_mask):
        answer_at = set((mask.nonzero().flatten() + 1).tolist())
        expected = [task.render(t) for t in batch.targets[i][mask].tolist()]
        answers.append(
            Answer(
                inputs=sequence[i, :-1],
                sequence=sequence[i],
                generated=generated[i],
                targets=batch.targets[i] if known else generated[i],
                loss_mask=mask,
                known=known,
                attention=[layer.weights[i] for layer in maps],
                tokens=[task.render(t) for t in sequence[i].tolist()],
                prompt=" ".join(
                    "_" if p in answer_at else task.render(t) for p, t in enumerate(given[i])
                ),
                answer=[task.render(t) for t in generated[i][mask].tolist()],
                expected=expected if known else None,
            )
        )
    return answers
