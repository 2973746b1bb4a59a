"""Look inside a trained model:

    python scripts/inspect.py run=logs/runs/<folder> prompt="d c i e h h b f"

or `ckpt_path=last` with the run's own overrides, and `random=N` for N validation examples.
It generates the answer greedily, prints it beside the expected one, writes one attention
PNG per layer into its own folder (logs/inspect/...), and prints each head's top keys and
the head knock-out table. README: Look inside. The work is in src/inspect_run.py.
"""

import sys

if __name__ == "inspect":
    # `python scripts/train.py` (any script here) puts scripts/ first on sys.path, so a plain
    # `import inspect` (dataclasses, attrs and torch all do one) finds this file instead of the
    # standard library's module. Imported that way, this file loads the real module in its
    # place and does nothing else.
    import importlib.util
    import os
    import sysconfig

    _path = os.path.join(sysconfig.get_path("stdlib"), "inspect.py")
    _spec = importlib.util.spec_from_file_location("inspect", _path)
    _module = importlib.util.module_from_spec(_spec)
    sys.modules["inspect"] = _module
    _spec.loader.exec_module(_module)
elif __name__ == "__main__":
    from src.inspect_cli import run

    run()
