"""scripts/bench.py's helpers (src/bench/measure.py), its bad input, and its --gpu code path
on CPU at a tiny shape. No timings are asserted: only arithmetic and behaviour."""

from __future__ import annotations

import math

import pytest

import src.bench.timed_loops as loops
from src.bench.measure import (
    alternate,
    child_env,
    flops_per_token,
    format_row,
    goal_met,
    median,
    mfu,
    peak_tflops_for,
    ratio,
    run_timed,
)
from tests.helpers import ROOT, run_script

BENCH = ROOT / "scripts" / "bench.py"


def test_median_and_ratio():
    assert median([3.0, 1.0, 2.0]) == 2.0
    assert median([4.0, 1.0, 2.0, 3.0]) == 2.5
    with pytest.raises(ValueError):
        median([])
    assert ratio(1.0, 4.0) == 0.25
    assert math.isnan(ratio(1.0, 0.0))


def test_alternate_interleaves_and_reverses_every_other_round():
    order = []
    arms = {name: (lambda n=name: order.append(n) or len(order)) for name in "abc"}
    samples = alternate(arms, 3)
    assert order == list("abccbaabc")
    assert samples == {"a": [1, 6, 7], "b": [2, 5, 8], "c": [3, 4, 9]}


@pytest.mark.parametrize(
    "value, goal, expected",
    [
        (0.96, ">= 0.95", "met"),
        (0.94, ">= 0.95", "not met"),
        (3.9, "<= 4 s", "met"),
        (4.1, "<= 4 s", "not met"),
        (1.2, "> 1 is faster", "met"),
        (0.001, "< 1e-2", "met"),
        (5.0, "(inspection only)", ""),
        (5.0, "", ""),
        (float("nan"), ">= 0.5", ""),
    ],
)
def test_goal_met(value, goal, expected):
    assert goal_met(value, goal) == expected


def test_format_row_shows_goal_and_whether_it_is_met():
    row = {"what": "x", "value": 0.5, "goal": ">= 0.95", "detail": "d"}
    assert format_row(row) == "| x | 0.5 | >= 0.95 | not met | d |"
    text = {"what": "backend", "value": "flash", "goal": "flash or memory-efficient", "detail": ""}
    assert format_row(text) == "| backend | flash | flash or memory-efficient |  |  |"


def test_child_env_drops_thread_variables():
    env = child_env({"PATH": "/bin", "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "ACTIVE"}, A="1")
    assert env == {"PATH": "/bin", "A": "1"}


def test_flops_and_mfu_arithmetic():
    # GPT-2 small as nanoGPT counts it: 6N + 12*L*H*Q*T with N = 124M - 1024*768 positions.
    n = 124_439_808 - 1024 * 768
    assert flops_per_token(n, 12, 12, 64, 1024) == 6 * n + 12 * 12 * 12 * 64 * 1024
    assert mfu(1e5, 10**9, 1000.0) == pytest.approx(0.1)  # 1e14 FLOP/s of 1e15
    assert peak_tflops_for("NVIDIA H200", None) == 790.0
    assert peak_tflops_for("NVIDIA H200", 989.0) == 989.0
    assert peak_tflops_for("Some GPU", None) is None


@pytest.fixture
def bench_module(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT))
    import scripts.bench as bench

    return bench


def test_gpu_mode_runs_on_cpu_at_a_tiny_shape(bench_module, tmp_path):
    """The --gpu code path (plain loop and Lightning, bf16 autocast, SDPA without the math
    fallback) on CPU; the FLOPs per token match a count by hand for the tiny config."""
    from src.data.tasks import Sort

    bench = bench_module
    cfg, parts = loops.build_parts(bench.GPU_ON_CPU_TINY_SHAPE, str(tmp_path))
    d, layers, heads, head_dim, T = 32, 2, 2, 16, 32
    assert (cfg.model.net.d_model, cfg.model.net.layers, cfg.heads, parts.task.seq_len) == (
        d,
        layers,
        heads,
        T,
    )
    vocab = parts.task.vocab_size
    assert isinstance(parts.task, Sort)
    # per block: q, k, v, out (4 d^2), MLP (8 d^2), two LayerNorm weights (no bias); then the
    # final LayerNorm and the tied embedding/unembedding; the positional table is left out.
    n = layers * (4 * d * d + 8 * d * d + 2 * d) + d + vocab * d
    hand = 6 * n + 12 * layers * heads * head_dim * T
    assert loops.model_flops_per_token(parts.model.net, T) == hand

    rows = bench.gpu_rows(tiny=True, peak_override=2.0, quick=True, compile_arm=False)
    by_what = {row["what"].split(" (")[0]: row for row in rows}
    assert by_what["GPU shape: SDPA backend"]["value"] in ("flash", "memory-efficient")
    for arm in ("plain loop", "Lightning"):
        row = by_what[f"GPU shape, {arm}: MFU"]
        tokens_per_s = float(row["detail"].split(" tokens/s")[0].replace(",", ""))
        assert row["value"] == pytest.approx(tokens_per_s * hand / 2e12, rel=1e-3)
        assert f"{hand:,} FLOPs/token" in row["detail"]


def test_bench_refuses_gap_without_the_gpu_mode():
    proc = run_script(BENCH, "--gap", timeout=120)
    assert proc.returncode == 2
    assert "--gap profiles the GPU shape: use it with --gpu" in proc.stderr


def test_bench_refuses_an_unknown_flag():
    proc = run_script(BENCH, "--no-such-flag", timeout=120)
    assert proc.returncode == 2
    assert "unrecognized arguments: --no-such-flag" in proc.stderr


@pytest.mark.slow
def test_bench_refuses_a_shape_that_does_not_fit_memory():
    proc = run_script(BENCH, "--shape", "model.net.layers=1000000", timeout=300)
    assert proc.returncode == 2
    assert "error: the default shape cannot run" in proc.stderr
    assert "Lower model.net.layers=1000000" in proc.stderr


@pytest.mark.slow
def test_gpu_mode_without_a_gpu_exits_2():
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is at hand: --gpu would measure")
    proc = run_script(BENCH, "--gpu", timeout=300)
    assert proc.returncode == 2
    assert "error: --gpu needs an NVIDIA GPU" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_the_lightning_gap_profile_names_each_part_and_measures_every_arm(
    bench_module, monkeypatch
):
    """Each GAP_PARTS row subtracts two arms that exist; every arm really trains (the
    manual-optimisation arm included) and returns a positive step time."""
    bench = bench_module
    for _, arm, against in bench.GAP_PARTS:
        assert arm in bench.GAP_ARMS and against in bench.GAP_ARMS
    steps = {name: f(["~callbacks"], 3, 2, "cpu") for name, f in bench.GAP_ARMS.items()}
    assert all(0 < s < 10 for s in steps.values()), steps
    rows = bench.lightning_gap_rows(quick=True, repeats=1)
    assert [r["what"] for r in rows] == [
        f"Lightning gap: {what} (ms/step)" for what, _, _ in bench.GAP_PARTS
    ]


def test_manual_optimisation_arm_takes_the_same_steps_as_the_automatic_one(bench_module, tmp_path):
    """The gap profile's manual arm must do the same training, or its difference to the
    automatic arm is not the closure's cost: same weights after 5 steps."""
    import lightning as L
    import torch

    weights = []
    for manual in (False, True):
        cfg, parts = loops.build_parts(
            ["~callbacks", "~logger", "trainer.max_steps=5"], str(tmp_path)
        )
        model = parts.model
        if manual:
            loops.make_manual(model)
        L.Trainer(
            max_steps=5,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            limit_val_batches=0,
            num_sanity_val_steps=0,
        ).fit(model, datamodule=parts.datamodule)
        weights.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
    torch.testing.assert_close(weights[0], weights[1])


def test_run_timed_reports_the_childs_own_peak_memory_not_its_parents():
    """A parent holding 1 GiB starts a child that fills 200 MiB: the row must say ~200 MiB.
    (wait4's ru_maxrss said over 1 GiB: Linux keeps the forked parent's size across exec.)"""
    import sys

    ballast = b"\x01" * 2**30  # resident in this process
    child = "import time; b = b'\\x01' * (200 * 2**20); time.sleep(0.3)"
    result = run_timed([sys.executable, "-c", child])
    assert result.returncode == 0 and len(ballast) == 2**30
    assert 200 <= result.peak_rss_mib < 600, result.peak_rss_mib


@pytest.mark.slow
def test_quick_bench_prints_every_kind_of_row_with_its_goal(tmp_path):
    """`bench.py --quick` end to end (~50 s): every section runs, and each row with a goal
    says whether it was met. Which rows are met is the machine's business, not a test's."""
    import json

    out = tmp_path / "bench.json"
    proc = run_script(BENCH, "--quick", "--json", str(out), timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = json.loads(out.read_text())["rows"]
    whats = " | ".join(row["what"] for row in rows)
    for section in (
        "Lightning / plain loop (default)",
        "fast path / direct SDPA",
        "data generator / training step",
        "diagnostics overhead",
        "non-finite guard overhead",
        "under one busy process / idle, thread policy",
        "start-up: first optimizer step done",
        "`scripts/train.py --help`",
        "a config error",
    ):
        assert section in whats, section
    for row in rows:
        if row["goal"].startswith(("<", ">")):
            assert goal_met(row["value"], row["goal"]) in ("met", "not met"), row
            assert f"| {goal_met(row['value'], row['goal'])} |" in format_row(row)
