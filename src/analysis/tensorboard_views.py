"""What TensorBoard shows first: a custom-scalars layout and an hparams tab with chosen columns.

The custom-scalars layout (TensorBoard's own `custom_scalars` plugin) puts curves together:
the loss (as log10: TensorBoard's charts have no log axis a run can ask for), exact match
and accuracy side by side, and per layer one chart per statistic with every head in it. The
hparams summaries are written here rather than through Lightning's `log_hyperparams` so that
(1) the metric columns point at the real `val/*` curves (no one-point `hp/*` charts),
(2) every value reads as typed: TensorBoard prints any number with five significant digits
(`2.0000`, `64.000`), so values are written as text (`2`, `64`, `0.003`, `false`), (3) each
trial is named so that names differ in their first characters (`src.runs.folders.trial_name`;
TensorBoard's Trial ID column shows about fifteen), and (4) the default columns are chosen
(TensorBoard ticks the first five, `differs` first).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from tensorboard.compat.proto.summary_pb2 import Summary, SummaryMetadata
from tensorboard.plugins.hparams import api_pb2, metadata, plugin_data_pb2

from src.analysis import metric_names as names
from src.analysis.metric_names import FINAL_METRICS  # the hparams tab's metric columns
from src.validation import as_typed

if TYPE_CHECKING:
    from omegaconf import DictConfig

    from src.modules.config import ModelConfig

# The attention statistics charted per layer (src/analysis/attention_stats.py computes them).
LAYOUT_STATS = ("entropy", "saturated_frac", "logit_std", "distance")
LOSS_CHART = "loss (log10: -2 is 0.01)"
CURVES = {
    LOSS_CHART: [names.TRAIN_LOSS_LOG10, names.VAL_LOSS_LOG10],
    "exact match": [names.TRAIN_EXACT_MATCH, names.VAL_EXACT_MATCH, names.VAL_GEN_EXACT_MATCH],
    "accuracy": [names.TRAIN_ACC, names.VAL_ACC, names.VAL_GEN_ACC],
}
# Ticked by default in the HPARAMS tab (TensorBoard shows five columns, `differs` first).
DEFAULT_COLUMNS = ("heads", "scale", "head_dim", "seed", "task")


def custom_scalars_layout(layers: int) -> dict[str, dict[str, list]]:
    """{category: {chart: ["Multiline", [tag regexes]]}}, as `add_custom_scalars` takes it."""
    layout: dict[str, dict[str, list]] = {
        "loss and exact match": {title: ["Multiline", tags] for title, tags in CURVES.items()}
    }
    for layer in range(layers):
        layout[f"attention layer {layer}"] = {
            f"layer {layer} {stat} (every head)": [
                "Multiline",
                [names.pattern(names.ATTN_HEAD, layer=layer, stat=stat)],
            ]
            for stat in LAYOUT_STATS
        }
    return layout


def hparams_for_tensorboard(cfg: DictConfig, net: ModelConfig, task_name: str) -> dict[str, Any]:
    """The knobs worth a column in TensorBoard's hparams tab, as the run was built.

    The model's columns come from the built network's config `net`. `scale` is the word
    typed (true/false/0.25), not TensorBoard's 1.0/0.0 for a bool; `head_dim` is the head
    size in use, d_model/heads when left unset.
    """
    return {
        "heads": net.heads,
        "scale": as_typed(net.scale),
        "seed": cfg.seed,
        "task": task_name,
        "d_model": net.d_model,
        "layers": net.layers,
        "head_dim": net.head_size,
        "positional": net.positional,
        "lr": cfg.model.lr,
        "batch_size": cfg.data.batch_size,
        "max_steps": cfg.trainer.max_steps,
    }


def _summary(tag: str, data: plugin_data_pb2.HParamsPluginData) -> Summary:
    data.version = metadata.PLUGIN_DATA_VERSION
    plugin = SummaryMetadata.PluginData(
        plugin_name=metadata.PLUGIN_NAME, content=data.SerializeToString()
    )
    return Summary(value=[Summary.Value(tag=tag, metadata=SummaryMetadata(plugin_data=plugin))])


def hparams_summaries(hparams: dict[str, Any], status: str, trial: str) -> list[Summary]:
    """The experiment, session-start and session-end summaries for one run, named `trial`.

    Each value is written as the text a user types (`as_typed`), since TensorBoard shows a
    number_value as `toPrecision(5)`; the columns filter by value instead of by range. The
    experiment lists the metrics by their real tags, so the tab reads each one's last value
    from the run's own curve. `trial` is the session's group name, TensorBoard's Trial ID:
    it must be unique among the runs shown, or their rows merge.
    """
    start = plugin_data_pb2.SessionStartInfo(start_time_secs=time.time(), group_name=trial)
    infos = []
    for name, value in hparams.items():
        start.hparams[name].string_value = as_typed(value)
        infos.append(
            api_pb2.HParamInfo(
                name=name,
                type=api_pb2.DataType.Value("DATA_TYPE_STRING"),
                differs=name in DEFAULT_COLUMNS,
            )
        )
    metrics = [api_pb2.MetricInfo(name=api_pb2.MetricName(tag=tag)) for tag in FINAL_METRICS]
    experiment = api_pb2.Experiment(hparam_infos=infos, metric_infos=metrics)
    end = plugin_data_pb2.SessionEndInfo(
        status=api_pb2.Status.Value("STATUS_SUCCESS" if status == "finished" else "STATUS_FAILURE"),
        end_time_secs=time.time(),
    )
    return [
        _summary(metadata.EXPERIMENT_TAG, plugin_data_pb2.HParamsPluginData(experiment=experiment)),
        _summary(
            metadata.SESSION_START_INFO_TAG,
            plugin_data_pb2.HParamsPluginData(session_start_info=start),
        ),
        _summary(
            metadata.SESSION_END_INFO_TAG, plugin_data_pb2.HParamsPluginData(session_end_info=end)
        ),
    ]
