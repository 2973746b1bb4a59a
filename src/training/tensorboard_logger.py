"""Lightning's TensorBoard logger without the `epoch` scalar.

Lightning adds `epoch` to every write of the module's metrics. attnlab's data never ends, so
it is always 0, and its card, sorted by tag, came before `train/` and `val/` in TensorBoard's
TIME SERIES tab, which opens only the first two groups: `val/` opened collapsed.
"""

from __future__ import annotations

from collections.abc import Mapping

from lightning.pytorch.loggers import TensorBoardLogger as LightningTensorBoardLogger

from src.analysis.metric_names import EPOCH


class TensorBoardLogger(LightningTensorBoardLogger):
    """conf/logger/tensorboard.yaml's logger: Lightning's, minus `epoch`."""

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        super().log_metrics({k: v for k, v in metrics.items() if k != EPOCH}, step)
