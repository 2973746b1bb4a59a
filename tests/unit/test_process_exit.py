"""Scripts end without the interpreter's teardown (src/process_exit.py); what they wrote,
logged or registered to run at exit is all there, and the exit code is the script's."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from src.paths import ROOT

SCRIPT = """
import atexit, logging, sys
from src.process_exit import run_then_exit

def main():
    log = logging.getLogger("demo")
    log.addHandler(logging.FileHandler(sys.argv[1]))
    log.setLevel(logging.INFO)
    log.info("logged before the end")
    atexit.register(lambda: open(sys.argv[2], "w").write("handler ran"))
    print("printed, no newline", end="")
    {ending}

run_then_exit(main, __file__)
"""


@pytest.mark.parametrize(
    "ending, code",
    [("return None", 0), ("sys.exit(3)", 3), ("sys.exit('a message')", 1), ("1 / 0", 1)],
)
def test_a_script_exits_with_its_code_and_loses_nothing(tmp_path, ending, code):
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(SCRIPT).replace("{ending}", ending))
    log, handler = tmp_path / "log.txt", tmp_path / "handler.txt"
    proc = subprocess.run(
        [sys.executable, str(script), str(log), str(handler)],
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": ""},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == code, proc.stderr
    assert proc.stdout == "printed, no newline"
    assert log.read_text() == "logged before the end\n"
    assert handler.read_text() == "handler ran"
    if ending.startswith("1 /"):
        assert "ZeroDivisionError" in proc.stderr  # the traceback, as Python prints it


def test_a_script_run_by_another_program_leaves_that_programs_exit_alone(tmp_path):
    """pytest runs scripts/train.py through runpy in its own process: the script must not
    end that process, nor replace its exit code (a failing suite would exit 0)."""
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(SCRIPT).replace("{ending}", "return None"))
    log, handler = tmp_path / "log.txt", tmp_path / "handler.txt"
    outer = (
        "import runpy, sys\n"
        f"sys.argv = [{str(script)!r}, {str(log)!r}, {str(handler)!r}]\n"
        f"runpy.run_path({str(script)!r}, run_name='__main__')\n"
        "print(' and the caller went on', end='')\n"
        "sys.exit(5)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", outer],
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": ""},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 5, proc.stderr
    assert proc.stdout == "printed, no newline and the caller went on"
    assert handler.read_text() == "handler ran"
