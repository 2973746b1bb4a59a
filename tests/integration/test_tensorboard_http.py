"""TensorBoard as a user meets it: runs trained as typed (`scripts/train.py heads=2 ...` and
a two-job `-m heads=1,2` sweep, default progress bar and log folders), served by
`tensorboard --logdir logs` on 127.0.0.1, read over HTTP and looked at in headless Chromium.

Over HTTP: the runs, scalar and image tags, the order TIME SERIES gives them (its rule,
reproduced in tests/time_series.py), the custom-scalars layout, the hparams tab's columns,
values and trial names, checked against README (TensorBoard). In the browser: the first
screen of TIME SERIES and CUSTOM SCALARS, kept as PNGs (in $ATTNLAB_SCREENSHOTS if set).
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from tests.browser import needs_chromium, open_page, screenshot
from tests.helpers import TINY, TRAIN_SCRIPT, free_port, run_script
from tests.time_series import EXPANDED_GROUPS, card_groups, sorted_tags

HOST = "127.0.0.1"  # loopback only
SINGLE = ["heads=2", "scale=false", "trainer.log_every_n_steps=1"]  # and TINY
LEARNING = ["train/loss", "val/loss", "train/exact_match", "val/exact_match"]
LOSS_LOG10 = ["train/loss_log10", "val/loss_log10"]


class TensorBoard:
    """`tensorboard --logdir DIR` on a free loopback port, for the length of a `with`; it
    is ready when it serves `runs` runs."""

    def __init__(self, logdir: Path, runs: int = 1, timeout: float = 90.0) -> None:
        self.logdir, self.runs, self.timeout, self.port = logdir, runs, timeout, free_port(HOST)
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

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
                if len(self.get("/data/runs")) >= self.runs:  # served, and the runs loaded
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
        request = urllib.request.Request(f"{self.url}{path}", data=data)
        if body is not None:
            request.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(request, timeout=20) as response:
            return json.loads(response.read())

    def session_groups(self) -> list[dict]:
        return self.get(
            "/data/plugin/hparams/session_groups",
            {
                "experimentName": "",
                "allowedStatuses": ["STATUS_UNKNOWN", "STATUS_SUCCESS", "STATUS_FAILURE"],
                "colParams": [],
                "startIndex": 0,
                "sliceSize": 10,
            },
        )["sessionGroups"]


@pytest.fixture(scope="module")
def board(tmp_path_factory):
    """A run and a two-job sweep, trained as typed in a fresh folder, served by TensorBoard:
    (the server, the single run's name, the sweep jobs' names)."""
    started = time.perf_counter()
    home = tmp_path_factory.mktemp("user")
    for args in [SINGLE, ["-m", "heads=1,2"]]:
        done = run_script(TRAIN_SCRIPT, *args, *TINY, cwd=home)
        assert done.returncode == 0, done.stderr[-3000:]
    logs = home / "logs"
    single = [p.relative_to(logs).as_posix() for p in (logs / "runs").iterdir()]
    jobs = sorted(p.parent.relative_to(logs).as_posix() for p in logs.glob("multiruns/*/*/.hydra"))
    assert len(single) == 1 and len(jobs) == 2
    with TensorBoard(logs, runs=3) as served:
        yield served, single[0], jobs
    print(f"TensorBoard tests: {time.perf_counter() - started:.1f} s wall")


@pytest.mark.slow
def test_tensorboard_serves_what_the_readme_says(board):
    board, run, _ = board
    assert re.fullmatch(r"runs/\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d_.*heads=2,scale=false.*", run)
    assert run in board.get("/data/runs")  # the run is named after its folder
    scalars = board.get("/data/plugin/scalars/tags")[run]
    for tag in [*LEARNING, *LOSS_LOG10, "train/lr", "val/gen_exact_match", "val/gen_acc"]:
        assert tag in scalars
    for layer in range(2):  # default model: 2 layers; heads=2
        for head in range(2):
            for stat in ["entropy", "saturated_frac", "logit_std", "max_prob"]:
                assert f"xray/attn/layer{layer}/head{head}/{stat}" in scalars
    assert "xray/grad/layer0/query" in scalars and "xray/attn/entropy" in scalars
    assert "xray/knockout/layer1/head1" in scalars and "xray/knockout/base_loss" in scalars
    assert not [tag for tag in scalars if tag.startswith("hp")]  # no one-point hp/* charts
    assert "epoch" not in scalars

    images = board.get("/data/plugin/images/tags")[run]
    assert set(images) == {
        "xray/attention/layer0",
        "xray/attention/layer1",
        "xray/knockout/layer0",
        "xray/knockout/layer1",
    }

    experiment = board.get("/data/plugin/hparams/experiment", {"experimentName": ""})
    infos = {info["name"]: info for info in experiment["hparamInfos"]}
    assert {"heads", "scale", "seed", "task", "head_dim", "lr", "layers"} <= set(infos)
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

    layout = board.get("/data/plugin/custom_scalars/layout")
    categories = {c["title"]: c["chart"] for c in layout["category"]}
    assert list(categories) == ["loss and exact match", "attention layer 0", "attention layer 1"]
    curves = {c["title"]: c["multiline"]["tag"] for c in categories["loss and exact match"]}
    assert curves["exact match"] == ["train/exact_match", "val/exact_match", "val/gen_exact_match"]
    per_layer = {c["title"]: c["multiline"]["tag"] for c in categories["attention layer 1"]}
    assert per_layer == {
        f"layer 1 {stat} (every head)": [rf"xray/attn/layer1/head\d+/{stat}"]
        for stat in ["entropy", "saturated_frac", "logit_std", "distance"]
    }


@pytest.mark.slow
def test_time_series_puts_loss_and_exact_match_before_any_image(board):
    """The tags TIME SERIES gets from its own endpoint, in the order it shows their cards:
    the two groups it opens are train/ and val/, and every image card comes after them."""
    board, _, _ = board
    tags = board.get("/data/plugin/timeseries/tags")
    scalars = {t for per_run in tags["scalars"]["runTagInfo"].values() for t in per_run}
    images = set(tags["images"]["tagRunSampledInfo"])  # {tag: {run: samples}}
    assert images and set(LEARNING) <= scalars
    groups = card_groups(scalars | images)
    assert [name for name, _ in groups[:EXPANDED_GROUPS]] == ["train", "val"], groups
    order = sorted_tags(scalars | images)
    assert max(order.index(t) for t in LEARNING) < min(order.index(t) for t in images)


@pytest.mark.slow
def test_custom_scalars_loss_chart_is_log_scale(board):
    """TensorBoard's layout has no log-axis option (layout_pb2.Chart: title, multiline,
    margin), so the chart plots log10 of the loss: the served points are log10 of the loss
    TensorBoard serves for the same steps."""
    board, run, _ = board
    layout = board.get("/data/plugin/custom_scalars/layout")
    (first, *_) = layout["category"][0]["chart"]
    assert "log10" in first["title"] and first["multiline"]["tag"] == LOSS_LOG10
    for loss, log10 in zip(["train/loss", "val/loss"], LOSS_LOG10, strict=True):
        query = urllib.parse.urlencode({"run": run, "tag": log10})
        served = board.get(f"/data/plugin/custom_scalars/scalars?{query}")
        points = served["tag_to_events"][log10]  # [wall time, step, value]
        query = urllib.parse.urlencode({"run": run, "tag": loss})
        plain = board.get(f"/data/plugin/scalars/scalars?{query}")
        assert [p[1] for p in points] == [p[1] for p in plain]
        assert [p[2] for p in points] == pytest.approx([math.log10(p[2]) for p in plain], abs=1e-5)


@pytest.mark.slow
def test_hparams_show_values_as_typed_and_trials_apart(board):
    board, run, jobs = board
    groups = board.session_groups()
    assert len(groups) == 3
    by_run = {g["sessions"][0]["name"]: g for g in groups}
    assert set(by_run) == {run, *jobs}
    assert by_run[run]["hparams"]["scale"] == "false"  # the word typed, not 0.0
    assert by_run[run]["hparams"]["heads"] == "2" and by_run[run]["hparams"]["head_dim"] == "32"
    assert by_run[run]["hparams"]["lr"] == "0.003" and by_run[run]["hparams"]["d_model"] == "64"
    assert [by_run[job]["hparams"]["heads"] for job in jobs] == ["1", "2"]
    saved = json.loads((board.logdir / run / "metrics.json").read_text())["metrics"]
    values = {m["name"]["tag"]: m["value"] for m in by_run[run]["metricValues"]}
    assert values["val/loss"] == pytest.approx(saved["val/loss"], rel=1e-6)
    # The Trial ID column shows about 15 characters; the names must differ before that.
    names = [g["name"] for g in groups]
    assert len({name[:12] for name in names}) == 3, names
    assert not [name for name in names if name.startswith(("runs/", "multiruns/"))], names


def _card_titles(dom: str) -> list[tuple[str, str]]:
    """(kind, tag) of every card TIME SERIES rendered, in page order: each card component
    (`scalar-card-component`, `image-card-component`) and the tag in its heading."""
    found = re.finditer(
        r'<(scalar|image|histogram)-card-component\b|<tb-truncated-path\b[^>]*\btitle="([^"]*)"',
        dom,
    )
    cards, kind = [], None
    for match in found:
        if match[1]:
            kind = match[1]
        elif kind:
            cards.append((kind, match[2]))
            kind = None
    return cards


def _not_blank(png: Path) -> None:
    from PIL import Image

    with Image.open(png) as image:
        colours = image.convert("RGB").getcolors(maxcolors=1 << 20) or []
    assert len(colours) > 50, f"{png} is (nearly) one colour: {len(colours)} colours"


@pytest.mark.slow
@needs_chromium
def test_first_screens_show_learning_in_a_browser(board, tmp_path):
    """TIME SERIES' first screen in Chromium: its first cards are train/ curves, a loss card
    is among them and no image card comes before it. Screenshots of it, CUSTOM SCALARS and
    HPARAMS are kept (in $ATTNLAB_SCREENSHOTS when set) for a person to look at."""
    board, _, _ = board
    shots = Path(os.environ.get("ATTNLAB_SCREENSHOTS") or tmp_path)
    # forceSVG (a TensorBoard feature flag): headless Chromium has no GPU, and TensorBoard's
    # WebGL line charts then draw some cards empty at capture time; SVG draws the same data.
    page = open_page(f"{board.url}/?forceSVG=true#timeseries", wait_ms=20000)
    groups = re.findall(r'class="group-title" title="([^"]*)"', page.dom)
    assert groups[:3] == ["train", "val", "xray"], groups
    cards = _card_titles(page.dom)
    assert cards and cards[0][1].startswith("train/"), cards
    loss = next(i for i, (kind, tag) in enumerate(cards) if tag in LEARNING and kind == "scalar")
    assert not [tag for kind, tag in cards[:loss] if kind == "image"], cards
    for name in ["timeseries", "custom_scalars", "hparams"]:
        _not_blank(
            screenshot(f"{board.url}/?forceSVG=true#{name}", shots / f"{name}.png", wait_ms=20000)
        )
