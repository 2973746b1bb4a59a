"""The CPU thread policy: the `threads=` knob, a sweep job's share of the cores, and an
exported OMP_NUM_THREADS, as decided and as a run uses them (what a run in a fresh process
says in train.log: tests/integration/test_train_script.py)."""

from __future__ import annotations

import pytest

from src.preflight.threads import ThreadPolicy, thread_policy, threads_per_job
from tests.helpers import TINY

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
