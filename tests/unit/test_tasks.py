"""Each task generator is deterministic, and an oracle that knows its rule scores 100% on it."""

import pytest
import torch

from src.data.datamodule import TRAIN_STREAM, TaskDataModule, TaskStream, task_batch
from src.data.tasks import AssociativeRecall, Copy, GroupMaxSum, PairDiff, Reverse, Sort

TASKS = [
    Copy(length=5, num_symbols=7),
    Reverse(length=5, num_symbols=7),
    Sort(length=6, num_symbols=4),
    AssociativeRecall(num_pairs=4, num_queries=5, num_keys=6, num_values=3),
    PairDiff(length=5, num_symbols=6),
    GroupMaxSum(D=2, length=6, num_values=5),
    GroupMaxSum(D=3, length=7, num_values=4),
    GroupMaxSum(D=4, length=4, num_values=3),  # D = length: one token per group
]


def oracle(task, sequence: list[int]) -> list[int]:
    """The answers, computed per example in plain Python from the prompt alone."""
    if isinstance(task, AssociativeRecall):
        pairs = sequence[: 2 * task.num_pairs]
        table = dict(zip(pairs[0::2], pairs[1::2]))
        assert len(table) == task.num_pairs  # keys are distinct
        return [table[q] for q in sequence[2 * task.num_pairs + 1 :: 2]]
    if isinstance(task, GroupMaxSum):
        assert sequence[task.length] == task.sep
        best = {}  # group -> largest value seen, parsed back from the rendered glyphs
        for glyph in map(task.render, sequence[: task.length]):
            group, value = glyph[0], int(glyph[1:])
            best[group] = max(best.get(group, 0), value)
        assert len(best) == task.D  # every group present
        return [task.answer_offset + sum(best.values())]
    x, n = sequence[: task.length], task.length
    if isinstance(task, PairDiff):
        return [(x[i] - x[n - 1 - i]) % task.num_symbols for i in range(n)]
    return {Copy: x, Reverse: x[::-1], Sort: sorted(x)}[type(task)]


@pytest.mark.parametrize("task", TASKS, ids=lambda t: t.name)
def test_oracle_scores_100_percent(task):
    batch = task_batch(task, 64, seed=3, stream=TRAIN_STREAM, step=0)
    assert batch.inputs.shape == batch.targets.shape == batch.loss_mask.shape == (64, task.seq_len)
    assert batch.inputs.max() < task.vocab_size and batch.inputs.min() >= 0
    torch.testing.assert_close(batch.inputs[:, 1:], batch.targets[:, :-1])  # next-token pairs
    for inputs, targets, mask in zip(*batch):
        sequence = inputs.tolist() + targets[-1:].tolist()
        assert targets[mask].tolist() == oracle(task, sequence)


@pytest.mark.parametrize("task", TASKS, ids=lambda t: t.name)
def test_each_tasks_own_rule_agrees_with_the_oracle(task):
    """`Task.expected_answers` (what inspect_model.py scores a typed prompt with) gives the
    oracle's answers on every sampled example."""
    batch = task_batch(task, 32, seed=5, stream=TRAIN_STREAM, step=1)
    for inputs, targets, mask in zip(*batch):
        sequence = torch.cat([inputs, targets[-1:]])  # (T+1,)
        answers = (mask.nonzero().flatten() + 1).tolist()  # target t is position t+1
        assert task.expected_answers(sequence, answers) == oracle(task, sequence.tolist())


@pytest.mark.parametrize("task", TASKS, ids=lambda t: t.name)
def test_batches_are_a_function_of_seed_and_step(task):
    a = task_batch(task, 16, seed=1, stream=TRAIN_STREAM, step=5)
    b = task_batch(task, 16, seed=1, stream=TRAIN_STREAM, step=5)
    c = task_batch(task, 16, seed=1, stream=TRAIN_STREAM, step=6)
    d = task_batch(task, 16, seed=2, stream=TRAIN_STREAM, step=5)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not torch.equal(a.inputs, c.inputs) and not torch.equal(a.inputs, d.inputs)


def test_stream_resumes_at_a_step():
    task = TASKS[0]
    full = TaskStream(task, 8, seed=0)
    batches = [b for b, _ in zip(full, range(4))]
    resumed = next(iter(TaskStream(task, 8, seed=0, start_step=3)))
    assert torch.equal(resumed.inputs, batches[3].inputs)


def test_validation_set_is_fixed_and_independent_of_the_training_seed():
    sets = []
    for seed in (0, 1):
        dm = TaskDataModule(TASKS[2], batch_size=16, val_size=40, seed=seed)
        dm.setup()
        sets.append(torch.cat([b.inputs for b in dm.val_batches]))
    assert sets[0].shape == (40, TASKS[2].seq_len)
    assert torch.equal(sets[0], sets[1])


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: Copy(length=0), "^length=0 is not allowed: it must be a positive integer"),
        (
            lambda: AssociativeRecall(num_pairs=9, num_keys=8),
            "^num_pairs=9 is not allowed: keys are distinct.*at most num_keys=8",
        ),
        (lambda: PairDiff(num_symbols=-1), "^num_symbols=-1 is not allowed"),
        (lambda: GroupMaxSum(D=3, length=2), "^D=3 is not allowed with length=2"),
        (lambda: TaskDataModule(TASKS[0], batch_size=0), "^batch_size=0 is not allowed"),
        (lambda: TaskDataModule(TASKS[0], val_size=True), "^val_size=True is not allowed"),
    ],
)
def test_bad_task_settings_are_refused(make, match):
    """In the layer's own argument names: the config layer adds which key held the value
    (tests/unit/test_configs.py), so a task built by hand is not told about `task.length`."""
    with pytest.raises(ValueError, match=match):
        make()


def test_group_max_sum_answers_are_balanced_over_the_group_maxima():
    """Each group's maximum is uniform, so no answer dominates: the D = 2, 8-value answer
    distribution is the triangle of two uniform dice, not a spike at the largest sum."""
    task = GroupMaxSum(D=2, length=32, num_values=8)
    batch = task_batch(task, 20000, seed=0, stream=TRAIN_STREAM, step=0)
    answers = batch.targets[batch.loss_mask] - task.answer_offset
    share = torch.bincount(answers, minlength=15).float() / answers.numel()
    expected = torch.tensor([min(s + 1, 15 - s) for s in range(15)]) / 64.0
    torch.testing.assert_close(share, expected, atol=0.01, rtol=0)
