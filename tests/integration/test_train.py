"""Training end to end: in process through train(cfg), and as the user types it."""

import json
import re
import runpy
import sys
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import open_dict
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from src.training.checkpointing import MODEL_CONFIG_KEY
from src.training.run import train
from tests.helpers import CONF, TINY, TRAIN_SCRIPT, run_script

SCALARS = [
    "train/loss",
    "train/acc",
    "train/exact_match",
    "val/loss",
    "val/acc",
    "val/exact_match",
    "train/lr",
]


def read_events(run_dir: Path) -> EventAccumulator:
    events = EventAccumulator(str(run_dir))
    events.Reload()
    return events


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
        "attn/layer0/head0/entropie",
        "grad/layer0/value",
        "knockout/layer0/h1",
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
    assert start.hparams["heads"].number_value == 2
    assert start.hparams["scale"].string_value == "false"  # as typed, not 0.0
    assert start.hparams["head_dim"].number_value == 32  # d_model / heads, not "None"
    assert start.hparams["task"].string_value == "sort"
    content = events.SummaryMetadata("_hparams_/experiment").plugin_data.content
    experiment = plugin_data_pb2.HParamsPluginData.FromString(content).experiment
    assert [m.name.tag for m in experiment.metric_infos][:3] == [
        "val/loss",
        "val/acc",
        "val/exact_match",
    ]


@pytest.mark.slow
def test_exact_user_command_trains_and_logs(tmp_path):
    """`python scripts/train.py heads=2 scale=false`, run from a fresh folder."""
    proc = run_script(TRAIN_SCRIPT, "heads=2", "scale=false", *TINY, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run_dir,) = (tmp_path / "logs" / "runs").iterdir()
    written = {p for p in tmp_path.rglob("*") if p.is_file()}
    assert written and all(run_dir in p.parents for p in written)  # all of it in the run's folder
    assert "heads=2,scale=false" in run_dir.name  # the folder (and TensorBoard run) says so
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["step"] == 6
    assert set(SCALARS) <= set(read_events(run_dir).Tags()["scalars"])
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()
    assert (run_dir / ".hydra" / "config.yaml").is_file()
    assert "expected  ->  predicted" in proc.stdout  # sample predictions are shown


def test_help_explains_the_knobs_and_groups():
    proc = run_script(TRAIN_SCRIPT, "--help", timeout=120)
    assert proc.returncode == 0
    for words in [
        "heads=4",
        "scale=true",
        "1/sqrt(d_k)",
        "seed=0",
        "task: assoc_recall, copy",
        "trainer.max_steps",
        "tensorboard --logdir logs",
    ]:
        assert words in proc.stdout, words


BAD_INPUTS = [
    (["heads=3"], "heads=3 does not divide model.net.d_model=64"),
    (["heads=3", "model.net.d_model=128"], "heads=3 does not divide model.net.d_model=128"),
    (["heads=0"], "heads=0 is not allowed"),
    (["heads=-1"], "heads=-1 is not allowed"),
    (["scale=abc"], "scale='abc' is not allowed"),
    (['scale="true"'], 'it is the string "true"'),
    (["scale=-1"], "scale=-1 is not allowed"),
    (["scale=0"], "scale=0 is not allowed"),
    (["task=nonsense"], "Could not find 'task/nonsense'"),
    (["model.net.layers=0"], "layers=0 is not allowed"),
    (["model.net.d_model=0"], "d_model=0 is not allowed"),
    (["data.batch_size=0"], "data.batch_size=0 is not allowed"),
    (["task.length=-2"], "task.length=-2 is not allowed"),
    (["task=group_max_sum", "task.D=0"], "task.D=0 is not allowed: it must be a positive integer"),
    (["task=group_max_sum", "task.D=17"], "task.D=17 is not allowed with task.length=16"),
    (["task=group_max_sum", "task.D=27", "task.length=40"], "D must be at most 26"),
    (["task=group_max_sum", "task.num_values=1"], "task.num_values=1 is not allowed"),
    (["model.net.max_seq_len=10"], "model.net.max_seq_len=10 is shorter than the task's"),
    (["model.lr=0"], "model.lr=0 is not allowed"),
    (["model.lr=-0.001"], "model.lr=-0.001 is not allowed"),
    (["ckpt_path={missing}"], "does not exist"),
    (["ckpt_path={not_a_checkpoint}"], "is not a loadable checkpoint"),
    (["ckpt_path={other_shape}"], "(model.net.d_model: checkpoint 16, this config 64)"),
    (["ckpt_path={unrecorded_shape}"], "was saved by a model of a different shape"),
    (["ckpt_path={runs_code}"], "weights_only=True (tensors and plain values only, never code)"),
    (["ckpt_path="], "ckpt_path is empty"),
    (["ckpt_path=/etc/passwd"], "'/etc/passwd' is not a loadable checkpoint: it is not a file"),
    (["heads=2", "ckpt_path={heads_4}"], "(heads: checkpoint 4, this config 2)"),
    (["scale=false", "ckpt_path={heads_4}"], "(scale: checkpoint true, this config false)"),
    (["trainer.max_steps=6", "ckpt_path={heads_4}"], "that run has nothing left to do"),
    (["seed=-1"], "seed=-1 is not allowed: it must be an integer from 0 to 2**32 - 1"),
    (["seed=1.5"], "seed=1.5 is not allowed"),
    (["seed=4294967296"], "seed=4294967296 is not allowed"),
    (["trainer.max_steps=0"], "trainer.max_steps=0 is not allowed: it must be a positive integer"),
    (["model.warmup_steps=-1"], "model.warmup_steps=-1 is not allowed"),
    (["model.weight_decay=-1"], "model.weight_decay=-1 is not allowed"),
    (["model.net.layers=1000000"], "Lower model.net.layers=1000000 (or"),
    (["task=sort", "task.length=100000"], "Lower the task's sequence length (200000 tokens"),
    (["hydra.run.dir=/proc/forbidden"], "hydra.run.dir='/proc/forbidden' cannot be used"),
    (["paths.log_dir=/proc/forbidden"], "(under paths.log_dir='/proc/forbidden') cannot be"),
    (["threads=0"], "threads=0 is not allowed: it must be a positive integer"),
    (["threads=abc"], "threads='abc' is not allowed"),
    (["threads=1.5"], "threads=1.5 is not allowed"),
    (["+foo=1"], "foo=1: nothing reads this key"),
    (["+paths.outptu_dir=x"], "paths.outptu_dir='x': nothing reads this key"),
    (["+trainer.no_such_arg=1"], "unexpected keyword argument 'no_such_arg'"),  # Trainer's own
    (["trainer.devices=64"], "trainer.devices=64 is more than this machine has"),
    (["trainer=ddp", "data.batch_size=63"], "data.batch_size=63 cannot be split evenly over 2"),
    (["-m", "trainer.devices=64"], "trainer.devices=64 is more than this machine has"),
    (["-m", "hydra/launcher=nope"], "Could not find 'hydra/launcher/nope'"),
    (["-m", "hydra/launcher=submitit_slurm"], "hydra.launcher.partition is not set"),
]


class _RunsCodeWhenUnpickled:
    """What a tampered checkpoint can hold: unpickling it would create `path`."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return Path.touch, (self.path,)


@pytest.fixture(scope="module")
def checkpoint_files(tmp_path_factory) -> dict[str, Path]:
    """Files for the ckpt_path rows: missing, not a checkpoint, another shape, tampered."""
    folder = tmp_path_factory.mktemp("checkpoints")
    (folder / "notes.ckpt").write_text("not a checkpoint\n")
    torch.save(
        {"state_dict": _RunsCodeWhenUnpickled(folder / "code_ran"), "global_step": 1},
        folder / "tampered.ckpt",
    )
    for name, overrides in (("d16", ["model.net.d_model=16"]), ("heads_4", ["heads=4"])):
        with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
            cfg = compose("train", overrides=[*TINY, *overrides])
        with open_dict(cfg):
            cfg.paths.output_dir = str(folder / name)
        train(cfg)
    # a checkpoint from before the model config was recorded: the shapes are still checked
    unrecorded = torch.load(folder / "d16" / "checkpoints" / "last.ckpt", weights_only=True)
    del unrecorded[MODEL_CONFIG_KEY]
    torch.save(unrecorded, folder / "unrecorded_d16.ckpt")
    return {
        "unrecorded_shape": folder / "unrecorded_d16.ckpt",
        "missing": folder / "nowhere.ckpt",
        "not_a_checkpoint": folder / "notes.ckpt",
        "other_shape": folder / "d16" / "checkpoints" / "last.ckpt",
        "runs_code": folder / "tampered.ckpt",
        "heads_4": folder / "heads_4" / "checkpoints" / "last.ckpt",  # 6 steps, default shapes
    }


def _assert_refused_before_training(code, stderr: str, message: str, folder: Path) -> None:
    """Refused with one paragraph naming the problem, no traceback, nothing trained; the
    run's folder (when Hydra got as far as making one) records the refusal."""
    assert code not in (0, None)
    assert message in stderr
    assert "Traceback" not in stderr
    if "Could not find" not in message:  # Hydra's own errors aside: one paragraph
        error = stderr[stderr.index("error: ") :].strip()
        assert "\n" not in error, error
        assert not re.search(r"\b[A-Z]\w*(Error|Exception)\b", error), error
    if "Could not find 'task" in message:
        assert "Available options in 'task'" in stderr and "assoc_recall" in stderr
    if "Could not find 'hydra/launcher" in message:
        assert "joblib" in stderr and "submitit_local" in stderr  # the options, listed
    assert not list(folder.rglob("*.ckpt"))
    for record in folder.rglob("metrics.json"):  # the folder a refused run leaves
        saved = json.loads(record.read_text())
        assert saved["status"] == "refused" and message in saved["error"]
        assert message in (record.parent / "train.log").read_text()
        assert sorted(p.name for p in record.parent.iterdir()) == [
            ".hydra",
            "metrics.json",
            "train.log",
        ]


@pytest.mark.parametrize("overrides, message", BAD_INPUTS, ids=lambda v: str(v))
def test_bad_input_exits_non_zero_with_a_clear_message(
    tmp_path, monkeypatch, capsys, overrides, message, request
):
    """Through the script's real entry point (Hydra's main), in this process for speed."""
    if any("{" in o for o in overrides):
        files = request.getfixturevalue("checkpoint_files")
        overrides = [o.format(**files) for o in overrides]
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", [str(TRAIN_SCRIPT), *overrides])
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_path(str(TRAIN_SCRIPT), run_name="__main__")
    _assert_refused_before_training(
        exit_info.value.code, capsys.readouterr().err, message, tmp_path
    )
    hydra_made_no_folder = overrides[0] == "-m" or "Could not find" in message or "/proc" in message
    if not hydra_made_no_folder:  # every refusal after Hydra made the folder is recorded there
        assert list(tmp_path.rglob("metrics.json"))
    if "tampered" in overrides[0]:  # refused without running what the file holds
        assert not (Path(overrides[0].split("=", 1)[1]).parent / "code_ran").exists()


def test_a_gpu_trainer_on_a_machine_without_a_gpu_says_so_and_what_to_use(
    tmp_path, monkeypatch, capsys
):
    """`trainer=gpu` without a GPU: plain words and the CPU's settings, not `Allowed: 1..0`."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", [str(TRAIN_SCRIPT), "trainer=gpu"])
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_path(str(TRAIN_SCRIPT), run_name="__main__")
    stderr = capsys.readouterr().err
    message = "trainer.accelerator=gpu needs a GPU, and this machine has none"
    _assert_refused_before_training(exit_info.value.code, stderr, message, tmp_path)
    assert exit_info.value.code == 2
    assert "trainer=default" in stderr and "trainer.accelerator=cpu" in stderr
    assert "1..0" not in stderr


@pytest.mark.slow
def test_bad_input_in_a_real_process(tmp_path):
    proc = run_script(TRAIN_SCRIPT, "heads=3", cwd=tmp_path, timeout=120)
    _assert_refused_before_training(proc.returncode, proc.stderr, BAD_INPUTS[0][1], tmp_path)
    assert proc.returncode == 2


def test_plus_trainer_arguments_reach_lightnings_trainer(compose_cfg):
    """`+trainer.NAME=VALUE` is not an unknown key: the Trainer reads (and checks) it."""
    from src.training.build import build

    parts = build(compose_cfg(*TINY, "+trainer.gradient_clip_val=0.5"))
    assert parts.trainer.gradient_clip_val == 0.5


def test_train_log_holds_the_estimate_and_a_line_every_log_every_n_steps(
    tmp_path, monkeypatch, capsys
):
    """Through the entry point, so Hydra writes train.log as it does for a user."""
    overrides = [
        *TINY,
        "trainer.log_every_n_steps=2",
        "trainer.enable_progress_bar=true",
        "trainer.enable_model_summary=true",
    ]
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", [str(TRAIN_SCRIPT), *overrides, "trainer.max_steps=6"])
    runpy.run_path(str(TRAIN_SCRIPT), run_name="__main__")
    output = capsys.readouterr()
    (log_file,) = (tmp_path / "logs" / "runs").glob("*/train.log")
    lines = log_file.read_text().splitlines()
    assert re.search(r"torch threads: \d+ \(.+\)$", lines[0])
    assert re.search(r"[\d,]+ params, ~[\d,]+ MiB for activations", lines[1])
    steps = [
        re.search(r"step (\d+)/6  loss [\d.]+  lr [\d.e-]+  [\d.]+ it/s", line) for line in lines
    ]
    assert [int(m.group(1)) for m in steps if m] == [2, 4, 6]
    screen = output.out + output.err
    assert "6/6" in screen and "Epoch 0/-" not in screen  # the bar counts steps
    assert "litlogger" not in screen + log_file.read_text()
    assert "Total params" in log_file.read_text()  # the model summary, without FLOPs
    assert "FLOPs" not in screen + log_file.read_text()
    assert "Total Flops" not in screen + log_file.read_text()


def test_the_step_bar_redraws_at_most_every_interval_and_always_at_the_end(compose_cfg, capsys):
    """Lightning's bar redraws twice a step; ours at most every min_interval_s, and the
    last step is always shown."""
    import lightning as L

    from src.training.build import build
    from src.training.progress import StepProgressBar

    built = build(compose_cfg(*TINY, "trainer.max_steps=30"))
    bar = StepProgressBar(min_interval_s=3600)
    trainer = L.Trainer(
        max_steps=30,
        callbacks=[bar],
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        limit_val_batches=0,
        num_sanity_val_steps=0,
    )
    draws = []
    original = bar.get_metrics
    bar.get_metrics = lambda *a: draws.append(a[0].global_step) or original(*a)
    trainer.fit(built.model, datamodule=built.datamodule)
    assert sorted(set(draws)) == [1, 30]  # the first step, nothing for an hour, the last
    output = capsys.readouterr()
    assert "30/30" in output.out + output.err


def test_a_checkpoint_from_before_a_knob_existed_still_resumes_at_its_default(compose_cfg):
    """Runs saved before `model.net.rope_base` existed record no such key: they resume under
    the default (what they were trained with) and are refused under any other value."""
    from src.preflight.checks import model_config
    from src.training.checkpointing import CheckpointError, check_same_model

    record = model_config(compose_cfg(*TINY))
    old = {MODEL_CONFIG_KEY: {k: v for k, v in record.items() if k != "model.net.rope_base"}}
    check_same_model(old, record, "old.ckpt")
    with pytest.raises(
        CheckpointError, match=r"model.net.rope_base: checkpoint 10000, this config 500"
    ):
        check_same_model(
            old, model_config(compose_cfg(*TINY, "model.net.rope_base=500")), "old.ckpt"
        )
    with pytest.raises(CheckpointError, match=r"heads: checkpoint \(not set\)"):
        check_same_model(
            {MODEL_CONFIG_KEY: {k: v for k, v in record.items() if k != "heads"}}, record, "x"
        )
