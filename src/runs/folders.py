"""Where runs are written and found again: folder names, claimed folders, the newest
checkpoint of a config, and the results folder of an experiment.

Needs neither torch nor Lightning: Hydra resolves these in the launching process.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import yaml
from omegaconf import DictConfig, OmegaConf

from src.paths import RESULTS_DIR
from src.runs.targets import current_targets

# What may differ between a run and the run it resumes with `ckpt_path=last`.
NOT_PART_OF_THE_RUN = ("ckpt_path", "paths")


def run_name(overrides: str, limit: int = 120) -> str:
    """A run folder's name: its overrides (`heads=2,scale=false`), or `default`.

    A `/` in a value (a path) is written `%2F`, so the name stays one folder. Long override
    lists are cut and suffixed with a hash, staying under file-name limits.
    """
    overrides = overrides.replace("/", "%2F")
    if len(overrides) <= limit:
        return overrides or "default"
    return f"{overrides[:limit]}..{hashlib.sha1(overrides.encode()).hexdigest()[:8]}"


def quote_literals(argv: list[str], keys: tuple[str, ...], only_with: str = "") -> list[str]:
    """`key=a=b,c` -> `key='a=b,c'` (Hydra's quoted string) for each override of `keys`.

    Run folders are named like `..._heads=2,scale=false`, which Hydra's override grammar
    would read as a nested `=` and a sweep list, so a path the project wrote could not be
    typed back. With `only_with`, a value is quoted only if it holds one of those characters
    (so `ckpt_path=null` and a sweep `ckpt_path=a,b` keep their meaning). Values already
    quoted, and interpolations (`${...}`), are left as typed.
    """
    quoted = []
    for arg in argv:
        key, sign, value = arg.partition("=")
        plain = sign and value[:1] not in ("'", '"') and "${" not in value
        if plain and key.lstrip("+~") in keys and (not only_with or set(only_with) & set(value)):
            mark = "'" if "'" not in value else '"'
            arg = f"{key}={mark}{value}{mark}"
        quoted.append(arg)
    return quoted


def sweep_suffix(experiment: str | None) -> str:
    """`_NAME` for a sweep of `experiment=NAME`, so its folder says what it is; else ``."""
    return f"_{experiment}" if experiment else ""


def unique_dir(path: str) -> str:
    """Claim `path` as a new folder, or `path_2`, `path_3`, ... if another run has it.

    `os.mkdir` fails if the folder exists, even when two processes race for it in the same
    second, so no two runs (or multiruns) ever share a folder. Registered with Hydra's
    resolver cache, so a job resolves its folder once and sweep jobs share the sweep's.
    """
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    candidate, n = path, 1
    while True:
        try:
            os.mkdir(candidate)
            return candidate
        except FileExistsError:
            n += 1
            candidate = f"{path}_{n}"


# The time stamp conf/hydra/default.yaml starts a run's folder (and a sweep's) with.
_STAMP = re.compile(r"\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d_")


def trial_name(run_dir: Path, log_dir: Path) -> str:
    """A run's name in TensorBoard's HPARAMS tab, which shows only its first ~15 characters:
    the folder's name without its time stamp, then where it is, so names differ early.

    `runs/2026-01-31_12-00-00_heads=2` -> `heads=2 · runs/2026-01-31_12-00-00`;
    `multiruns/2026-01-31_12-00-00/3_heads=2` -> `3_heads=2 · multiruns/2026-01-31_12-00-00`.
    Each folder gets its own name (the parts put back together are its path), so no two
    runs' rows merge.
    """
    relative = run_dir.resolve()
    if relative.is_relative_to(log_dir.resolve()) and relative != log_dir.resolve():
        relative = relative.relative_to(log_dir.resolve())  # else hydra.run.dir put it elsewhere
    what, where = relative.name, relative.parent
    if stamp := _STAMP.match(what):
        what, where = what[stamp.end() :], where / stamp[0].rstrip("_")
    return what if str(where) == "." else f"{what} · {where}"


def register_resolvers() -> None:
    """`${run_name:...}`, `${sweep_suffix:...}` and `${unique_dir:...}` in conf/hydra/."""
    OmegaConf.register_new_resolver("run_name", run_name, replace=True)
    OmegaConf.register_new_resolver("sweep_suffix", sweep_suffix, replace=True)
    OmegaConf.register_new_resolver("unique_dir", unique_dir, replace=True, use_cache=True)


def experiment_of(run_dir: Path) -> str | None:
    """The `experiment=NAME` a run was started with (its .hydra/hydra.yaml), or None."""
    saved = run_dir / ".hydra" / "hydra.yaml"
    if not saved.is_file():
        return None
    hydra = (yaml.safe_load(saved.read_text()) or {}).get("hydra") or {}
    return ((hydra.get("runtime") or {}).get("choices") or {}).get("experiment")


def results_dir(experiment: str) -> Path:
    """Where an experiment's figures and summary.md are kept in the repository."""
    return RESULTS_DIR / experiment


def _comparable(cfg: DictConfig) -> dict:
    container = current_targets(OmegaConf.to_container(cfg, resolve=False))
    return {k: v for k, v in container.items() if k not in NOT_PART_OF_THE_RUN}


def runs_like(log_dir: Path, cfg: DictConfig) -> list[Path]:
    """Every run folder under `log_dir` (runs and multiruns) whose run had this same config."""
    wanted = _comparable(cfg)
    found = []
    for saved in log_dir.glob("**/.hydra/config.yaml"):
        try:
            if _comparable(OmegaConf.load(saved)) == wanted:
                found.append(saved.parent.parent)
        except (OSError, ValueError, yaml.YAMLError):
            continue  # a job beside this one is writing its config right now, or it is damaged
    return found


def find_last_checkpoint(log_dir: Path, cfg: DictConfig) -> Path | None:
    """The newest `checkpoints/last.ckpt` under `log_dir` whose run had this same config."""
    candidates = [r / "checkpoints" / "last.ckpt" for r in runs_like(log_dir, cfg)]
    candidates = [c for c in candidates if c.is_file()]
    return max(candidates, key=lambda p: p.stat().st_mtime, default=None)
