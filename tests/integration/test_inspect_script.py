"""scripts/inspect_model.py as a user types it, in a fresh process: its answer, its refusal,
and no folder left behind by a refusal."""

from __future__ import annotations

import pytest

from tests.helpers import PROMPT, ROOT, run_script, snapshot

INSPECT_SCRIPT = ROOT / "scripts" / "inspect_model.py"


@pytest.mark.slow
def test_inspect_script_as_typed_and_its_refusal(trained_run, tmp_path):
    """The user's command line: an unquoted run folder with `=` and `,` in its name."""
    run_dir, *_ = trained_run
    before = snapshot(run_dir)
    ok = run_script(INSPECT_SCRIPT, f"run={run_dir}", f"prompt={PROMPT}", cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr[-3000:]
    assert "expected   a b d e" in ok.stdout
    (out,) = (tmp_path / "logs" / "inspect").iterdir()  # its own folder
    assert {p.name for p in out.glob("*.png")} == {"example1_layer0.png", "example1_layer1.png"}

    bad = run_script(INSPECT_SCRIPT, f"run={run_dir}", "prompt=e a z b", cwd=tmp_path)
    assert bad.returncode == 2
    assert "Traceback" not in bad.stderr + bad.stdout
    paragraph = bad.stderr.strip()
    assert (
        paragraph.startswith("error: prompt='e a z b': 'z' is not a glyph")
        and "\n\n" not in paragraph
    )
    assert snapshot(run_dir) == before


@pytest.mark.slow
def test_a_refused_inspection_leaves_no_folder_behind(tmp_path):
    """As typed, with the default log folder: Hydra makes logs/inspect/<time>_default/ before
    the values are checked; a refusal removes it, and nothing that was there before."""
    earlier = tmp_path / "logs" / "inspect" / "2026-01-01_00-00-00_default" / "transcript.txt"
    earlier.parent.mkdir(parents=True)
    earlier.write_text("an earlier inspection\n")
    proc = run_script(INSPECT_SCRIPT, "run=logs/runs/nowhere", "prompt=d c z", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert proc.stderr.strip().startswith("error: run=logs/runs/nowhere: no such folder")
    assert sorted(p for p in tmp_path.rglob("*")) == [
        tmp_path / "logs",
        tmp_path / "logs" / "inspect",
        earlier.parent,
        earlier,
    ]

    earlier.unlink()
    earlier.parent.rmdir()
    proc = run_script(INSPECT_SCRIPT, "run=logs/runs/nowhere", "prompt=d c z", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert not list(tmp_path.iterdir())  # no empty logs/inspect/<time>_default/, logs/inspect
