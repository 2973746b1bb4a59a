"""The bench's processes: its probes, its child processes and their memory, its failures
raised by the library and turned into exit codes by scripts/bench.py, its bad input, and its
--gpu code path on CPU at a tiny shape. No timings are asserted: only arithmetic and
behaviour. (Its in-process helpers: tests/unit/test_bench_measure.py and
test_bench_lightning_gap.py.)"""

from __future__ import annotations

import subprocess

import pytest

import src.bench.timed_loops as loops
from src.bench.errors import BadInput, BenchError
from src.bench.measure import ProcessResult, format_row, goal_met, run_timed
from src.bench.rows_process import check_exit
from src.bench.rows_sweeps import wall_seconds
from src.bench.shapes import GPU_ON_CPU_TINY_SHAPE, preflight
from src.paths import SCRIPTS_DIR
from tests.helpers import PYTHON, ROOT, run_script

BENCH = SCRIPTS_DIR / "bench.py"


def test_gpu_mode_runs_on_cpu_at_a_tiny_shape(tmp_path):
    """`bench.py --gpu-on-cpu-tiny`, as a user types it: the --gpu code path (plain loop and
    Lightning, bf16 autocast, SDPA without the math fallback, --log-every's extra pair) on
    CPU; the FLOPs per token match a count by hand for the tiny config."""
    import json

    from src.data.tasks import Sort

    cfg, parts = loops.build_parts(GPU_ON_CPU_TINY_SHAPE, str(tmp_path))
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

    out = tmp_path / "gpu.json"
    args = ["--gpu-on-cpu-tiny", "--peak-tflops", "2", "--log-every", "50", "--json", str(out)]
    proc = run_script(BENCH, *args, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "attnlab bench (gpu-on-cpu-tiny)" in proc.stdout
    rows = json.loads(out.read_text())["rows"]
    by_what = {row["what"].split(" (")[0]: row for row in rows}
    assert by_what["GPU shape: SDPA backend"]["value"] in ("flash", "memory-efficient")
    for arm in ("plain loop", "Lightning", "plain loop, log every 50", "Lightning, log every 50"):
        row = by_what[f"GPU shape, {arm}: MFU"]
        tokens_per_s = float(row["detail"].split(" tokens/s")[0].replace(",", ""))
        # the detail prints tokens/s to the unit: on a slow (or busy) machine a few hundred
        # tokens/s, so that rounding alone is worth more than 0.1%
        rounding = 0.5 / tokens_per_s
        assert row["value"] == pytest.approx(tokens_per_s * hand / 2e12, rel=1e-3 + rounding)
        assert f"{hand:,} FLOPs/token" in row["detail"]
    for label in ("eager", "eager, log every 50 steps"):
        assert by_what[f"GPU shape: Lightning / plain loop tokens/s, {label}"]["value"] > 0


def test_the_probes_load_nothing_heavy_before_their_first_mark():
    """The start-up probe times `import torch` from a fresh interpreter, and the thread probe
    sets its threads before torch loads: importing either (and src/, src/bench/ on the way,
    as `python -m src.bench.<probe>` does) must not load torch, Lightning or Hydra."""
    code = (
        "import sys, src.bench.startup_probe, src.bench.threads_probe; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('torch', 'lightning', 'hydra', 'omegaconf', 'numpy')))"
    )
    proc = subprocess.run(
        [PYTHON, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_library_failures_raise_and_never_exit(tmp_path):
    """src/bench raises BenchError (BadInput for what the user asked); only scripts/bench.py
    turns it into a message and an exit code."""
    failed = ProcessResult(0.1, 3, "", "Traceback ...\nValueError: boom", 0.0)
    with pytest.raises(BenchError, match=r"the probe failed \(exit 3\):\nTraceback"):
        check_exit(failed, "the probe")
    check_exit(ProcessResult(0.1, 0, "", "", 0.0), "the probe")  # exit 0: nothing raised

    def no_kernel_runs(inputs):
        raise RuntimeError("No available kernel. Aborting execution.")

    import torch

    with pytest.raises(BenchError, match="neither flash nor memory-efficient") as err:
        loops.check_sdpa_backend(no_kernel_runs, torch.zeros(1, 4, dtype=torch.long), "cpu")
    assert not isinstance(err.value, BadInput)

    with pytest.raises(BadInput, match="the default shape cannot run") as err:
        preflight(["model.net.layers=1000000"], gpu=False)
    assert "Lower model.net.layers=1000000" in str(err.value)

    with pytest.raises(
        BenchError, match=r"`python scripts/train.py task=nonsense` failed \(exit 1\)"
    ):
        wall_seconds("task=nonsense")  # a sweep row's run that fails: its stderr, no traceback


@pytest.mark.parametrize("flag", [["--gap"], ["--log-every", "50"]])
def test_bench_refuses_a_gpu_flag_without_the_gpu_mode(flag):
    proc = run_script(BENCH, *flag, timeout=120)
    assert proc.returncode == 2
    assert f"{flag[0]} profiles the GPU shape: use it with --gpu" in proc.stderr


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


@pytest.mark.bench
def test_gpu_default_shape_mode_runs_on_cpu(tmp_path):
    """`--gpu-default-shape-on-cpu` (~30 s): the default model's eager steps in both loops and
    a 2-seed sweep one job at a time and with joblib, measured through the same code as on a
    GPU; without a GPU, `--gpu-default-shape` exits 2 and names the CPU mode."""
    import json

    import torch

    out = tmp_path / "bench.json"
    proc = run_script(BENCH, "--gpu-default-shape-on-cpu", "--json", str(out), timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = {row["what"]: row["value"] for row in json.loads(out.read_text())["rows"]}
    where = "on CPU (code path only)"
    for what in (
        f"default shape {where}, plain loop, eager: ms/step",
        f"default shape {where}, Lightning, eager: ms/step",
        f"2-run sweep {where}, one job at a time: runs/min",
        f"2-run sweep {where}, joblib n_jobs=2: runs/min",
    ):
        assert rows[what] > 0, what
    if not torch.cuda.is_available():
        proc = run_script(BENCH, "--gpu-default-shape", timeout=300)
        assert proc.returncode == 2
        assert "--gpu-default-shape needs an NVIDIA GPU" in proc.stderr
        assert "--gpu-default-shape-on-cpu runs the same code on CPU" in proc.stderr


def test_run_timed_reports_the_childs_own_peak_memory_not_its_parents():
    """A parent holding 1 GiB starts a child that fills 200 MiB: the row must say ~200 MiB.
    (wait4's ru_maxrss said over 1 GiB: Linux keeps the forked parent's size across exec.)"""
    import sys

    ballast = b"\x01" * 2**30  # resident in this process
    child = "import time; b = b'\\x01' * (200 * 2**20); time.sleep(0.3)"
    result = run_timed([sys.executable, "-c", child])
    assert result.returncode == 0 and len(ballast) == 2**30
    assert 200 <= result.peak_rss_mib < 600, result.peak_rss_mib


@pytest.mark.bench
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
        "it/s, thread policy idle / torch default threads idle",
        "it/s, thread policy loaded / thread policy idle",
        "start-up: first optimizer step done",
        "`scripts/train.py --help`",
        "a config error",
    ):
        assert section in whats, section
    for row in rows:
        if row["goal"].startswith(("<", ">")):
            assert goal_met(row["value"], row["goal"]) in ("met", "not met"), row
            assert f"| {goal_met(row['value'], row['goal'])} |" in format_row(row)
