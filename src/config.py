"""Config helpers that need neither torch nor Lightning (so `--help` stays instant and a
sweep's launching process stays light); only counting GPUs imports torch."""

from __future__ import annotations

import hashlib
import math
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import InterpolationResolutionError


class ConfigError(ValueError):
    """A config value that cannot work; the message names the key, the value and what is allowed."""


# What may differ between a run and the run it resumes with `ckpt_path=last`.
NOT_PART_OF_THE_RUN = ("ckpt_path", "paths")


# The config's top-level keys: each is read by something. A key added with `+key=value`
# outside these (and outside the instantiated groups, whose constructors refuse unknown
# arguments themselves) would be ignored silently, so it is refused as a typo.
TOP_LEVEL_KEYS = (
    "heads", "scale", "seed", "ckpt_path", "compile", "threads",
    "task", "data", "model", "trainer", "logger", "callbacks", "paths", "hydra",
)  # fmt: skip
PATHS_KEYS = ("log_dir", "output_dir")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return (_is_int(value) or isinstance(value, float)) and math.isfinite(value)


def check_values(cfg: DictConfig) -> None:
    """Refuse the values no constructor checks, before anything is built.

    The seed feeds numpy (a 32-bit unsigned seed) and the task generators; max_steps, the
    warm-up and the weight decay go straight into the schedule and AdamW, which accept
    nonsense silently; a quoted `scale` reads like a valid value in any later message.
    """
    unknown = [k for k in cfg if k not in TOP_LEVEL_KEYS]
    unknown += [f"paths.{k}" for k in cfg.get("paths") or {} if k not in PATHS_KEYS]
    if unknown:
        raise ConfigError(
            f"{', '.join(f'{k}={OmegaConf.select(cfg, k)!r}' for k in unknown)}: nothing reads "
            f"{'this key' if len(unknown) == 1 else 'these keys'}, so it would be ignored "
            "(a typo?). Allowed top-level keys: "
            f"{', '.join(k for k in TOP_LEVEL_KEYS if k != 'hydra')}; any lightning.Trainer "
            "argument can be added as +trainer.NAME=VALUE."
        )
    seed = cfg.get("seed")
    if not (_is_int(seed) and 0 <= seed < 2**32):
        raise ConfigError(
            f"seed={seed!r} is not allowed: it must be an integer from 0 to 2**32 - 1 "
            "(numpy's seed range)."
        )
    scale = cfg.get("scale")
    if isinstance(scale, str):
        raise ConfigError(
            f'scale={scale!r} is not allowed: it is the string "{scale}" (quoted), not the '
            "boolean true or false or a number. Use scale=true (multiply q.k by 1/sqrt(d_k)), "
            "scale=false (no scaling) or a positive number (that factor), without quotes."
        )
    threads = cfg.get("threads")
    if threads is not None and not (_is_int(threads) and threads >= 1):
        raise ConfigError(
            f"threads={threads!r} is not allowed: it must be a positive integer (that many torch "
            "CPU threads) or null (the thread policy: all of this process's cores, waiting "
            "threads sleep; a sweep job gets its share)."
        )
    max_steps = cfg.trainer.get("max_steps")
    if not (_is_int(max_steps) and max_steps >= 1):
        raise ConfigError(
            f"trainer.max_steps={max_steps!r} is not allowed: it must be a positive integer "
            "(the training stream is endless, so the run needs a number of steps to stop at)."
        )
    model = cfg.get("model") or {}
    for key, allowed in (
        ("warmup_steps", "an integer >= 0 (0: no warm-up)"),
        ("weight_decay", "a number >= 0 (0: no decay)"),
        ("min_lr_ratio", "a number from 0 to 1 (the final learning rate over the peak)"),
    ):
        value = model.get(key)
        if value is None and key not in model:
            continue
        ok = _is_int(value) if key == "warmup_steps" else _is_number(value)
        if not ok or value < 0 or (key == "min_lr_ratio" and value > 1):
            raise ConfigError(f"model.{key}={value!r} is not allowed: it must be {allowed}.")


def model_config(cfg: DictConfig) -> dict[str, Any]:
    """What defines the model a checkpoint holds: the network's settings and the task.

    Two models can have the same tensor shapes and still mean different things (heads=4 and
    heads=2 at d_model=64 both have a 64x64 W_q), so a resume compares these values too.
    Keys are as a user types them (`heads`, `model.net.head_dim`, `task.length`).
    """
    net = OmegaConf.to_container(cfg.model.net, resolve=True)
    net.pop("_target_", None)
    task = OmegaConf.to_container(cfg.task, resolve=True)
    record = {k if k in ("heads", "scale") else f"model.net.{k}": v for k, v in net.items()}
    record["task"] = str(task.pop("_target_", "?")).rsplit(".", 1)[-1]
    record.update({f"task.{k}": v for k, v in task.items()})
    return record


@dataclass
class MemoryEstimate:
    """What a run will hold in memory, from the config alone (float32)."""

    params: int
    state_bytes: int  # weights, gradients and AdamW's two moments
    activation_bytes: int  # one training step's saved activations, logits and attention maps
    map_bytes: int  # the part of activation_bytes that grows with T*T
    seq_len: int

    @property
    def total_bytes(self) -> int:
        return self.state_bytes + self.activation_bytes

    def summary(self) -> str:
        return f"{self.params:,} params, ~{self.activation_bytes / 2**20:,.0f} MiB for activations"


def estimate_memory(cfg: DictConfig, vocab_size: int, seq_len: int) -> MemoryEstimate | None:
    """Parameters and activation memory of the run `cfg` describes, before building it.

    Activations: per layer and token the residual stream, its norms, q/k/v and the MLP's
    hidden units; the (B, nh, T, T) attention weights of training, and the probe's weights
    and logits (AttentionDiagnostics). None when a size is invalid: its constructor says so.
    """
    net, B = cfg.model.net, cfg.data.get("batch_size")
    d, layers, heads, ratio = net.d_model, net.layers, net.heads, net.get("mlp_ratio", 4)
    head_dim = net.get("head_dim") or (d // heads if _is_int(heads) and heads > 0 else None)
    table = net.get("max_seq_len") or seq_len
    if not all(_is_int(v) and v > 0 for v in (d, layers, heads, ratio, head_dim, table, B)):
        return None
    inner = heads * head_dim
    per_block = 4 * d * inner + 2 * ratio * d * d + 2 * d
    if net.get("bias"):
        per_block += 3 * inner + 4 * d + ratio * d  # q, k, v, W_o, MLP, two norms
    positions = table * d if net.get("positional") == "learned" else 0
    params = vocab_size * d + positions + layers * per_block + d * (2 if net.get("bias") else 1)
    T = seq_len
    probe = (cfg.get("callbacks") or {}).get("attention_diagnostics") or {}
    probe_examples = min(probe.get("probe_examples", 0) or 0, cfg.data.get("val_size") or 0)
    per_token = layers * (6 * d + 4 * inner + 2 * ratio * d) + 3 * vocab_size
    maps = layers * heads * T * T * (B + 2 * probe_examples)
    floats = B * T * per_token + maps
    return MemoryEstimate(params, 4 * 4 * params, 4 * floats, 4 * maps, T)


def available_memory(accelerator: str) -> tuple[int | None, str]:
    """Bytes this run may use, and where: the GPU's free memory, or the machine's RAM."""
    if accelerator in ("gpu", "cuda", "auto"):
        import torch  # only for GPUs

        if torch.cuda.is_available():
            return torch.cuda.mem_get_info()[0], "free on the GPU"
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024, "available on this machine"
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"), "free on this machine"
    except (ValueError, OSError, AttributeError):
        return None, "unknown"


def check_memory(cfg: DictConfig, estimate: MemoryEstimate | None) -> None:
    """Refuse a run that would not fit, before it allocates (and swaps, or is OOM-killed)."""
    if estimate is None:
        return
    limit, where = available_memory(str(cfg.trainer.get("accelerator")))
    if limit is None or estimate.total_bytes <= limit:
        return
    net, T = cfg.model.net, estimate.seq_len
    task_sizes = ", ".join(
        f"task.{k}={v}" for k, v in cfg.task.items() if k != "_target_" and _is_int(v)
    )
    # Name first the knob furthest above this project's defaults: the one most likely mistyped.
    knobs = [
        (net.layers / 2, f"model.net.layers={net.layers}"),
        (net.d_model / 64, f"model.net.d_model={net.d_model}"),
        (cfg.data.batch_size / 64, f"data.batch_size={cfg.data.batch_size}"),
        (T / 16, f"the task's sequence length ({T} tokens: {task_sizes})"),
    ]
    knobs.sort(key=lambda k: -k[0])
    gib = 2**30
    raise ConfigError(
        f"this run would need ~{estimate.total_bytes / gib:,.1f} GiB of memory, more than the "
        f"{limit / gib:,.1f} GiB {where}: {estimate.params:,} params (~"
        f"{estimate.state_bytes / gib:,.1f} GiB with gradients and AdamW state) and ~"
        f"{estimate.activation_bytes / gib:,.1f} GiB of activations a step (of which "
        f"{estimate.map_bytes / gib:,.1f} GiB attention maps). Lower {knobs[0][1]} (or "
        f"{', '.join(k[1] for k in knobs[1:])})."
    )


def run_name(overrides: str, limit: int = 120) -> str:
    """A run folder's name: its overrides (`heads=2,scale=false`), or `default`.

    A `/` in a value (a path) is written `%2F`, so the name stays one folder. Long override
    lists are cut and suffixed with a hash, staying under file-name limits.
    """
    overrides = overrides.replace("/", "%2F")
    if len(overrides) <= limit:
        return overrides or "default"
    return f"{overrides[:limit]}..{hashlib.sha1(overrides.encode()).hexdigest()[:8]}"


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


def _comparable(cfg: DictConfig) -> dict:
    container = OmegaConf.to_container(cfg, resolve=False)
    return {k: v for k, v in container.items() if k not in NOT_PART_OF_THE_RUN}


def find_last_checkpoint(log_dir: Path, cfg: DictConfig) -> Path | None:
    """The newest `checkpoints/last.ckpt` under `log_dir` whose run had this same config."""
    wanted = _comparable(cfg)
    candidates = []
    for checkpoint in log_dir.glob("**/checkpoints/last.ckpt"):
        saved = checkpoint.parent.parent / ".hydra" / "config.yaml"
        if saved.is_file() and _comparable(OmegaConf.load(saved)) == wanted:
            candidates.append(checkpoint)
    return max(candidates, key=lambda p: p.stat().st_mtime, default=None)


OPTIONAL_EXTRAS = {  # config group choice -> (the module its plugin provides, the extra)
    "hparams_search": ("hydra_plugins.hydra_optuna_sweeper", "optuna"),
}


def missing_extra(overrides: list[str]) -> str | None:
    """Why these command-line overrides need an optional extra that is not installed, or None.

    Checked before Hydra composes, whose own message ("Could not find
    'hydra/sweeper/optuna'") does not say how to install it.
    """
    import importlib.util

    for override in overrides:
        key = override.split("=", 1)[0].lstrip("+~")
        if key in OPTIONAL_EXTRAS and "=" in override:
            module, extra = OPTIONAL_EXTRAS[key]
            if importlib.util.find_spec(module) is None:
                return (
                    f"{override} needs the '{extra}' extra, which is not installed. Install it "
                    f"with `uv sync --extra {extra}` (or `pip install -e .[{extra}]`), then run "
                    "the same command again. It is optional because it adds scipy, which "
                    "slows every run's start-up by about a second."
                )
    return None


def available_cpus() -> int:
    """CPU cores this process may run on (its affinity mask, not the whole machine)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def check_devices(trainer_cfg: DictConfig) -> None:
    """More processes than the machine has GPUs (or CPU cores) is refused up front."""
    devices, accelerator = trainer_cfg.get("devices"), str(trainer_cfg.get("accelerator"))
    if isinstance(devices, bool) or not isinstance(devices, int) or devices < 1:
        return  # "auto", -1 and lists are Lightning's to check
    if accelerator not in ("gpu", "cuda", "cpu", "auto"):
        return
    available, what = available_cpus(), "CPU core"
    if accelerator != "cpu":
        import torch  # only for GPUs: --help and CPU sweeps' launchers stay light

        if accelerator != "auto" or torch.cuda.is_available():
            available, what = torch.cuda.device_count(), "GPU"
    if devices > available:
        raise ConfigError(
            f"trainer.devices={devices} is more than this machine has: {available} {what}"
            f"{'s' if available != 1 else ''} for trainer.accelerator={accelerator}. Allowed: "
            f"1..{available} (one process per device), or -1 for all of them."
        )


def threads_per_job(launcher: DictConfig | None, cpus: int) -> int | None:
    """torch threads for one job of a sweep whose jobs run side by side, or None (leave as is).

    joblib runs `n_jobs` jobs at once (negative counts back from all cores, as in joblib);
    submitit gives each job `cpus_per_task` cores when set. Each job then takes its share,
    so N jobs on N cores do not run N*N threads.
    """
    if launcher is None:
        return None
    if launcher.get("cpus_per_task"):
        return int(launcher.cpus_per_task)
    n_jobs = launcher.get("n_jobs")
    if isinstance(n_jobs, int) and n_jobs != 0:
        parallel = n_jobs if n_jobs > 0 else max(1, cpus + 1 + n_jobs)
        return max(1, cpus // parallel)
    return None


@dataclass(frozen=True)
class ThreadPolicy:
    """How many torch CPU threads a run uses; see thread_policy."""

    threads: int | None  # torch.set_num_threads(threads); None: leave torch's setting
    why: str  # for train.log


def thread_policy(
    requested: object, job_share: int | None, cpus: int, environ: Mapping[str, str]
) -> ThreadPolicy:
    """The one place that decides CPU threads.

    Why: with torch's default threads (all cores, OpenMP workers that busy-wait between
    parallel regions), one other CPU-bound process (a browser tab, a second run) cut the
    default shape from 100 to 22 it/s here. Measured side by side on 2 cores (README,
    Performance): OMP_WAIT_POLICY=PASSIVE held 39 it/s under load but fell to 42 it/s idle;
    a shorter GOMP_SPINCOUNT did not help under load; one thread ran 77 it/s idle and 75
    under load. So the default is one thread: 0.76x the old idle speed, 3.4x it on a shared
    machine. `threads=N` takes more on a machine you have to yourself.

    Order: an explicit `threads=N` wins; then a sweep job's share of the cores
    (threads_per_job); then an `OMP_NUM_THREADS` the user exported (torch already follows
    it); else one thread. A `requested` value check_values refuses counts as null here (the
    run is refused before any work).
    """
    if _is_int(requested) and requested >= 1:
        return ThreadPolicy(requested, "threads=" + str(requested))
    if job_share is not None:
        return ThreadPolicy(job_share, "this job's share of the CPU cores")
    if environ.get("OMP_NUM_THREADS"):
        return ThreadPolicy(None, f"OMP_NUM_THREADS={environ['OMP_NUM_THREADS']}")
    return ThreadPolicy(
        1,
        f"the policy: 1 thread, robust when the {cpus} cores are shared (threads=N for more)",
    )


class SweepChecks(Callback):
    """Hydra callback: refuse a sweep's launcher settings before any job is launched.

    A SLURM sweep without a partition would be queued and fail (or land somewhere else) on
    the cluster, hours later; here it stops at once with what to set. Hydra turns a
    callback's exceptions into warnings, so a refusal exits (code 2) instead.
    """

    def on_run_start(self, config: DictConfig, **kwargs: object) -> None:
        _check_folder(config, "hydra.run.dir")

    def on_multirun_start(self, config: DictConfig, **kwargs: object) -> None:
        _check_folder(config, "hydra.sweep.dir")
        launcher = config.hydra.launcher
        on_slurm = str(launcher.get("_target_", "")).endswith("SlurmLauncher")
        if on_slurm and not launcher.get("partition"):
            _refuse(
                "hydra.launcher.partition is not set: a SLURM sweep needs the partition its "
                "jobs run in. Add hydra.launcher.partition=NAME (`sinfo -s` lists them); "
                "hydra.launcher.timeout_min, gpus_per_node and cpus_per_task size each job."
            )
        if not on_slurm:  # jobs run here, so this machine's devices are what they get
            try:
                check_devices(config.trainer)
            except ConfigError as err:
                _refuse(str(err))


def _check_folder(config: DictConfig, key: str) -> None:
    """The run's (or sweep's) folder can be created and written, or the run is refused."""
    section, name = key.rsplit(".", 1)
    raw = str(OmegaConf.select(config, section)._get_node(name)._value())
    try:
        folder = Path(str(OmegaConf.select(config, key)))  # resolving claims a unique_dir
        folder.mkdir(parents=True, exist_ok=True)
        if not os.access(folder, os.W_OK):
            raise PermissionError(13, "Permission denied")
    except (OSError, InterpolationResolutionError) as err:
        while not isinstance(err, OSError) and (err.__cause__ or err.__context__):
            err = err.__cause__ or err.__context__  # the OSError inside Hydra's resolution
        where = f"{key}={raw!r}"
        if "${" in raw:  # the default template: the folder is under paths.log_dir
            where = f"{key} (under paths.log_dir={config.paths.log_dir!r})"
        _refuse(
            f"{where} cannot be used as the run's folder: creating or writing it failed "
            f"({getattr(err, 'strerror', None) or err}). Choose a folder you can write to, e.g. "
            f"{key}=logs/my_run, or paths.log_dir=DIR to move every run."
        )


def _refuse(message: str) -> None:
    print(f"\nerror: {message} No job was started.\n", file=sys.stderr)
    sys.exit(2)


def register_resolvers() -> None:
    """`${run_name:...}` and `${unique_dir:...}` in conf/hydra/default.yaml."""
    OmegaConf.register_new_resolver("run_name", run_name, replace=True)
    OmegaConf.register_new_resolver("unique_dir", unique_dir, replace=True, use_cache=True)
