"""A LightningDataModule over a generated task: an endless training stream, a fixed val set."""

from __future__ import annotations

from collections.abc import Iterator

import lightning as L
import torch
from torch.utils.data import DataLoader, IterableDataset

from src.data.tasks import Batch, Task, stream_seed
from src.validation import check_positive_int

TRAIN_STREAM, VAL_STREAM = 0, 1


def task_batch(task: Task, batch_size: int, seed: int, stream: int, step: int) -> Batch:
    """Batch `step` of a stream: the same arguments always give the same batch."""
    generator = torch.Generator().manual_seed(stream_seed(seed, stream, step))
    return task.sample(batch_size, generator)


def shard(batch: Batch, rank: int, world_size: int) -> Batch:
    """This process's rows of a global batch: contiguous, equal-sized chunks by rank."""
    if world_size == 1:
        return batch
    return Batch(*(t.tensor_split(world_size)[rank] for t in batch))


class TaskStream(IterableDataset):
    """Training batches keyed by step, so a run resumed at step s sees batch s next.

    Under data parallelism every process draws the same global batch and keeps its own
    shard, so N processes together see exactly the batches one process would.
    """

    def __init__(
        self,
        task: Task,
        batch_size: int,
        seed: int,
        start_step: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        self.task, self.batch_size, self.seed, self.start_step = task, batch_size, seed, start_step
        self.rank, self.world_size = rank, world_size

    def __iter__(self) -> Iterator[Batch]:
        step = self.start_step
        while True:
            batch = task_batch(self.task, self.batch_size, self.seed, TRAIN_STREAM, step)
            yield shard(batch, self.rank, self.world_size)
            step += 1


class _Batches(IterableDataset):
    """A fixed list of batches. Iterable, so Lightning adds no sampler that re-shards it."""

    def __init__(self, batches: list[Batch]) -> None:
        self.batches = batches

    def __iter__(self) -> Iterator[Batch]:
        return iter(self.batches)


class TaskDataModule(L.LightningDataModule):
    """Whole batches come straight from the generator: no workers, no collation."""

    def __init__(
        self,
        task: Task,
        batch_size: int = 64,
        val_size: int = 512,
        seed: int = 0,
        val_seed: int = 1234,
    ) -> None:
        super().__init__()
        check_positive_int("batch_size", batch_size)
        check_positive_int("val_size", val_size)
        self.task, self.batch_size, self.val_size = task, batch_size, val_size
        self.seed, self.val_seed = seed, val_seed
        self.val_batches: list[Batch] = []

    def setup(self, stage: str | None = None) -> None:
        if not self.val_batches:
            # One fixed set, independent of the training seed, so every run is scored alike.
            full = task_batch(self.task, self.val_size, self.val_seed, VAL_STREAM, 0)
            self.val_batches = [
                Batch(*(t[i : i + self.batch_size] for t in full))
                for i in range(0, self.val_size, self.batch_size)
            ]

    def _rank_and_world_size(self) -> tuple[int, int]:
        if self.trainer is None:
            return 0, 1
        return self.trainer.global_rank, self.trainer.world_size

    def train_dataloader(self) -> DataLoader:
        # On `fit(ckpt_path=...)` Lightning restores the step before asking for the data, so a
        # resumed run continues the stream where it stopped instead of replaying batch 0.
        start = self.trainer.global_step if self.trainer is not None else 0
        rank, world_size = self._rank_and_world_size()
        stream = TaskStream(self.task, self.batch_size, self.seed, start, rank, world_size)
        return DataLoader(stream, batch_size=None)

    def val_dataloader(self) -> DataLoader:
        rank, world_size = self._rank_and_world_size()
        batches = [shard(b, rank, world_size) for b in self.val_batches]
        return DataLoader(_Batches(batches), batch_size=None)

    def transfer_batch_to_device(self, batch: Batch, device: torch.device, dataloader_idx: int):
        # Each tensor directly: Lightning's generic walk over a NamedTuple cost ~0.1 ms a step
        # on CPU (py-spy), where it moves nothing.
        if isinstance(batch, Batch):
            return Batch(*(t.to(device) for t in batch))
        return super().transfer_batch_to_device(batch, device, dataloader_idx)

    # What callbacks read, so they need not know how the val set is stored or split.

    def validation_set(self) -> Batch:
        """The whole fixed val set as one batch (val_size examples), the same in every run."""
        self.setup()
        return Batch(*(torch.cat(t) for t in zip(*self.val_batches)))

    def probe_batch(self, examples: int) -> Batch:
        """The first `examples` of the val set (all of it when it has fewer)."""
        return Batch(*(t[:examples] for t in self.validation_set()))
