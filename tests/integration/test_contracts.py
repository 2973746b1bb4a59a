"""A third-party behaviour attnlab relies on that needs a process to check: Lightning's
launcher signals the processes in its `procs` list. It fails with Lightning's version
named; the others, in process, are in tests/unit/test_contracts.py (its docstring says what
to do when one fails)."""

import signal

import lightning as L

from src.training.distributed import HydraDDPStrategy
from tests.helpers import start_python


def test_lightnings_launcher_forwards_signals_to_the_ranks_handed_to_it():
    """The one Lightning internal src/training/distributed.py uses: the launcher's `procs`
    list, whose processes its kill() signals (on SIGTERM and Ctrl-C). If this fails,
    Lightning changed it: a SIGTERM would then leave rank 0 waiting in a broadcast for
    ranks that never got the signal. Fix extra_ranks for the new version, or keep
    pyproject.toml's pin below it."""

    trainer = L.Trainer(strategy=HydraDDPStrategy(), accelerator="cpu", devices=2, logger=False)
    launcher = trainer.strategy.launcher
    assert isinstance(getattr(launcher, "procs", None), list), (
        f"{type(launcher).__name__} has no `procs` list any more (Lightning {L.__version__})"
    )
    rank = start_python("import time; time.sleep(60)")
    launcher.procs.append(rank)
    launcher.kill(signal.SIGTERM)
    assert rank.wait(timeout=30) == -signal.SIGTERM, (
        f"Lightning {L.__version__}'s launcher.kill() no longer signals the processes in procs"
    )
