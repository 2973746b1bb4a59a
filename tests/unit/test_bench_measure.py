"""The bench's arithmetic and helpers in src/bench/measure.py: medians and ratios, arms
alternated, goals met or not, a row's table line, a child's environment, FLOPs and MFU. No
timings are asserted. (The bench's processes and scripts/bench.py:
tests/integration/test_benchmarking.py.)"""

import math

import pytest

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
)


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
