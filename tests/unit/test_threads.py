"""The CPU thread policy: the `threads=` knob, a sweep job's share of the cores, and an
exported OMP_NUM_THREADS, as decided and as a run uses them (what a run in a fresh process
says in train.log: tests/integration/test_train_script.py)."""

from __future__ import annotations

import pytest

from src.preflight.threads import ThreadPolicy, thread_policy, threads_per_job
from tests.helpers import TINY

UNMEASURED = ThreadPolicy(
    1, "1 thread: the idle cores could not be measured (threads=N for more)", automatic=True
)
SHARE = "this job's share of the CPU cores"


def idle(threads: int, cores: float) -> ThreadPolicy:
    why = (
        f"the policy: {threads}, as {cores:.1f} of 8 cores were idle at start (threads=N to choose)"
    )
    return ThreadPolicy(threads, why, automatic=True)


@pytest.mark.parametrize(
    "requested, share, environ, cores, expected",
    [
        (None, None, {}, None, UNMEASURED),  # no /proc/stat
        (None, None, {}, 8.0, idle(4, 8.0)),  # all idle: at most torch's default (4 here)
        (None, None, {}, 2.0, idle(2, 2.0)),
        (None, None, {}, 1.75, idle(2, 1.75)),  # a core 75% free counts
        (None, None, {}, 1.6, idle(1, 1.6)),
        (None, None, {}, 0.2, idle(1, 0.2)),  # all busy: still one
        (3, None, {}, 8.0, ThreadPolicy(3, "threads=3")),
        (3, 1, {"OMP_NUM_THREADS": "2"}, 8.0, ThreadPolicy(3, "threads=3")),  # the knob wins
        (None, 2, {}, 8.0, ThreadPolicy(2, SHARE)),  # a sweep job keeps its share
        (None, 2, {"OMP_NUM_THREADS": "1"}, 8.0, ThreadPolicy(2, SHARE)),
        (None, None, {"OMP_NUM_THREADS": "2"}, 8.0, ThreadPolicy(None, "OMP_NUM_THREADS=2")),
        ("abc", None, {}, None, UNMEASURED),  # check_values refuses it first
        (True, None, {}, None, UNMEASURED),
    ],
)
def test_thread_policy_decisions(requested, share, environ, cores, expected):
    assert thread_policy(requested, share, 8, environ, idle=cores, most=4) == expected


def test_idle_cores_counts_a_busy_process_and_not_this_one():
    """Measured against /proc/stat: this process's own work counts as free (it is the run
    that will use the cores), so working or sleeping reads alike; a pure-Python spin beside
    it takes about one core. Relative figures only: a CI host has load of its own."""
    import subprocess
    import sys
    import time

    from src.preflight import threads

    def window(busy: bool) -> float:
        threads.idle_cores()  # start a window
        deadline = time.monotonic() + 0.6
        while busy and time.monotonic() < deadline:
            pass
        time.sleep(max(0.0, deadline - time.monotonic()))
        cores = threads.idle_cores()
        assert cores is not None
        return cores

    sleeping, working = window(busy=False), window(busy=True)
    spin = "import time\nt = time.time() + 5\nwhile time.time() < t: pass"
    spinner = subprocess.Popen([sys.executable, "-c", spin])
    try:
        time.sleep(1.0)  # its interpreter starts, then spins
        beside = window(busy=False)
    finally:
        spinner.kill()
        spinner.wait()
    assert abs(working - sleeping) < 0.5, (working, sleeping)  # own work is not load
    assert beside < sleeping - 0.6, (beside, sleeping)  # the spin took most of a core


@pytest.mark.parametrize(
    "cpu_max, cpus",
    [(None, 8), ("max 100000\n", 8), ("200000 100000\n", 2), ("150000 100000\n", 2)],
)
def test_available_cpus_keeps_to_a_containers_quota(tmp_path, monkeypatch, cpu_max, cpus):
    """In a container limited to 2 CPUs on a bigger host, /proc/stat and torch see the host's
    cores; the policy must not take them all."""
    from src.preflight import threads

    path = tmp_path / "cpu.max"
    if cpu_max is not None:
        path.write_text(cpu_max)
    monkeypatch.setattr(threads, "CGROUP_CPU_MAX", str(path))
    monkeypatch.setattr(threads.os, "sched_getaffinity", lambda pid: set(range(8)))
    assert threads.available_cpus() == cpus


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
    "overrides, share, omp, cores, expected",
    [
        (["threads=1"], None, None, 2.0, 1),
        (["threads=2"], 1, "1", 1.0, 2),  # the knob wins over the job share and the environment
        ([], 1, None, 2.0, 1),  # a sweep job's share
        ([], None, None, 2.0, 2),  # the policy: the idle cores
        ([], None, None, 1.0, 1),
        (["trainer.devices=2"], None, None, 2.0, 1),  # ddp here: each process its share
    ],
)
def test_threads_a_run_uses_follow_the_knob_and_the_policy(
    compose_cfg, monkeypatch, restore_torch_threads, overrides, share, omp, cores, expected
):
    import torch

    from src.preflight import threads
    from src.training import run

    if omp is None:
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    else:
        monkeypatch.setenv("OMP_NUM_THREADS", omp)
    monkeypatch.setattr(threads, "idle_cores", lambda: cores)
    monkeypatch.setattr(run, "TORCH_DEFAULT_THREADS", 4)
    for module in (threads, run):
        monkeypatch.setattr(module, "available_cpus", lambda: 2)
    torch.set_num_threads(3)  # something neither the knob nor the policy would choose
    probe = _ThreadsSeen()
    cfg = compose_cfg(*TINY, "trainer.max_steps=2", *overrides)
    if "trainer.devices=2" in overrides:  # the decision only: no second process here

        def refuse(*args, **kwargs):
            raise run.ConfigError("stop after the threads")

        monkeypatch.setattr(run, "build", refuse)
        with pytest.raises(run.ConfigError):
            run.train(cfg, threads=share)
        assert torch.get_num_threads() == expected
        return
    run.train(cfg, threads=share, extra_callbacks=[probe.callback])
    assert probe.seen and set(probe.seen) == {expected}


def test_a_resumed_run_keeps_the_threads_it_was_trained_with(
    compose_cfg, monkeypatch, restore_torch_threads, tmp_path
):
    """The count changes results in the sixth digit, so where the policy would choose (the
    machine is busier now), a resume takes the checkpoint's; an explicit threads=N still wins."""
    import torch

    from src.preflight import threads
    from src.training import run

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    first = compose_cfg(*TINY, "trainer.max_steps=4", "threads=2")
    run.train(first)
    ckpt = f"ckpt_path={tmp_path / 'checkpoints' / 'last.ckpt'}"
    monkeypatch.setattr(threads, "idle_cores", lambda: 1.0)  # the policy alone would take 1
    for overrides, expected in [([], 2), (["threads=1"], 1)]:
        probe = _ThreadsSeen()
        cfg = compose_cfg(*TINY, ckpt, *overrides)
        cfg.paths.output_dir = str(tmp_path / f"resumed{len(overrides)}")
        torch.set_num_threads(3)
        run.train(cfg, extra_callbacks=[probe.callback])
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


@pytest.mark.parametrize(
    "launcher, cpus, threads",
    [
        (None, 2, None),  # a single run or the basic launcher: torch decides
        ({"n_jobs": 2}, 2, 1),
        ({"n_jobs": -1}, 8, 1),  # joblib's -1: all cores, one job each
        ({"n_jobs": -2}, 8, 1),  # 7 jobs on 8 cores
        ({"n_jobs": 2}, 16, 8),
        ({"n_jobs": 2, "cpus_per_task": None}, 4, 2),
        ({"cpus_per_task": 3}, 16, 3),  # submitit: what each job was given
    ],
)
def test_threads_per_job_divides_the_cores(launcher, cpus, threads):
    from omegaconf import OmegaConf

    node = OmegaConf.create(launcher) if launcher is not None else None
    assert threads_per_job(node, cpus) == threads
