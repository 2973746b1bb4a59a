"""End a script's process without the interpreter's teardown of its modules.

Once a script is done, Python spends ~1.4 s freeing torch's and Lightning's thousands of
objects one by one (measured: `import lightning` alone, then exit: 1.4 s after the last
atexit handler; `os._exit` there: none). Nothing in that teardown is the user's: every
atexit handler (TensorBoard's writers, a launcher's workers) runs first, logging is flushed
and closed, stdout and stderr are flushed; then the process exits with the script's code.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import sys
from collections.abc import Callable


def run_then_exit(main: Callable[[], object], script: str) -> None:
    """Run `main`; at exit, after the atexit handlers, end the process with its exit code.

    Only where `script` is the program (`python [options] SCRIPT ...`): where another
    program runs it in its own process (pytest, runpy), that program's exit is left alone.
    Registered before `main` imports torch, so the handler runs after theirs (last in,
    first out). An exception other than SystemExit (a bug's traceback, Ctrl-C's
    KeyboardInterrupt, whose exit status says "interrupted") takes Python's usual way out.
    """
    if not is_the_program(script):
        main()
        return
    outcome: dict[str, int] = {}

    def exit_now() -> None:
        if "code" not in outcome:
            return
        logging.shutdown()
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):  # a closed pipe: nothing to write to
                stream.flush()
        os._exit(outcome["code"])

    atexit.register(exit_now)
    try:
        main()
    except SystemExit as stop:
        outcome["code"] = (
            stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
        )
        raise
    outcome["code"] = 0


def is_the_program(script: str) -> bool:
    """Whether this process was started to run `script` (it is on the command line)."""
    path = os.path.abspath(script)
    return any(os.path.abspath(arg) == path for arg in getattr(sys, "orig_argv", [])[1:])
