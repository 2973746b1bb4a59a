"""Every private Lightning or TensorBoard name attnlab relies on, in this one file.

A private name can change in any release. Each is wrapped here once, and
tests/unit/test_contracts.py checks each against the installed version, failing with
that version named, so an upgrade breaks one test and not a user's run.
"""

from __future__ import annotations

from typing import Any

from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities.model_summary.model_summary import _format_summary_table


def tensorboard_file_writer(logger: TensorBoardLogger) -> Any:
    """The event-file writer behind Lightning's TensorBoard logger (torch's SummaryWriter
    `_get_file_writer`): the hparams tab's summaries are written through it unchanged, so
    they land in the run's own event file and not in a sub-folder, as `add_hparams` would."""
    return logger.experiment._get_file_writer()


def format_summary_table(*args: Any) -> str:
    """Lightning's model-summary table from its columns (ModelSummary.summarize builds it the
    same way); attnlab calls it without the FLOPs column, which reads 0 here."""
    return _format_summary_table(*args)
