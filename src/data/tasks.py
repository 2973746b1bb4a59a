"""Toy next-token tasks as vectorised batch generators.

Every task builds a whole batch of token sequences with torch ops (no per-sample Python)
from a `torch.Generator`, so a batch is a pure function of (seed, stream, step). A task
returns inputs, next-token targets and a loss mask: True only where the task's rule
determines the next token, so loss and accuracy never reward guessing random symbols.

Vocabulary layout of every task: symbols first (0 .. num_symbols-1), special tokens after.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from src.validation import check_positive_int, is_int, require

_MASK64 = (1 << 64) - 1


class Batch(NamedTuple):
    inputs: Tensor  # (B, T) token ids fed to the model
    targets: Tensor  # (B, T) the next token at every position
    loss_mask: Tensor  # (B, T) bool, True where the task determines the target


def stream_seed(seed: int, stream: int, step: int) -> int:
    """A well-mixed 63-bit seed for batch `step` of `stream` (splitmix64 finaliser)."""
    z = (seed * 0x9E3779B97F4A7C15 + stream * 0xBF58476D1CE4E5B9 + step) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return (z ^ (z >> 31)) >> 1


def _next_token_batch(sequence: Tensor, first_answer: int, every: int = 1) -> Batch:
    """Next-token pairs from full sequences (B, T+1); answers sit at sequence positions
    first_answer, first_answer + every, ... and only those targets are scored."""
    inputs, targets = sequence[:, :-1], sequence[:, 1:]  # (B, T)
    loss_mask = torch.zeros_like(targets, dtype=torch.bool)
    loss_mask[:, first_answer - 1 :: every] = True  # target t is sequence position t+1
    return Batch(inputs, targets, loss_mask)


class Task:
    """Base class: a name, a vocabulary, a model input length, and `sample`."""

    name: str = "task"
    vocab_size: int
    seq_len: int  # T, the length of `inputs`

    def sample(self, batch_size: int, generator: torch.Generator) -> Batch:
        raise NotImplementedError

    def render(self, token: int) -> str:
        """A readable glyph per token for printed samples."""
        return str(token)

    def expected_answers(self, sequence: Tensor, answers: list[int]) -> list[int | None]:
        """The task's rule applied to one typed sequence (T+1,): the right token at each
        answer position, None where the rule gives none (inspect_model.py scores a prompt with it).
        A task without a rule here gets the model's own answers as the reference."""
        return [None] * len(answers)


class _SequenceTransform(Task):
    """x_1..x_n SEP f(x)_1..f(x)_n; the answer f(x) is scored."""

    def __init__(self, length: int = 8, num_symbols: int = 10) -> None:
        check_positive_int("length", length)
        check_positive_int("num_symbols", num_symbols)
        self.length, self.num_symbols = length, num_symbols
        self.sep = num_symbols
        self.vocab_size = num_symbols + 1
        self.seq_len = 2 * length

    def transform(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def sample(self, batch_size: int, generator: torch.Generator) -> Batch:
        x = torch.randint(self.num_symbols, (batch_size, self.length), generator=generator)
        sep = torch.full((batch_size, 1), self.sep)
        sequence = torch.cat([x, sep, self.transform(x)], dim=1)  # (B, 2n+1)
        return _next_token_batch(sequence, first_answer=self.length + 1)

    def render(self, token: int) -> str:
        return "|" if token == self.sep else _glyph(token)

    def expected_answers(self, sequence: Tensor, answers: list[int]) -> list[int | None]:
        return self.transform(sequence[None, : self.length])[0].tolist()


class Copy(_SequenceTransform):
    """Repeat the sequence: needs attention to a fixed offset back (position information)."""

    name = "copy"

    def transform(self, x: Tensor) -> Tensor:
        return x


class Reverse(_SequenceTransform):
    """Reverse the sequence: output i attends to the mirrored input position."""

    name = "reverse"

    def transform(self, x: Tensor) -> Tensor:
        return x.flip(1)


class Sort(_SequenceTransform):
    """Sort the sequence: each output must compare against every input symbol."""

    name = "sort"

    def transform(self, x: Tensor) -> Tensor:
        return x.sort(dim=1).values


class AssociativeRecall(Task):
    """Multi-query associative recall: a table k_1 v_1 .. k_P v_P of distinct keys and their
    values, then queries, each key followed by its value.

    Needs an induction-style circuit: find the earlier copy of the key, read the token after it.
    """

    name = "assoc_recall"

    def __init__(
        self, num_pairs: int = 8, num_queries: int = 8, num_keys: int = 16, num_values: int = 16
    ) -> None:
        for key, value in [
            ("num_pairs", num_pairs),
            ("num_queries", num_queries),
            ("num_keys", num_keys),
            ("num_values", num_values),
        ]:
            check_positive_int(key, value)
        require(
            num_pairs <= num_keys,
            f"num_pairs={num_pairs} is not allowed: keys are distinct, so it must be "
            f"at most num_keys={num_keys}.",
        )
        self.num_pairs, self.num_queries = num_pairs, num_queries
        self.num_keys, self.num_values = num_keys, num_values
        self.value_offset = num_keys  # values are tokens num_keys .. num_keys+num_values-1
        self.sep = num_keys + num_values
        self.vocab_size = num_keys + num_values + 1
        self.seq_len = 2 * num_pairs + 2 * num_queries

    def sample(self, batch_size: int, generator: torch.Generator) -> Batch:
        B, P, Q = batch_size, self.num_pairs, self.num_queries
        keys = torch.rand(B, self.num_keys, generator=generator).argsort(dim=1)[:, :P]  # distinct
        values = torch.randint(self.num_values, (B, P), generator=generator)  # (B, P)
        which = torch.randint(P, (B, Q), generator=generator)
        query_keys, answers = keys.gather(1, which), values.gather(1, which)  # (B, Q)
        table = torch.stack([keys, values + self.value_offset], dim=2).flatten(1)  # (B, 2P)
        queries = torch.stack([query_keys, answers + self.value_offset], dim=2).flatten(1)
        sep = torch.full((B, 1), self.sep)
        sequence = torch.cat([table, sep, queries], dim=1)  # (B, 2P+1+2Q)
        return _next_token_batch(sequence, first_answer=2 * P + 2, every=2)

    def render(self, token: int) -> str:
        if token == self.sep:
            return "|"
        if token >= self.value_offset:
            return str(token - self.value_offset)
        return _glyph(token)

    def expected_answers(self, sequence: Tensor, answers: list[int]) -> list[int | None]:
        table = sequence[: 2 * self.num_pairs].view(-1, 2).tolist()  # [(key, value), ...]
        lookup = dict(table)  # a repeated key: its last value
        return [lookup.get(int(sequence[p - 1])) for p in answers]


class PairDiff(_SequenceTransform):
    """x_1..x_n | y_1..y_n with y_i = (x_i - x_{n+1-i}) mod num_symbols.

    Each answer needs two input positions at once, in order: built to test whether more heads
    help. At 1 layer they did not, beyond the seed spread: one head learns to split its
    attention unevenly over both positions (scripts/results/heads_phase/README.md).
    """

    name = "pair_diff"

    def transform(self, x: Tensor) -> Tensor:
        return (x - x.flip(1)) % self.num_symbols


def _glyph(token: int) -> str:
    """Symbols as letters a, b, c, ... so they read apart from values and digits."""
    return chr(ord("a") + token) if token < 26 else f"<{token}>"


class GroupMaxSum(Task):
    """D-retrieval (Yu et al. 2026): D groups of tokens; the answer is the sum of each
    group's largest value, predicted at SEP.

    Tokens are (group, value) pairs, written `A3` (group A, value 3). Each of the D items
    the answer needs is picked out by its own content rule (the largest value *within group
    d*), so one softmax cannot put its weight on all D of them: whichever maximum has the
    largest logit takes the weight from the others. h >= D heads can each select one group's
    maximum; with fewer, the head count should show. Balanced: each group's maximum is
    uniform over the values, and the group's other tokens are uniform below it.
    """

    name = "group_max_sum"

    def __init__(self, D: int = 2, length: int = 16, num_values: int = 8) -> None:
        check_positive_int("D", D)
        check_positive_int("length", length)
        require(
            is_int(num_values) and num_values >= 2,
            f"num_values={num_values!r} is not allowed: it must be an integer >= 2, so "
            "that a group's maximum can vary.",
        )
        require(
            length >= D,
            f"D={D} is not allowed with length={length}: every one of the D groups "
            f"needs at least one token, so D must be at most the length ({length}).",
        )
        require(
            D <= 26,
            f"D={D} is not allowed: groups are written with the letters A..Z, so D must "
            "be at most 26.",
        )
        self.D, self.length, self.num_values = D, length, num_values
        self.sep = D * num_values  # after the D * num_values (group, value) tokens
        self.answer_offset = self.sep + 1  # answers 0 .. D*(num_values-1) follow SEP
        self.vocab_size = self.answer_offset + D * (num_values - 1) + 1
        self.seq_len = length + 1

    def sample(self, batch_size: int, generator: torch.Generator) -> Batch:
        B, T, D, V = batch_size, self.length, self.D, self.num_values
        order = torch.rand(B, T, generator=generator).argsort(dim=1)  # a shuffle per row
        groups = order % D  # (B, T): every group present, about T/D tokens each
        maxima = torch.randint(V, (B, D), generator=generator)  # (B, D) uniform maxima
        ceiling = maxima.gather(1, groups)  # (B, T) each token's group maximum
        values = (torch.rand(B, T, generator=generator) * (ceiling + 1)).long()
        values = torch.where(order < D, ceiling, values.clamp(max=ceiling))  # max present
        tokens = groups * V + values  # (B, T)
        sep = torch.full((B, 1), self.sep)
        answer = self.answer_offset + maxima.sum(dim=1, keepdim=True)  # (B, 1)
        sequence = torch.cat([tokens, sep, answer], dim=1)  # (B, T+2)
        return _next_token_batch(sequence, first_answer=T + 1)

    def render(self, token: int) -> str:
        if token == self.sep:
            return "|"
        if token >= self.answer_offset:
            return str(token - self.answer_offset)
        group, value = divmod(token, self.num_values)
        return f"{chr(ord('A') + group)}{value}"

    def expected_answers(self, sequence: Tensor, answers: list[int]) -> list[int | None]:
        tokens = sequence[: self.length]  # (T,)
        groups, values = tokens // self.num_values, tokens % self.num_values
        maxima = [values[groups == g].max() for g in range(self.D) if (groups == g).any()]
        if len(maxima) < self.D:  # a group missing from the prompt: no rule applies
            return [None]
        return [self.answer_offset + int(sum(maxima))]
