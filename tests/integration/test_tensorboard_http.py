"""TensorBoard as a real client: serve a short run on 127.0.0.1 and read it over HTTP.

What a user's browser would be sent: the runs, scalar and image tags, the hparams tab's
columns and values, and the custom-scalars layout, checked against README (TensorBoard).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from omegaconf import open_dict

from src.training.run import train
from tests.helpers import TINY, free_port

HOST = "127.0.0.1"  # loopback only


class TensorBoard:
    """`tensorboard --logdir DIR` on a free loopback port, for the length of a `with`."""

    def __init__(self, logdir: Path, timeout: float = 90.0) -> None:
        self.logdir, self.timeout, self.port = logdir, timeout, free_port(HOST)
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> TensorBoard:
        command = [
            sys.executable, "-m", "tensorboard.main", "--logdir", str(self.logdir),
            "--host", HOST, "--port", str(self.port), "--load_fast", "false",
            "--reload_interval", "0",
        ]  # fmt: skip
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                output = self.process.stdout.read().decode(errors="replace")
                raise RuntimeError(f"tensorboard exited early:\n{output[-2000:]}")
            try:
                if self.get("/data/runs"):  # served, and the run is loaded
                    return self
            except OSError:
                pass
            time.sleep(0.5)
        self.__exit__()
        raise TimeoutError(f"tensorboard did not serve {self.logdir} within {self.timeout} s")

    def __exit__(self, *exc: object) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process.stdout.close()

    def get(self, path: str, body: dict | None = None):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"http://{HOST}:{self.port}{path}", data=data)
        if body is not None:
            request.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(request, timeout=20) as response:
            return json.loads(response.read())


@pytest.mark.slow
def test_tensorboard_serves_what_the_readme_says(compose_cfg, tmp_path):
    started = time.perf_counter()
    cfg = compose_cfg("heads=2", "scale=false", "trainer.log_every_n_steps=1", *TINY)
    run_dir = tmp_path / "logs" / "runs" / "my_run"
    with open_dict(cfg):
        cfg.paths.output_dir = str(run_dir)
    train(cfg)

    with TensorBoard(tmp_path / "logs") as board:
        runs = board.get("/data/runs")
        assert runs == ["runs/my_run"]  # the run is named after its folder
        scalars = board.get("/data/plugin/scalars/tags")["runs/my_run"]
        for tag in [
            "train/loss",
            "val/loss",
            "train/lr",
            "val/exact_match",
            "val/gen_exact_match",
            "val/gen_acc",
        ]:
            assert tag in scalars
        for layer in range(2):  # default model: 2 layers; heads=2
            for head in range(2):
                for stat in ["entropy", "saturated_frac", "logit_std", "max_prob"]:
                    assert f"attn/layer{layer}/head{head}/{stat}" in scalars
        assert "grad/layer0/query" in scalars and "attn/entropy" in scalars
        assert "knockout/layer1/head1" in scalars and "knockout/base_loss" in scalars
        assert not [tag for tag in scalars if tag.startswith("hp")]  # no one-point hp/* charts

        images = board.get("/data/plugin/images/tags")["runs/my_run"]
        assert set(images) == {
            "attention/layer0",
            "attention/layer1",
            "knockout/layer0",
            "knockout/layer1",
        }

        experiment = board.get("/data/plugin/hparams/experiment", {"experimentName": ""})
        infos = {info["name"]: info for info in experiment["hparamInfos"]}
        assert {"heads", "scale", "seed", "task", "head_dim", "lr", "layers"} <= set(infos)
        assert infos["scale"]["type"] == "DATA_TYPE_STRING"
        # ticked by default: TensorBoard shows the first five columns, `differs` ones first
        shown = [i["name"] for i in experiment["hparamInfos"] if i.get("differs")]
        assert shown == ["head_dim", "heads", "scale", "seed", "task"]
        metrics = [m["name"]["tag"] for m in experiment["metricInfos"]]
        assert metrics == [
            "val/loss",
            "val/acc",
            "val/exact_match",
            "val/gen_acc",
            "val/gen_exact_match",
            "train/loss",
        ]

        groups = board.get(
            "/data/plugin/hparams/session_groups",
            {
                "experimentName": "",
                "allowedStatuses": ["STATUS_UNKNOWN", "STATUS_SUCCESS", "STATUS_FAILURE"],
                "colParams": [],
                "startIndex": 0,
                "sliceSize": 10,
            },
        )
        (group,) = groups["sessionGroups"]
        assert group["hparams"]["scale"] == "false"  # the word typed, not 0.0
        assert group["hparams"]["heads"] == 2 and group["hparams"]["head_dim"] == 32
        values = {m["name"]["tag"]: m["value"] for m in group["metricValues"]}
        saved = json.loads((run_dir / "metrics.json").read_text())["metrics"]
        assert values["val/loss"] == pytest.approx(saved["val/loss"], rel=1e-6)

        layout = board.get("/data/plugin/custom_scalars/layout")
        categories = {c["title"]: c["chart"] for c in layout["category"]}
        assert list(categories) == [
            "loss and exact match",
            "attention layer 0",
            "attention layer 1",
        ]
        curves = {c["title"]: c["multiline"]["tag"] for c in categories["loss and exact match"]}
        assert curves["loss"] == ["train/loss", "val/loss"]
        assert curves["exact match"] == [
            "train/exact_match",
            "val/exact_match",
            "val/gen_exact_match",
        ]
        per_layer = {c["title"]: c["multiline"]["tag"] for c in categories["attention layer 1"]}
        assert per_layer == {
            f"layer 1 {stat} (every head)": [rf"attn/layer1/head\d+/{stat}"]
            for stat in ["entropy", "saturated_frac", "logit_std", "distance"]
        }
    print(f"TensorBoard HTTP test: {time.perf_counter() - started:.1f} s wall")
