"""A run folder's records read without trusting them: metrics.json, .hydra/config.yaml and
.hydra/hydra.yaml. A killed writer, a full disk or a hand edit can leave anything in them,
and one bad file must not hide a whole sweep, so each reader returns what it read or why it
could not, and the caller decides what the run then counts as (`src.analysis.runs.load_runs`;
the sweep summary; `ckpt_path=last` looking for a finished run of the same config).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import yaml
from omegaconf import DictConfig

from src.runs.folders import experiment_of, runs_like

RECORD = "metrics.json"
POINTERS = ("copied_from", "resumed_from")  # another run folder; a checkpoint in one


def _read_text(file: Path) -> tuple[str | None, str | None]:
    """(the file's text, None), or (None, why it cannot be read)."""
    try:
        return file.read_bytes().decode(), None
    except FileNotFoundError:
        return None, "missing"
    except OSError as err:
        return None, f"unreadable: {err.strerror or err}"
    except UnicodeDecodeError:
        return None, "not UTF-8 text"


def _json_type(value: object) -> str:
    return {list: "array", str: "string", bool: "boolean", type(None): "null"}.get(
        type(value), "number"
    )


def read_record(run_dir: Path) -> tuple[dict | None, str | None]:
    """The run's metrics.json: (record, None); (None, why) when it is damaged; (None, None)
    when there is none. Checked as far as its readers rely on it: a JSON object whose
    `metrics` maps tags to numbers, and whose status and POINTERS are strings."""
    file = run_dir / RECORD
    if not os.path.lexists(file):  # a dangling link is a damaged record, not a missing one
        return None, None
    text, why = _read_text(file)
    if text is None:
        return None, "unreadable: a link to nothing" if why == "missing" else why
    if not text.strip():
        return None, "empty"
    try:
        record = json.loads(text)
    except json.JSONDecodeError as err:
        cut = err.pos >= len(text.rstrip()) or err.msg.startswith("Unterminated")
        where = f"{err.msg.removesuffix(' at')} at line {err.lineno} column {err.colno}"
        return None, f"truncated JSON: {where}" if cut else f"not JSON: {where}"
    if not isinstance(record, dict):
        return None, f"a JSON {_json_type(record)}, not an object"
    metrics = record.get("metrics", {})
    if not isinstance(metrics, dict):
        return None, f'"metrics" is a JSON {_json_type(metrics)}, not an object of numbers'
    for tag, value in metrics.items():
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            return None, f'"metrics" has {tag!r}: {json.dumps(value)[:40]}, not a number'
    for key in ("status", *POINTERS):
        if key in record and not isinstance(record[key], str):
            return None, f'"{key}" is {json.dumps(record[key])[:40]}, not a string'
    return record, None


def read_config(run_dir: Path) -> tuple[dict | None, str | None]:
    """The run's .hydra/config.yaml: (config, None), or (None, why it is damaged or
    missing). Hydra writes it unguarded at the job's start, so a killed job can cut it."""
    text, why = _read_text(run_dir / ".hydra" / "config.yaml")
    if text is None:
        return None, why
    if not text.strip():
        return None, "empty"
    try:
        config = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1} column {mark.column + 1}" if mark else ""
        return None, f"not YAML: {getattr(err, 'problem', None) or err}{where}"
    if not isinstance(config, dict):
        return None, f"YAML {type(config).__name__}, not a mapping"
    return config, None


def read_experiment(run_dir: Path) -> tuple[str | None, str | None]:
    """(the `experiment=NAME` the run was started with or None, None), or (None, why its
    .hydra/hydra.yaml cannot be read): run_dirs.experiment_of, which trusts the file."""
    try:
        return experiment_of(run_dir), None
    except (OSError, ValueError, yaml.YAMLError) as err:
        return None, f"{type(err).__name__}: {str(err).splitlines()[0]}"
    except AttributeError:  # the file, or its `hydra:`, is not a mapping
        return None, "not a mapping of Hydra's settings"


def find_finished_run(log_dir: Path, cfg: DictConfig) -> tuple[Path, dict] | None:
    """The newest run under `log_dir` with this same config that finished, and its record.

    A record copied from another run (`copied_from`) stands for that run, so the original
    is returned. Damaged records are passed over.
    """
    finished = []
    for run in runs_like(log_dir, cfg):
        record = read_record(run)[0]
        if record is not None and record.get("status") == "finished":
            original = Path(record.get("copied_from") or run)
            finished.append((run.stat().st_mtime, original, record))
    if not finished:
        return None
    _, original, record = max(finished, key=lambda f: f[0])
    return original, record
