"""Greedy free-running generation: the model answers from its own earlier answers.

Teacher-forced scoring predicts every answer token from the *true* prefix, so one early
mistake costs one token. Generation feeds each prediction back in, as a user of the model
would see it, so an early mistake can derail everything after it.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


@torch.no_grad()
def greedy_generate(
    net: nn.Module,
    inputs: Tensor,
    targets: Tensor,
    loss_mask: Tensor,
    head_mask: Tensor | None = None,
    teacher_forced: Tensor | None = None,
) -> Tensor:
    """(B, T) next-token predictions where every answer token was generated greedily.

    `inputs`, `targets`, `loss_mask` are a task batch (each (B, T)): the answer tokens are the
    targets where `loss_mask` is True; every other token (the prompt, separators, the query
    keys of assoc_recall) is given by the task. Answers are produced left to right, one
    forward pass each, over the prefix only (so a non-causal model cannot read the answer),
    and each is written into the sequence before the next is predicted. Returns the targets
    with the answer positions replaced by the generated tokens, so it lines up with
    `targets` exactly as a teacher-forced `argmax` does. `net(idx)` returns (logits, ...).

    `teacher_forced`: (B, T) argmax predictions of a full teacher-forced pass of this same
    causal `net` (and head_mask). Rows they get all right are not generated: every prefix is
    then the true one, so generation would predict exactly those tokens again. Late in
    training that is most rows, and most of validation's cost.
    """
    if teacher_forced is not None:
        if not net.config.causal:
            raise ValueError("teacher_forced predictions stand in for generation only when causal")
        todo = ~exact_matches(teacher_forced, targets, loss_mask)  # (B,) rows to generate
        generated = targets.clone()
        if todo.any():
            rows = (inputs[todo], targets[todo], loss_mask[todo])
            generated[todo] = greedy_generate(net, *rows, head_mask=head_mask)
        return generated
    sequence = torch.cat([inputs, targets[:, -1:]], dim=1).clone()  # (B, T+1)
    generated = targets.clone()  # (B, T)
    for t in loss_mask.any(dim=0).nonzero().flatten().tolist():
        if head_mask is None:
            logits = net(sequence[:, : t + 1])[0]
        else:
            logits = net(sequence[:, : t + 1], head_mask=head_mask)[0]
        token = logits[:, -1].argmax(dim=-1)  # (B,), the prediction for sequence position t+1
        answer = loss_mask[:, t]  # (B,) rows whose position t+1 is an answer
        sequence[answer, t + 1] = token[answer]
        generated[answer, t] = token[answer]
    return generated


def exact_matches(predictions: Tensor, targets: Tensor, loss_mask: Tensor) -> Tensor:
    """(B,) bool: every answer token of the example is right."""
    return ((predictions == targets) | ~loss_mask).all(dim=-1)
