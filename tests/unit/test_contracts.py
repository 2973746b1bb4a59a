"""The third-party behaviours attnlab relies on: Lightning's, torch's and TensorBoard's,
private names included (src/training/lightning_private.py holds every private one).

Each test checks one behaviour against the installed version and fails with that version
named, so an upgrade that changes it breaks one test here, with its cause, and not a user's
run. When one fails: adapt the code named in its docstring to the new version, or keep
pyproject.toml's pin below it. (One more, which needs a process to signal, is in
tests/integration/test_contracts.py.)
"""

import inspect

import lightning as L
import pytest
import tensorboard
import torch

from src.training.distributed import HydraDDPStrategy
from tests.helpers import read_events

LIGHTNING = f"Lightning {L.__version__}"
TENSORBOARD = f"{LIGHTNING}, torch {torch.__version__}, tensorboard {tensorboard.__version__}"


def test_lightning_starts_no_ranks_itself_once_local_rank_is_set(monkeypatch):
    """src/training/distributed.py starts ranks 1..N-1 itself and relies on Lightning's documented
    manual-launch mode (LightningEnvironment): with LOCAL_RANK set, Lightning starts none.
    If this fails, Lightning changed that contract and trainer=ddp would start every rank
    twice (or never): see src/training/distributed.extra_ranks."""
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    trainer = L.Trainer(strategy=HydraDDPStrategy(), accelerator="cpu", devices=2, logger=False)
    environment = trainer.strategy.cluster_environment
    assert trainer.strategy.num_processes == 2, LIGHTNING
    assert not environment.creates_processes_externally, (
        f"{LIGHTNING} now thinks someone else started the ranks before LOCAL_RANK is set"
    )
    monkeypatch.setenv("LOCAL_RANK", "0")
    assert environment.creates_processes_externally, (
        f"{LIGHTNING} no longer leaves starting the ranks to whoever sets LOCAL_RANK"
    )


def test_lightnings_summary_table_is_made_from_the_columns_model_summary_passes(tmp_path):
    """src/training/progress.py's SummaryWithoutFlops overrides ModelSummary.summarize and
    builds the table with Lightning's private `_format_summary_table` (through
    lightning_private.format_summary_table), from the columns summarize is passed less the
    FLOPs one. Here: what Lightning passes, and the table made from it."""
    from lightning.pytorch.callbacks import ModelSummary
    from lightning.pytorch.demos.boring_classes import BoringModel

    from src.training.progress import SummaryWithoutFlops

    try:
        from lightning.pytorch.utilities.model_summary.model_summary import (
            _format_summary_table,
        )
    except ImportError as err:
        pytest.fail(f"{LIGHTNING} has no model_summary._format_summary_table any more: {err}")

    passed = []

    class Passed(ModelSummary):
        @staticmethod
        def summarize(*args, **kwargs) -> None:
            passed.append((args, kwargs))

    trainer = L.Trainer(
        default_root_dir=tmp_path,
        max_steps=1,
        callbacks=[Passed()],
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        limit_val_batches=0,
        num_sanity_val_steps=0,
    )
    trainer.fit(BoringModel())
    ((args, kwargs),) = passed
    try:  # what Lightning passes fits the signature SummaryWithoutFlops declares
        bound = inspect.signature(SummaryWithoutFlops.summarize).bind(*args, **kwargs)
    except TypeError as err:
        pytest.fail(f"{LIGHTNING} calls ModelSummary.summarize differently now: {err}")
    given = bound.arguments
    names = [name for name, _ in given["summary_data"]]  # (header, one value a row) columns
    assert {"Name", "Type", "Params", "FLOPs"} <= set(names), f"{LIGHTNING}'s columns: {names}"
    columns = [c for c in given["summary_data"] if c[0] != "FLOPs"]

    table = _format_summary_table(
        given["total_parameters"],
        given["trainable_parameters"],
        given["model_size"],
        given["total_training_modes"],
        given["total_flops"],
        *columns,
    )
    assert isinstance(table, str), f"{LIGHTNING}'s _format_summary_table returned {table!r}"
    header = table.splitlines()[0]
    assert all(name in header for name, _ in columns), f"{LIGHTNING}: {table}"
    assert "layer" in table and "Linear" in table, f"{LIGHTNING}: {table}"  # BoringModel's row
    assert "Total params" in table and "FLOPs" not in header, f"{LIGHTNING}: {table}"


def test_the_tensorboard_loggers_file_writer_writes_into_the_runs_own_event_file(tmp_path):
    """src/training/run.py writes the hparams tab's summaries through the event-file writer
    behind Lightning's TensorBoard logger: torch's SummaryWriter's private `_get_file_writer()`
    (lightning_private.tensorboard_file_writer), so they land in the run's own event file,
    not in a sub-folder as `add_hparams` would put them."""
    from lightning.pytorch.loggers import TensorBoardLogger
    from tensorboard.compat.proto.summary_pb2 import Summary

    logger = TensorBoardLogger(save_dir=tmp_path, name="", version="")  # as conf/logger has it
    get_file_writer = getattr(logger.experiment, "_get_file_writer", None)
    assert callable(get_file_writer), (
        f"{type(logger.experiment).__name__} has no _get_file_writer() any more ({TENSORBOARD})"
    )
    writer = get_file_writer()
    assert callable(getattr(writer, "add_summary", None)), (
        f"{type(writer).__name__} from _get_file_writer() has no add_summary ({TENSORBOARD})"
    )
    writer.add_summary(Summary(value=[Summary.Value(tag="contract/x", simple_value=1.5)]))
    logger.experiment.flush()
    assert [p.name for p in tmp_path.iterdir() if p.is_dir()] == [], TENSORBOARD
    assert "contract/x" in read_events(tmp_path).Tags()["scalars"], (
        f"a summary written through _get_file_writer() is not in the run's events ({TENSORBOARD})"
    )
    logger.finalize("success")
