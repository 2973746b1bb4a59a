"""The README is executable: its commands run as a user types them, in README order.

The other tests run configurations no user runs (TINY turns the progress bar off, tmp
folders have no `=` or `,` in their names). Here every command of README.md's ```bash
blocks, every `$ python scripts/...` example with its expected output, and every ```python
block (as one Jupyter cell, in a fresh Python process) runs in a scratch copy of the
repository with the user's configuration: the progress bar on, the project's own log
folders (logs/runs/<time>_<overrides>, logs/multiruns/...), commands sharing one `logs/`
because later commands use what earlier ones made. README.md is parsed
at test time, so a new command is run too; one that cannot run here must be named in SKIP,
with the reason.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers import ROOT, free_port

README = ROOT / "README.md"
VENV = Path(sys.prefix)  # the environment running the tests (uv's .venv on CI)
TIMEOUT_S = 300  # per command; the longest one here (the default run) takes well under it

# README commands that cannot run here, by command prefix (the longest matching prefix
# wins) -> why, and which test covers their code instead.
SKIP: dict[str, str] = {
    "python scripts/train.py trainer=ddp trainer.devices=4": (
        "needs 4 GPUs; test_scale_out.py runs trainer=ddp on 2 CPU processes"
    ),
    "python scripts/train.py -m hydra/launcher=submitit_slurm": (
        "needs a SLURM cluster; unit/test_refusals.py checks the refusal without a partition"
    ),
    "python scripts/train.py -m hydra/launcher=submitit_local": (
        "each job is a fresh Python process: 20 s for its 2 jobs even at trainer.max_steps=20, "
        "past this file's budget of ~4 minutes; test_scale_out.py runs a submitit_local "
        "sweep and compare.py on it"
    ),
    "uv sync --extra optuna": "changes the environment; CI installs all extras already",
    "python scripts/train.py -m hparams_search=lr_warmup": (
        "20 trials of 1000 steps (over 5 minutes here); test_scale_out.py runs a 3-trial search"
    ),
    "python scripts/train.py -m experiment=": (
        "a published experiment's grid: `experiment=temperature` is 32 runs, a minute even at "
        "trainer.max_steps=20; test_configs.py builds every point of every grid"
    ),
    "python scripts/compare.py logs/multiruns/<time>_": (
        "--publish on the sweep of an experiment skipped above; compare.py itself runs here on "
        "the sweep of `-m heads=1,2`, and test_compare_summary.py runs --publish"
    ),
}

# Commands that train for long, exactly as README types them -> the trainer.max_steps=N
# appended (and nothing else). trainer.val_check_interval is 100, and Lightning also
# validates at the last step, so a run of 20 steps still validates and writes its checkpoint.
MAX_STEPS: dict[str, int] = {
    "python scripts/train.py trainer=ddp": 20,
    "python scripts/train.py -m hydra/launcher=joblib hydra.launcher.n_jobs=2 heads=1,2,4 "
    "scale=true,false": 20,
    "python scripts/train.py -m heads=3,2": 20,  # its heads=2 job; the example is heads=3's
}

# Commands, exactly as typed, that this harness kills (SIGKILL) once their first checkpoint
# is written, and why. README's "A run died (killed, ...). Run the same command again with
# ckpt_path=last" only applies to a run that died: this makes it one, as a user's would.
KILLED_AFTER_FIRST_CHECKPOINT: dict[str, str] = {
    "python scripts/train.py heads=2 scale=false": (
        "the next block resumes it: `... heads=2 scale=false ckpt_path=last`"
    ),
}

# Placeholders in README commands, each resolved to a real folder an earlier command made
# (the newest match in the scratch copy; folder names start with their start time):
# - `<time>`: the start time in a folder's name (2026-12-04_22-38-19); the rest of the name
#   is matched as typed, plus the `_2`, `_3` a folder claimed in the same second gets;
# - a literal time such as `2026-11-26_11-28-47`: a folder from the machine the README was
#   written on, resolved as `<time>`;
# - `…`: any text within one folder name.
TIME = r"\d{4}-\d{2}-\d{2}_\d{2}-\d{2}-\d{2}"
PLACEHOLDER = re.compile(rf"<time>|…|{TIME}")


@dataclass(frozen=True)
class Command:
    """One README command: as typed, where, and (`$` examples) what it prints."""

    text: str  # continuation lines joined, `# comment` stripped
    line: int  # in README.md
    expected: str | None = None  # `$` examples: the first `error:` paragraph, else 1st line
    is_example: bool = False
    is_python: bool = False  # a ```python block: `text` is the whole cell

    @property
    def id(self) -> str:
        text = self.text.replace("…", "...")
        if self.is_python:
            text = "python: " + "; ".join(line for line in text.splitlines() if line.strip())
        return f"L{self.line} {text if len(text) <= 72 else text[:69] + '...'}"


def strip_comment(line: str) -> str:
    """The line without a trailing `# comment` (a `#` that starts a word, outside quotes)."""
    quote = None
    for i, char in enumerate(line):
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i].rstrip()
    return line.rstrip()


def code_blocks(text: str) -> list[tuple[str, int, list[str]]]:
    """(language, line number of the block's first line, lines) for each fenced block."""
    blocks, current = [], None
    for number, line in enumerate(text.splitlines(), start=1):
        if line.startswith("```"):
            if current is None:
                current = (line[3:].strip(), number + 1, [])
            else:
                blocks.append(current)
                current = None
        elif current is not None:
            current[2].append(line)
    return blocks


def bash_commands(first_line: int, lines: list[str]) -> list[Command]:
    """A ```bash block's commands: `\\` continuations joined, comments and blanks dropped."""
    commands, pending, start = [], "", first_line
    for number, line in enumerate(lines, start=first_line):
        if not pending:
            start = number
        joined = f"{pending} {line.strip()}" if pending else line
        if joined.rstrip().endswith("\\"):
            pending = joined.rstrip()[:-1].rstrip()
            continue
        pending = ""
        if command := strip_comment(joined).strip():
            commands.append(Command(command, start))
    return commands


def examples(first_line: int, lines: list[str]) -> list[Command]:
    """`$ python scripts/...` lines of a plain block, each with the output that follows it.

    The expected line is the first `error:` paragraph (README wraps it; joined with spaces),
    or, where none is shown, the first line of output.
    """
    found: list[tuple[str, int, list[str]]] = []
    for number, line in enumerate(lines, start=first_line):
        if line.startswith("$ "):
            found.append((strip_comment(line[2:]).strip(), number, []))
        elif found:
            found[-1][2].append(line)
    commands = []
    for text, number, output in found:
        starts = [i for i, line in enumerate(output) if line.startswith("error:")]
        if starts:
            paragraph = []
            for line in output[starts[0] :]:
                if not line.strip():
                    break
                paragraph.append(line.strip())
            expected = " ".join(paragraph)
        else:
            expected = next((line.strip() for line in output if line.strip()), "")
        commands.append(Command(text, number, expected, is_example=True))
    return commands


def readme_commands() -> list[Command]:
    """Every command README.md shows, in README order."""
    commands = []
    for language, first_line, lines in code_blocks(README.read_text(encoding="utf-8")):
        if language == "bash":
            commands += bash_commands(first_line, lines)
        elif language == "python":
            commands.append(Command("\n".join(lines), first_line, is_python=True))
        elif not language and lines and lines[0].startswith("$ python scripts/"):
            commands += examples(first_line, lines)
    return commands


def exit_codes() -> dict[int, str]:
    """README's exit-code table: code -> meaning."""
    lines = README.read_text(encoding="utf-8").splitlines()
    start = lines.index("| exit code | meaning |")
    codes = {}
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        code, meaning = (cell.strip() for cell in line.strip("|").split("|"))
        codes[int(code)] = meaning
    return codes


def documented_exit_code(expected: str | None) -> int:
    """An example's exit code as README's table documents it: the row whose meaning starts
    the error (`training diverged`), else the `refused` row; without an error, `finished`."""
    codes = exit_codes()
    if not expected or not expected.startswith("error:"):
        return next(code for code, meaning in codes.items() if meaning == "finished")
    message = expected.removeprefix("error:").strip()
    for code, meaning in codes.items():
        if message.startswith(meaning.split(" (")[0]):
            return code
    return next(code for code, meaning in codes.items() if "refused" in meaning)


def as_pattern(expected: str) -> re.Pattern[str]:
    """README's expected line as a pattern: each run of digits stands for any number (they
    differ between machines), `…` for any text (README's elisions); the rest is literal."""
    parts = re.split(r"(\d+|…)", expected)
    regex = "".join(
        r"\d+" if part.isdigit() else ".*" if part == "…" else re.escape(part) for part in parts
    )
    return re.compile(regex)


def skip_reason(command: str) -> str | None:
    """SKIP's reason for this command (its longest matching prefix), or None."""
    prefixes = [prefix for prefix in SKIP if command.startswith(prefix)]
    return SKIP[max(prefixes, key=len)] if prefixes else None


class Unresolved(Exception):
    """A placeholder no folder made by an earlier command matches."""


def folder_pattern(name: str) -> str:
    """A folder name with placeholders as a regex (the rules above PLACEHOLDER)."""
    regex = ""
    for piece in re.split(rf"(<time>|…|{TIME})", name):
        if piece == "<time>" or re.fullmatch(TIME, piece):
            regex += TIME
        else:
            regex += ".*" if piece == "…" else re.escape(piece)
    timed = re.search(rf"<time>|{TIME}", name)
    return regex + r"(_\d+)?" if timed else regex  # `_2`: claimed in the same second


def resolve(path: str, root: Path) -> str:
    """A README path with placeholders -> the newest real path under `root` it names."""
    matches = [root]
    for part in path.split("/"):
        if not PLACEHOLDER.search(part):
            matches = [match / part for match in matches]
            continue
        matches = [
            child
            for match in matches
            if match.is_dir()
            for child in match.iterdir()
            if re.fullmatch(folder_pattern(part), child.name)
        ]
    existing = [match for match in matches if match.exists()]
    if not existing:
        raise Unresolved(f"{path!r}: no folder made by an earlier README command matches")
    return str(max(existing, key=lambda p: str(p.relative_to(root))).relative_to(root))


def resolve_placeholders(command: str, root: Path) -> str:
    """The command with each placeholder path (`run=logs/runs/<time>_x`) made real, typed
    as a user types it: unquoted, `=` and `,` included."""

    def real(match: re.Match[str]) -> str:
        key, path = re.fullmatch(r"([A-Za-z_+][\w.]*=)?(.*)", match.group()).groups()
        return (key or "") + resolve(path, root)

    return re.sub(rf"\S*(?:<time>|…|{TIME})\S*", real, command)


def resolve_python_placeholders(code: str, root: Path) -> str:
    """A ```python block with each placeholder path in a string literal made real."""

    def real(match: re.Match[str]) -> str:
        return match.group(1) + resolve(match.group(2), root) + match.group(1)

    return re.sub(rf"([\"'])([^\"'\n]*(?:<time>|…|{TIME})[^\"'\n]*)\1", real, code)


# A ```python block runs as one Jupyter cell: its statements, then its last line, if an
# expression, shown as Jupyter shows it: `_repr_html_()` where the value has one (which must
# give a str), else its repr. The cell is read from stdin.
JUPYTER_CELL = """
import ast, sys
cell = ast.parse(sys.stdin.read(), "<README cell>")
last = cell.body.pop() if cell.body and isinstance(cell.body[-1], ast.Expr) else None
scope = {"__name__": "__main__"}
exec(compile(cell, "<README cell>", "exec"), scope)
if last is not None:
    value = eval(compile(ast.Expression(last.value), "<README cell>", "eval"), scope)
    html = getattr(value, "_repr_html_", None)
    shown = html() if html is not None else repr(value)
    assert isinstance(shown, str), f"_repr_html_ gave {type(shown).__name__}, not str"
    print(f"[shown: {len(shown)} characters]", shown[:200])
"""


def run_cell(code: str, root: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """A ```python block as one Jupyter cell, in a fresh process of the environment."""
    return subprocess.run(
        [str(VENV / "bin" / "python"), "-c", JUPYTER_CELL], input=code, cwd=root, env=env,
        capture_output=True, text=True, timeout=TIMEOUT_S,
    )  # fmt: skip


# ---------------------------------------------------------------- running commands


@pytest.fixture(scope="session")
def scratch(tmp_path_factory) -> Path:
    """The repository's files (what `git ls-files` lists, and new files not ignored) in a
    tmp folder, with `.venv` a link to the environment running the tests."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    root = tmp_path_factory.mktemp("readme") / "attnlab"
    for name in filter(None, listed.split("\0")):
        if (ROOT / name).is_file():  # a deleted file stays listed until committed
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, root / name)
    (root / ".venv").symlink_to(VENV, target_is_directory=True)
    return root


@pytest.fixture(scope="session")
def user_env(scratch: Path) -> dict[str, str]:
    """A user's shell in the scratch copy, with the environment's bin first on PATH."""
    env = {key: value for key, value in os.environ.items() if key != "VIRTUAL_ENV"}
    path = [str(VENV / "bin")]
    if shutil.which("uv") is None and os.environ.get("UV"):  # `uv run` tells children: UV
        path.append(str(Path(os.environ["UV"]).parent))
    env.update(
        PATH=os.pathsep.join([*path, env.get("PATH", "")]),
        PYTHONPATH=str(scratch),  # `src` is the scratch copy's, not the installed one
        OMP_NUM_THREADS="1",
        # `uv run X` runs X in .venv without syncing it first, so the environment shared
        # with the tests is never re-synced or changed (uv run's own --no-sync, as a variable)
        UV_NO_SYNC="1",
    )
    return env


def first_error(output: str) -> str:
    """The line a failure report leads with: the first `error:` line, else the exception
    raised, else the first line (Hydra's own errors name no exception)."""
    lines = [line.strip() for line in re.split(r"[\r\n]+", output) if line.strip()]
    for line in lines:
        if line.startswith("error:"):
            return line
    exceptions = [line for line in lines if re.match(r"\w+(Error|Exception)\b", line)]
    return exceptions[-1] if exceptions else (lines[0] if lines else "(no output)")


def failure(command: str, why: str, output: str, errors: str = "") -> str:
    """What a failed command says: its first error line, then the end of its output (the
    progress bar's redraws as lines), stderr last."""
    tail = re.sub(r"\r(?!\n)", "\n", output + errors)[-4000:]
    first = first_error(errors + "\n" + output)
    return f"`{command}` {why}\nfirst error line: {first}\n--- output ---\n{tail}"


def run_until_first_checkpoint(typed: str, root: Path, env: dict[str, str]) -> str:
    """Start the run and SIGKILL it once its folder holds checkpoints/last.ckpt."""
    runs = root / "logs" / "runs"
    before = set(runs.iterdir()) if runs.is_dir() else set()
    log = root / "logs" / f".killed_{time.time_ns()}.out"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as out:
        process = subprocess.Popen(
            ["bash", "-c", typed], cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + TIMEOUT_S
        try:
            while time.monotonic() < deadline:
                new = set(runs.iterdir()) - before if runs.is_dir() else set()
                if any((folder / "checkpoints" / "last.ckpt").is_file() for folder in new):
                    break
                if process.poll() is not None:
                    pytest.fail(
                        failure(typed, "ended before its first checkpoint", log.read_text())
                    )
                time.sleep(0.2)
            else:
                pytest.fail(failure(typed, "wrote no checkpoint in time", log.read_text()))
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    output = log.read_text()
    log.unlink()
    return output


def port_is_free(port: int) -> bool:
    """Whether `tensorboard` can take this port on localhost (as typed, it takes 6006)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("localhost", port))
        except OSError:
            return False
        return True


def check_tensorboard(typed: str, root: Path, env: dict[str, str]) -> None:
    """Serve `logs`, wait until its HTTP API lists every run that has events, then stop."""
    port = 6006  # TensorBoard's default, as typed
    if not port_is_free(port):  # another TensorBoard (or test) has it on this machine
        port = free_port()
        typed += f" --port {port}"
    expected = {
        f"runs/{folder.name}"
        for folder in (root / "logs" / "runs").iterdir()
        if any(folder.glob("events.out.tfevents.*"))
    }
    assert expected, "no run with TensorBoard events to look at"
    log = root / "logs" / ".tensorboard.out"
    with log.open("w") as out:
        process = subprocess.Popen(
            ["bash", "-c", typed], cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        runs: list[str] = []
        try:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and not expected <= set(runs):
                if process.poll() is not None:
                    pytest.fail(failure(typed, f"exited ({process.returncode})", log.read_text()))
                try:
                    url = f"http://localhost:{port}/data/runs"
                    with urllib.request.urlopen(url, timeout=10) as response:
                        runs = json.loads(response.read())
                except OSError:
                    pass
                time.sleep(0.5)
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
    assert expected <= set(runs), failure(
        typed, f"listed {runs} at /data/runs, not {sorted(expected)}", log.read_text()
    )
    log.unlink()


COMMANDS = readme_commands()


@pytest.mark.readme  # ~6 minutes: `pytest -m readme`, run by CI after the suite
@pytest.mark.parametrize("command", COMMANDS, ids=[command.id for command in COMMANDS])
def test_readme_command(command: Command, scratch: Path, user_env: dict[str, str]) -> None:
    """The command, as typed (placeholders made real), does what README says: exit 0 for a
    ```bash command or a ```python cell; an example's documented exit code and its first
    `error:` line."""
    if reason := skip_reason(command.text):
        pytest.skip(reason)
    resolved = resolve_python_placeholders if command.is_python else resolve_placeholders
    try:
        typed = resolved(command.text, scratch)
    except Unresolved as err:
        pytest.fail(f"`{command.text}`: {err}")
    if command.is_python:
        proc = run_cell(typed, scratch, user_env)
        assert proc.returncode == 0, failure(typed, "failed", proc.stdout, proc.stderr)
        return
    if command.text in MAX_STEPS:
        typed += f" trainer.max_steps={MAX_STEPS[command.text]}"

    if command.text.startswith("tensorboard "):
        check_tensorboard(typed, scratch, user_env)
        return
    if command.text in KILLED_AFTER_FIRST_CHECKPOINT:
        output = run_until_first_checkpoint(typed, scratch, user_env)
        assert "Traceback" not in output, failure(typed, "printed a traceback", output)
        return

    proc = subprocess.run(
        ["bash", "-c", typed], cwd=scratch, env=user_env, capture_output=True, text=True,
        timeout=TIMEOUT_S,
    )  # fmt: skip
    wanted = documented_exit_code(command.expected) if command.is_example else 0
    assert proc.returncode == wanted, failure(
        typed, f"exited {proc.returncode}, not {wanted}", proc.stdout, proc.stderr
    )
    assert "Traceback" not in proc.stdout + proc.stderr, failure(
        typed, "printed a traceback", proc.stdout, proc.stderr
    )
    if command.is_example:
        if command.expected.startswith("error:"):
            real = first_error(proc.stderr + "\n" + proc.stdout)
        else:
            real = next((line for line in proc.stdout.splitlines() if line.strip()), "")
        assert as_pattern(command.expected).fullmatch(real.strip()), (
            f"`{typed}` printed\n  {real.strip()}\nwhere README shows\n  {command.expected}"
        )


def test_every_special_case_names_a_readme_command() -> None:
    """SKIP, MAX_STEPS and KILLED_AFTER_FIRST_CHECKPOINT name commands README still has (a
    command edited in README must be looked at again here), and the parser finds them."""
    texts = [command.text for command in COMMANDS]
    assert any(text.startswith("uv run scripts/train.py") for text in texts)
    assert any(command.is_example for command in COMMANDS)
    assert any(command.is_python for command in COMMANDS)
    for prefix in SKIP:
        assert any(skip_reason(text) == SKIP[prefix] for text in texts), f"SKIP: {prefix!r}"
    for text in [*MAX_STEPS, *KILLED_AFTER_FIRST_CHECKPOINT]:
        assert text in texts, f"not a README command (as typed): {text!r}"
        assert skip_reason(text) is None, f"both run and skipped: {text!r}"


def test_the_parser_reads_readme_as_bash_does() -> None:
    """Continuations, comments (not `#` inside quotes) and placeholders, on a made-up block."""
    block = [
        "# a comment line",
        "python a.py -m x=1 \\",
        '    y=2 prompt="a # b"   # trailing comment',
        "",
        "tensorboard --logdir logs",
    ]
    assert [c.text for c in bash_commands(10, block)] == [
        'python a.py -m x=1 y=2 prompt="a # b"',
        "tensorboard --logdir logs",
    ]
    (example,) = examples(5, ["$ python scripts/x.py a=1   # note", "error: one", "two", ""])
    assert (example.text, example.expected, example.line) == (
        "python scripts/x.py a=1",
        "error: one two",
        5,
    )
    assert as_pattern("error: step 14 of …/x (21.6 GiB)").fullmatch(
        "error: step 9 of /a/b/x (3.0 GiB)"
    )
    assert not as_pattern("error: step 14 of").fullmatch("error: step x of")
    assert documented_exit_code("error: training diverged at step 1") == 3
    assert documented_exit_code("error: heads=3 does not divide") == 2
    assert documented_exit_code("model: logs/runs/x") == 0


def test_placeholders_resolve_to_the_newest_folder_an_earlier_command_made(tmp_path) -> None:
    for name in [
        "2026-01-01_00-00-00_default",
        "2026-01-02_00-00-00_default",
        "2026-01-02_00-00-00_default_2",  # claimed in the same second as the one before
        "2026-01-03_00-00-00_heads=2,scale=false",
    ]:
        (tmp_path / "logs" / "runs" / name / "checkpoints").mkdir(parents=True)
    assert (
        resolve_placeholders("python x.py ckpt_path=logs/runs/<time>_default/checkpoints", tmp_path)
        == "python x.py ckpt_path=logs/runs/2026-01-02_00-00-00_default_2/checkpoints"
    )
    assert resolve_placeholders(
        'run=logs/runs/2026-11-26_11-28-47_heads=2,scale=false prompt="a b"', tmp_path
    ) == ('run=logs/runs/2026-01-03_00-00-00_heads=2,scale=false prompt="a b"')
    assert resolve_placeholders("logs/runs/…scale=…/checkpoints", tmp_path) == (
        "logs/runs/2026-01-03_00-00-00_heads=2,scale=false/checkpoints"
    )
    with pytest.raises(Unresolved):
        resolve_placeholders("logs/multiruns/<time>_temperature", tmp_path)
    with pytest.raises(Unresolved):
        resolve_placeholders("logs/runs/<time>_default/metrics.json", tmp_path)


def test_a_python_block_runs_as_a_jupyter_cell(tmp_path) -> None:
    """Placeholders in its string literals are made real; its last expression is shown by
    `_repr_html_` (as Jupyter shows it); an error fails the cell."""
    (tmp_path / "logs" / "runs" / "2026-01-02_00-00-00_x=1,y=2").mkdir(parents=True)
    cell = resolve_python_placeholders("p = 'logs/runs/<time>_x=1,y=2'\nprint(p)", tmp_path)
    assert cell == "p = 'logs/runs/2026-01-02_00-00-00_x=1,y=2'\nprint(p)"
    first = next(command for command in COMMANDS if command.is_python)
    assert first.text.startswith("from src.inspect import load_run")
    shown = "class V:\n    def _repr_html_(self):\n        return '<b>v</b>'\nimport os\nV()"
    proc = run_cell(shown, tmp_path, dict(os.environ))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "[shown: 8 characters] <b>v</b>\n"
    assert run_cell("1 / 0", tmp_path, dict(os.environ)).returncode != 0
