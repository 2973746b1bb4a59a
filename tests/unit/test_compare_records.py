"""compare() and load_runs() on sweeps whose records are damaged, copied or resumed: hand-made
run folders (.hydra/config.yaml, metrics.json, real TensorBoard event files), no training,
all in this process (compare.py run as a script on such folders:
tests/integration/test_compare_records.py)."""

import pytest

from src.analysis import metric_names as names
from src.analysis.compare import compare
from src.analysis.runs import CompareError, load_runs
from tests.helpers import finished_record, make_run_folder, seeds_column

# --- damaged records -----------------------------------------------------------------------

DAMAGED = {  # what metrics.json holds -> why compare says it is damaged
    "not JSON": ("{status: finished}", "not JSON: Expecting property name enclosed in double"),
    "truncated": ('{"status": "finished", "metrics": {"val/loss": 0.1', "truncated JSON: "),
    "empty": ("", "empty"),
    "not an object": ("[1, 2]", "a JSON array, not an object"),
    "metrics not an object": (
        '{"status": "finished", "metrics": [0.1]}',
        '"metrics" is a JSON array, not an object of numbers',
    ),
    "metrics not numbers": (
        '{"status": "finished", "metrics": {"val/loss": "low"}}',
        '"metrics" has \'val/loss\': "low", not a number',
    ),
    "not text": (b"\xff\xfe{}", "not UTF-8 text"),
    "a folder": (None, "unreadable: Is a directory"),
    "a link to nothing": (None, "unreadable: a link to nothing"),
}


@pytest.fixture(scope="module")
def damaged_sweep(tmp_path_factory):
    """heads=1: one finished run; heads=2: one run per kind of damaged record."""
    sweep = tmp_path_factory.mktemp("damaged")
    make_run_folder(sweep, "0_heads=1", heads=1, record=finished_record())
    runs = {}
    for seed, (kind, (content, _)) in enumerate(DAMAGED.items()):
        runs[kind] = make_run_folder(sweep, f"{seed + 1}_heads=2,seed={seed}", 2, seed, content)
    (runs["a folder"] / "metrics.json").mkdir()
    (runs["a link to nothing"] / "metrics.json").symlink_to(sweep / "nowhere.json")
    return sweep, runs, compare(sweep).text


@pytest.mark.parametrize("kind", DAMAGED)
def test_a_damaged_record_is_named_with_why_and_its_run_counted(damaged_sweep, kind):
    sweep, runs, output = damaged_sweep
    (line,) = [line for line in output.splitlines() if str(runs[kind]) + "/" in line]
    assert line.startswith(f"damaged record: {runs[kind] / 'metrics.json'} (")
    assert DAMAGED[kind][1] in line and line.endswith("; counted as damaged")
    assert {r.path: r.status for r in load_runs(sweep)}[runs[kind]] == "damaged"


def test_damaged_records_are_counted_in_the_table_and_the_summary(damaged_sweep):
    sweep, runs, output = damaged_sweep
    summary = (sweep / "summary.md").read_text()
    assert seeds_column(summary, "heads=2") == f"0/{len(DAMAGED)} (damaged: {len(DAMAGED)})"
    assert seeds_column(summary, "heads=1") == "1/1"
    assert f"1/{len(DAMAGED) + 1} runs finished (damaged: {len(DAMAGED)})" in summary
    assert output.startswith("| configuration |")  # the table first, then the named records
    assert sum(line.startswith("- damaged record: ") for line in summary.splitlines()) == len(
        DAMAGED
    )


def test_each_status_is_counted_on_its_own(tmp_path):
    """`failed` and `damaged` are counted like diverged, running and unfinished."""
    make_run_folder(tmp_path, "0", heads=1, record=finished_record())
    statuses = ["finished", "diverged", "failed", "running", "failed", None]
    for seed, status in enumerate(statuses):
        record = {"status": status, "step": 3, "metrics": {}} if status else "{"
        make_run_folder(tmp_path, f"{seed + 1}", heads=2, seed=seed, record=record)
    make_run_folder(tmp_path, "7", heads=2, seed=7)  # never started: no metrics.json
    compare(tmp_path)
    summary = (tmp_path / "summary.md").read_text()
    others = "damaged: 1, diverged: 1, failed: 2, running: 1, unfinished: 1"
    assert seeds_column(summary, "heads=2") == f"1/7 ({others})"
    assert summary.startswith(f"# {tmp_path.name}: Sort, 2/8 runs finished ({others})\n")


def test_a_damaged_config_is_named_and_its_run_skipped(tmp_path):
    """Without its config a run has no configuration (nor a known task): it is left out of
    the table, and said so. A damaged hydra.yaml only loses the run's experiment name."""
    make_run_folder(tmp_path, "0", heads=1, record=finished_record())
    make_run_folder(tmp_path, "1", heads=2, record=finished_record())
    cut = make_run_folder(tmp_path, "2", heads=4, record=finished_record())
    (cut / ".hydra" / "config.yaml").write_text("heads: 4\nscale: [tr")
    missing = make_run_folder(tmp_path, "3", heads=4, record=finished_record())
    (missing / ".hydra" / "config.yaml").unlink()
    (tmp_path / "1" / ".hydra" / "hydra.yaml").write_text("hydra: {runtime: [")
    output = compare(tmp_path).text
    assert [r.path.name for r in load_runs(tmp_path)] == ["0", "1"]
    assert f"damaged config: {cut / '.hydra' / 'config.yaml'} (not YAML: " in output
    assert f"damaged config: {missing / '.hydra' / 'config.yaml'} (missing); run skipped" in (
        output
    )
    assert f"damaged config: {tmp_path / '1' / '.hydra' / 'hydra.yaml'} (" in output
    assert "heads=4" not in output.split("\n\n")[0]  # no row for what cannot be placed
    for run in ("0", "1"):
        (tmp_path / run / ".hydra" / "config.yaml").write_text("{")
    with pytest.raises(CompareError, match="none of its 4 run folders has a readable"):
        load_runs(tmp_path)


# --- copied and resumed records --------------------------------------------------------------

EARLY = {names.ATTN_ENTROPY: [(10, 0.9), (20, 0.8)], names.VAL_LOSS: [(9, 2.0), (19, 1.0)]}


def test_a_copied_run_has_its_originals_curves_and_the_original_is_not_counted(tmp_path):
    earlier, sweep = tmp_path / "earlier", tmp_path / "sweep"
    original = make_run_folder(
        earlier, "0_heads=1", heads=1, record=finished_record(), curves=EARLY
    )
    copy = make_run_folder(
        sweep, "0_heads=1", heads=1, record={**finished_record(), "copied_from": str(original)}
    )
    trained = make_run_folder(sweep, "1_heads=2", heads=2, record=finished_record(), curves=EARLY)
    gone = make_run_folder(
        sweep,
        "2_heads=4",
        heads=4,
        record={**finished_record(), "copied_from": str(tmp_path / "x")},
    )
    assert not list(copy.glob("events.*"))
    runs = {r.path: r for r in load_runs(sweep)}
    assert sorted(runs) == [copy, trained, gone]  # each job folder of this sweep, once
    assert runs[copy].curves == runs[trained].curves  # the original's, same points as written
    assert runs[copy].curves[names.ATTN_ENTROPY][0] == [10, 20]
    assert runs[gone].curves == {}
    output = compare(sweep).text
    assert f"no curves for {gone}: it was copied from {tmp_path / 'x'}, which is gone" in output
    assert "(" not in seeds_column(output, "heads=1")  # 1/1: the copy is a finished run


def test_a_resumed_run_is_stitched_onto_the_runs_it_resumed(tmp_path):
    """First killed after logging step 40 (last checkpoint 30); second resumed at 30, killed
    after 70 (checkpoint 50); third resumed at 50 and finished. Each step once, from the run
    that trained it last; the earlier sweeps' folders are read but not counted."""
    first = make_run_folder(
        tmp_path / "a", "0", record={"status": "running"}, curves=_ramp(10, 40, 1.0)
    )
    second = make_run_folder(
        tmp_path / "b",
        "0",
        record={"status": "running", "resumed_from": str(first / "checkpoints" / "last.ckpt")},
        curves=_ramp(40, 70, 2.0),
    )
    sweep = tmp_path / "c"
    third = make_run_folder(
        sweep,
        "0_heads=1",
        record={**finished_record(), "resumed_from": str(second / "checkpoints" / "last.ckpt")},
        curves=_ramp(60, 90, 3.0),
    )
    alone = make_run_folder(
        sweep,
        "1_heads=2",
        heads=2,
        record={**finished_record(), "resumed_from": str(tmp_path / "gone" / "checkpoints" / "x")},
        curves=_ramp(60, 90, 3.0),
    )
    runs = {r.path: r for r in load_runs(sweep)}
    assert sorted(runs) == [third, alone]
    for tag in (names.ATTN_ENTROPY, names.VAL_LOSS):
        assert runs[third].curves[tag] == (
            list(range(10, 100, 10)),
            [1.0, 1.0, 1.0, 2.0, 2.0, 3.0, 3.0, 3.0, 3.0],
        )
        assert runs[alone].curves[tag] == ([60, 70, 80, 90], [3.0] * 4)
    output = compare(sweep).text
    assert f"curves of {alone} start where it resumed: the run it resumed, " in output
    assert "which is gone" in output


def _ramp(first: int, last: int, value: float) -> dict:
    """Points every 10 steps from `first` to `last`, all `value` (which run logged them); val/*
    written as Lightning does, one step earlier (read_curves counts steps taken)."""
    points = [(s, value) for s in range(first, last + 1, 10)]
    return {names.ATTN_ENTROPY: points, names.VAL_LOSS: [(s - 1, v) for s, v in points]}
