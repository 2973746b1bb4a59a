"""The code's layout holds: imports run one way, lower floors first; no module reaches into
another's private names; pre-flight checks load no torch; files stay small enough to read
whole. Read from the source itself (ast), so a new file is checked as soon as it exists."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import ROOT

SRC = ROOT / "src"
# Each package of src/, by floor: a module may import its own package and lower floors only.
FLOORS = {
    "paths": 0,
    "validation": 0,
    "process_exit": 0,
    "modules": 1,
    "data": 1,
    "runs": 1,
    "preflight": 2,
    "analysis": 3,
    "training": 4,
    "inspect": 5,
    "bench": 5,
}


def python_files(*folders: Path) -> list[Path]:
    return sorted(p for folder in folders for p in folder.rglob("*.py"))


def package_of(path: Path) -> str:
    return path.relative_to(SRC).parts[0].removesuffix(".py")


def src_imports(path: Path) -> list[tuple[str, list[str], int]]:
    """(module imported, names imported from it, line) for every `src.` import in the file,
    function-level imports included."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "src" or node.module.startswith("src."):
                found.append((node.module, [a.name for a in node.names], node.lineno))
        elif isinstance(node, ast.Import):
            found += [(a.name, [], node.lineno) for a in node.names if a.name.startswith("src.")]
    return found


def test_every_package_of_src_has_a_floor():
    packages = {package_of(p) for p in python_files(SRC) if p.parent != SRC or p.stem != "__init__"}
    assert packages == set(FLOORS), "a new package of src/ needs its floor in FLOORS"


@pytest.mark.parametrize("path", python_files(SRC), ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_run_one_way(path: Path):
    if path.parent == SRC and path.stem == "__init__":
        return
    mine = package_of(path)
    for module, names, line in src_imports(path):
        parts = module.split(".")
        theirs = parts[1] if len(parts) > 1 else names[0]
        assert theirs == mine or FLOORS[theirs] < FLOORS[mine], (
            f"{path.relative_to(ROOT)}:{line} imports {module} ({theirs}, floor "
            f"{FLOORS[theirs]}) from {mine} (floor {FLOORS[mine]}): imports run downwards only"
        )


@pytest.mark.parametrize(
    "path",
    python_files(SRC, ROOT / "scripts", ROOT / "tests"),
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_no_module_imports_another_modules_private_names(path: Path):
    for module, names, line in src_imports(path):
        private = [n for n in names if n.startswith("_")]
        assert not private, f"{path.relative_to(ROOT)}:{line} imports {private} from {module}"


def test_preflight_imports_no_torch():
    """A bad value is refused in a second: the launching process checks it before torch."""
    modules = [f"src.preflight.{p.stem}" for p in (SRC / "preflight").glob("*.py")]
    code = f"import sys; import {', '.join(modules)}; print('torch' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False"


def test_files_are_small_enough_to_read_whole():
    too_long = {
        str(p.relative_to(ROOT)): n
        for folder, limit in ((SRC, 350), (ROOT / "scripts", 120))
        for p in python_files(folder)
        if (n := len(p.read_text().splitlines())) > limit
    }
    assert not too_long, f"over 350 lines in src/ or 120 in scripts/: {too_long}"
    loose = sorted(p.name for p in SRC.glob("*.py"))
    assert len(loose) <= 4, f"loose files in src/: {loose}; give them a package"
