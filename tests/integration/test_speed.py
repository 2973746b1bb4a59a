"""The CPU thread policy and the `threads=` knob (bytecode at install: .ci/run checks it)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import tomllib

from src.preflight.threads import ThreadPolicy, thread_policy
from tests.helpers import ROOT, TINY, TRAIN_SCRIPT, run_script


def test_uv_compiles_bytecode_at_install():
    """uv reads `[tool.uv] compile-bytecode` (as `uv sync --compile-bytecode`); .ci/run checks
    that its own sync left lightning's .pyc files (no second environment in a test)."""
    settings = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["uv"]
    assert settings["compile-bytecode"] is True
    ci = (ROOT / ".ci" / "run").read_text()
    sync = ci.index("sync --locked")
    check = ci.index("site-packages/lightning/*' -name '*.pyc'")
    assert sync < check < ci.index("pytest")


ONE = "the policy: 1 thread, robust when the 8 cores are shared (threads=N for more)"
SHARE = "this job's share of the CPU cores"


@pytest.mark.parametrize(
    "requested, share, environ, expected",
    [
        (None, None, {}, ThreadPolicy(1, ONE)),
        (3, None, {}, ThreadPolicy(3, "threads=3")),
        (3, 1, {"OMP_NUM_THREADS": "2"}, ThreadPolicy(3, "threads=3")),  # the knob wins
        (None, 2, {}, ThreadPolicy(2, SHARE)),
        (None, 2, {"OMP_NUM_THREADS": "1"}, ThreadPolicy(2, SHARE)),
        (None, None, {"OMP_NUM_THREADS": "2"}, ThreadPolicy(None, "OMP_NUM_THREADS=2")),
        ("abc", None, {}, ThreadPolicy(1, ONE)),  # check_values refuses it first
        (True, None, {}, ThreadPolicy(1, ONE)),
    ],
)
def test_thread_policy_decisions(requested, share, environ, expected):
    assert thread_policy(requested, share, 8, environ) == expected


class _ThreadsSeen:
    """A callback recording torch's intra-op thread count during training."""

    def __init__(self):
        import lightning as L

        seen = self.seen = []

        class _Callback(L.Callback):
            def on_train_batch_end(self, *args, **kwargs):
                import torch

                seen.append(torch.get_num_threads())

        self.callback = _Callback()


@pytest.fixture
def restore_torch_threads():
    import torch

    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize(
    "overrides, share, omp, expected",
    [
        (["threads=1"], None, None, 1),
        (["threads=2"], 1, "1", 2),  # the knob wins over the job share and the environment
        ([], 1, None, 1),  # a sweep job's share
        ([], None, None, 1),  # the policy: one thread
    ],
)
def test_threads_a_run_uses_follow_the_knob_and_the_policy(
    compose_cfg, monkeypatch, restore_torch_threads, overrides, share, omp, expected
):
    import torch

    from src.training.run import train

    if omp is None:
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    else:
        monkeypatch.setenv("OMP_NUM_THREADS", omp)
    torch.set_num_threads(3)  # something neither the knob nor the policy would choose
    probe = _ThreadsSeen()
    cfg = compose_cfg(*TINY, "trainer.max_steps=2", *overrides)
    train(cfg, threads=share, extra_callbacks=[probe.callback])
    assert probe.seen and set(probe.seen) == {expected}


def test_an_exported_omp_num_threads_is_left_to_torch(
    compose_cfg, monkeypatch, restore_torch_threads
):
    import torch

    from src.training.run import train

    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    torch.set_num_threads(2)  # what torch does with it when it loads; the policy would take 1
    probe = _ThreadsSeen()
    train(compose_cfg(*TINY, "trainer.max_steps=2"), extra_callbacks=[probe.callback])
    assert set(probe.seen) == {2}


@pytest.mark.slow
def test_a_run_uses_one_thread_by_default_and_says_so_first_in_train_log(tmp_path: Path):
    """In a fresh process, as typed, nothing exported: the threads in use head train.log."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS")}
    proc = run_script(TRAIN_SCRIPT, *TINY, "trainer.max_steps=2", cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr
    (log_file,) = tmp_path.glob("logs/runs/*/train.log")
    first = log_file.read_text().splitlines()[0]
    assert re.search(r"torch threads: 1 \(the policy: 1 thread", first), first
