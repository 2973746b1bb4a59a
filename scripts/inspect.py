"""Look inside a trained model:

    python scripts/inspect.py run=logs/runs/<folder> prompt="d c i e h h b f"

Or `ckpt_path=last` with the run's own overrides, and `random=N` for N validation examples.
It generates the answer greedily, prints it beside the expected one, writes one attention
PNG per layer into its own folder (logs/inspect/...), and prints each head's top keys and
the head knock-out table. README: Look inside.
"""

import os
import sys

# Python puts this script's folder first on sys.path, where this file would shadow the
# standard library's `inspect` (imported by hydra, torch, ...). Take the folder off first.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p) != _HERE]

import hydra  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

from src.config import register_resolvers  # noqa: E402

register_resolvers()

EXIT_CONFIG_ERROR = 2
# Values taken as typed: run folders are named like `..._heads=2,scale=false`, which Hydra's
# override grammar would read as a nested `=` and a sweep list, and prompts hold spaces and `|`.
LITERAL_KEYS = ("run=", "prompt=", "ckpt_path=")


def _quote_literals(argv: list[str]) -> list[str]:
    quoted = []
    for arg in argv:
        key, _, value = arg.partition("=")
        if arg.startswith(LITERAL_KEYS) and value[:1] not in ("'", '"'):
            mark = "'" if "'" not in value else '"'
            arg = f"{key}={mark}{value}{mark}"
        quoted.append(arg)
    return quoted


@hydra.main(version_base="1.3", config_path="../conf", config_name="inspect")
def main(cfg: DictConfig) -> None:
    from src.inspect_run import ConfigError, inspect_model  # torch loads only when needed

    try:
        print(inspect_model(cfg))
    except ConfigError as err:
        print(f"\nerror: {err}\n", file=sys.stderr)
        sys.exit(EXIT_CONFIG_ERROR)


if __name__ == "__main__":
    sys.argv[1:] = _quote_literals(sys.argv[1:])
    main()
