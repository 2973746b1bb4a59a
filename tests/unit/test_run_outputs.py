"""What a run writes, in process through train(cfg): metrics.json (`running` while it trains,
the same text for the same config), the TensorBoard events and hparams tab, checkpoints."""

import json

import lightning as L
import pytest
import torch

from src.training.run import train
from tests.helpers import SCALARS, TINY, read_events


def test_train_writes_metrics_events_and_checkpoints(compose_cfg, tmp_path):
    result = train(compose_cfg("heads=2", "scale=false", "trainer.log_every_n_steps=1", *TINY))
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved == result
    assert saved["status"] == "finished" and saved["step"] == 6
    assert set(saved["metrics"]) == {
        "val/loss",
        "val/acc",
        "val/exact_match",
        "val/gen_acc",
        "val/gen_exact_match",
        "train/loss",
    }

    scalars = read_events(tmp_path).Tags()["scalars"]
    assert set(SCALARS) <= set(scalars)
    val = read_events(tmp_path).Scalars("val/loss")
    # after steps 4 and 6 (the end); Lightning's logger counts the finished batch from 0
    assert [e.step for e in val] == [3, 5]
    assert val[-1].value == pytest.approx(saved["metrics"]["val/loss"], rel=1e-6)

    ckpt = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["global_step"] == 6


def test_every_tag_a_run_writes_is_declared_in_metric_names(compose_cfg, tmp_path):
    """The names module is the contract: every tag a real run writes is declared there,
    every declared kind of tag is written, metrics.json holds FINAL_METRICS in order, and
    compare.py reads the declared names off the same run."""
    from src.analysis import metric_names as names
    from src.analysis.runs import read_curves, wanted

    cfg = compose_cfg("heads=2", "model.net.layers=2", "trainer.log_every_n_steps=1", *TINY)
    assert cfg.callbacks.model_checkpoint.monitor == names.VAL_LOSS  # best.ckpt's criterion
    train(cfg)
    events = read_events(tmp_path)
    tags = events.Tags()
    own_plugins = {"custom_scalars", "hparams"}  # TensorBoard's own configuration records
    text = [
        t for t in tags["tensors"] if events.SummaryMetadata(t).plugin_data.plugin_name == "text"
    ]
    written = {
        *tags["scalars"],
        *tags["images"],
        *(t.removesuffix("/text_summary") for t in text),  # TensorBoard's suffix for text
        *(
            t
            for t in tags["tensors"]
            if t not in text
            and events.SummaryMetadata(t).plugin_data.plugin_name not in own_plugins
        ),
    }
    assert written and not [t for t in written if not names.is_declared(t)]
    near_misses = [
        "xray/attn/layer0/head0/entropie",
        "xray/grad/layer0/value",
        "xray/knockout/layer0/h1",
        "attn/layer0/head0/entropy",  # where runs saved before wrote it
        "val/los",
    ]
    assert not [t for t in near_misses if names.is_declared(t)]  # the check can fail

    layers, heads = range(2), range(2)
    expected = {
        *names.LOGGED_BY_LIGHTNING,
        names.GRAD_TOTAL,
        names.PROBE_TOKENS,
        names.KNOCKOUT_BASE_LOSS,
        *(names.attn_tag(stat) for stat in names.ATTN_STATS),
        *(names.attn_tag(s, layer, h) for s in names.ATTN_STATS for layer in layers for h in heads),
        *(names.grad_tag(layer, w) for layer in layers for w in names.QUERY_KEY),
        *(names.knockout_tag(layer, h) for layer in layers for h in heads),
        *(names.attention_image_tag(layer) for layer in layers),
        *(names.knockout_image_tag(layer) for layer in layers),
    }
    assert expected <= written, expected - written

    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert tuple(saved["metrics"]) == names.FINAL_METRICS

    curves = read_curves(tmp_path)
    assert set(curves) == {t for t in tags["scalars"] if wanted(t)}
    assert {names.VAL_LOSS, names.VAL_EXACT_MATCH, names.ATTN_ENTROPY} <= set(curves)
    assert {names.ATTN_SATURATED, names.grad_tag(1, "key"), names.knockout_tag(1, 1)} <= set(curves)
    assert curves[names.VAL_LOSS][0] == [4, 6]  # counted in steps taken, as attn/* are
    assert curves[names.ATTN_ENTROPY][0][-1] == 6


def test_hparams_tab_has_the_knobs_and_final_metrics(compose_cfg, tmp_path):
    """The tab shows what the model was built with: the knobs as typed, the head size in use."""
    from tensorboard.plugins.hparams import plugin_data_pb2

    train(compose_cfg("heads=2", "scale=false", *TINY))
    events = read_events(tmp_path)
    assert not [t for t in events.Tags()["scalars"] if t.startswith("hp")]  # no one-point charts
    content = events.SummaryMetadata("_hparams_/session_start_info").plugin_data.content
    start = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info
    assert start.hparams["heads"].string_value == "2"  # as typed, not 2.0000
    assert start.hparams["scale"].string_value == "false"  # as typed, not 0.0
    assert start.hparams["head_dim"].string_value == "32"  # d_model / heads, not "None"
    assert start.hparams["task"].string_value == "sort"
    content = events.SummaryMetadata("_hparams_/experiment").plugin_data.content
    experiment = plugin_data_pb2.HParamsPluginData.FromString(content).experiment
    assert [m.name.tag for m in experiment.metric_infos][:3] == [
        "val/loss",
        "val/acc",
        "val/exact_match",
    ]


def test_two_identical_runs_write_identical_metrics_json(compose_cfg, tmp_path):
    texts = []
    for name in ("one", "two"):
        cfg = compose_cfg(*TINY, "heads=2")
        cfg.paths.output_dir = str(tmp_path / name)
        train(cfg)
        texts.append((tmp_path / name / "metrics.json").read_text())
    assert texts[0] == texts[1]
    assert "wall_time" not in texts[0]


def test_metrics_json_says_running_while_training(compose_cfg, tmp_path):
    seen = []

    class _Look(L.Callback):
        def on_train_batch_start(self, *args) -> None:
            seen.append(json.loads((tmp_path / "metrics.json").read_text())["status"])

    assert train(compose_cfg(*TINY), extra_callbacks=[_Look()])["status"] == "finished"
    assert set(seen) == {"running"}
    assert not list(tmp_path.glob("*.tmp"))  # written atomically, through a renamed file
