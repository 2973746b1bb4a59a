"""compare()'s figures on hand-made sweeps (real TensorBoard events, no training), read as
matplotlib objects, not pixels: the figures compare() saves are caught at savefig. Which
panels they have and which curves each holds; whether their log axes can be read."""

import itertools

import pytest
from matplotlib.figure import Figure

from src.analysis import metric_names as names
from src.analysis.compare import compare
from tests.helpers import make_run_folder

STEPS = (0, 20, 40, 60)


@pytest.fixture
def saved(monkeypatch) -> dict[str, Figure]:
    """{file name: the Figure} for every figure saved while the test runs."""
    figures = {}
    original = Figure.savefig

    def savefig(figure, fname, *args, **kwargs):
        figures[str(fname).rsplit("/", 1)[-1]] = figure
        return original(figure, fname, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", savefig)
    return figures


def _sweep(root, knobs: list[dict[str, object]], losses=(0.4, 0.2, 0.1, 0.05)) -> None:
    """One finished run per `knobs` (heads, and task.D when given), its val loss falling
    through `losses` over STEPS (scaled a little per run, so no two curves coincide)."""
    for i, knob in enumerate(knobs):
        d = f"  D: {knob['D']}\n" if "D" in knob else ""
        config = f"heads: {knob['heads']}\nseed: 0\ntask:\n  _target_: src.data.tasks.Sort\n{d}"
        scale = 1 + 0.02 * i
        loss = [(s, v * scale) for s, v in zip(STEPS, losses)]
        entropy = [(s, 0.9 - 0.1 * k) for k, s in enumerate(STEPS)]
        metrics = {names.VAL_LOSS: loss[-1][1], names.VAL_EXACT_MATCH: 0.5}
        make_run_folder(
            root,
            f"{i}_run",
            config=config,
            record={"status": "finished", "metrics": metrics},
            curves={names.VAL_LOSS: loss, names.ATTN_ENTROPY: entropy},
        )


def _loss_panels(figure: Figure) -> list:
    """The panels of loss_curves.png that show the val loss against the step."""
    return [ax for ax in figure.axes if ax.get_ylabel() == "val loss"]


def _curves(ax) -> list[str]:
    """The legend labels of the curves drawn in a panel (one per configuration shown)."""
    return [line.get_label() for line in ax.get_lines() if not line.get_label().startswith("_")]


def test_loss_curves_are_faceted_by_the_knob_not_on_the_legend(tmp_path, saved):
    """heads x task.D, as in heads_phase: one loss panel per D, the heads on its legend."""
    grid = [{"heads": h, "D": d} for d, h in itertools.product((2, 3), (1, 2, 3, 4, 6))]
    _sweep(tmp_path, grid)
    compare(tmp_path)
    panels = _loss_panels(saved["loss_curves.png"])
    assert len(panels) == 2
    assert sorted("task.D=2" in ax.get_title() for ax in panels) == [False, True]
    assert sorted("task.D=3" in ax.get_title() for ax in panels) == [False, True]
    for ax in panels:
        assert [label.split(" ")[0] for label in _curves(ax)] == [
            f"heads={h}" for h in (1, 2, 3, 4, 6)
        ]


def test_one_knob_keeps_one_panel(tmp_path, saved):
    _sweep(tmp_path, [{"heads": h} for h in (1, 2, 4)])
    compare(tmp_path)
    (panel,) = _loss_panels(saved["loss_curves.png"])
    assert len(_curves(panel)) == 3


def test_a_few_configurations_over_two_knobs_share_one_panel(tmp_path, saved):
    """Three width controls (heads and D both vary): one panel of three curves, each named by
    its whole configuration, not three panels of one curve."""
    _sweep(tmp_path, [{"heads": 1, "D": 2}, {"heads": 1, "D": 3}, {"heads": 2, "D": 3}])
    compare(tmp_path)
    (panel,) = _loss_panels(saved["loss_curves.png"])
    assert [label.split(" ")[0] for label in _curves(panel)] == [
        "heads=1,task.D=2",
        "heads=1,task.D=3",
        "heads=2,task.D=3",
    ]


def test_a_panel_holds_at_most_six_curves(tmp_path, saved):
    """Eight values of one knob: split over panels, each value drawn once."""
    _sweep(tmp_path, [{"heads": h} for h in range(1, 9)])
    compare(tmp_path)
    panels = _loss_panels(saved["loss_curves.png"])
    assert all(len(_curves(ax)) <= 6 for ax in panels)
    drawn = [label.split(" ")[0] for ax in panels for label in _curves(ax)]
    assert sorted(drawn) == sorted(f"heads={h}" for h in range(1, 9))


def _labelled_ticks(ax) -> list[tuple[float, str]]:
    """(value, text) of each y tick label shown inside the panel's visible range."""
    ax.figure.canvas.draw()
    low, high = sorted(ax.get_ylim())
    labels = ax.get_yticklabels() + ax.get_yticklabels(minor=True)
    return [
        (label.get_position()[1], label.get_text())
        for label in labels
        if label.get_text() and low <= label.get_position()[1] <= high
    ]


@pytest.mark.parametrize(
    "losses",
    [
        (0.4, 0.2, 0.1, 0.05),  # one decade: a single `0.1` was all a user could read
        (3e-5, 2.6e-5, 2.3e-5, 2.1e-5),  # a factor of 1.5: not one decade tick inside
        (3.0, 0.1, 1e-3, 1e-5),  # many decades
    ],
    ids=["one decade", "within a decade", "many decades"],
)
def test_log_axes_have_several_labelled_ticks_that_read_as_their_values(tmp_path, saved, losses):
    _sweep(tmp_path, [{"heads": h} for h in (1, 2, 4)], losses)
    compare(tmp_path)
    log_axes = [ax for figure in saved.values() for ax in figure.axes if ax.get_yscale() == "log"]
    assert len(log_axes) >= 2  # the loss against the step, and the final loss
    for ax in log_axes:
        ticks = _labelled_ticks(ax)
        assert len(ticks) >= 3, (ax.get_title(), ax.get_ylim(), ticks)
        for value, text in ticks:  # plain numbers that say where they sit
            assert float(text.replace("\N{MINUS SIGN}", "-")) == pytest.approx(value, rel=0.01)


@pytest.mark.parametrize("ratio", [1.02, 1.3, 2, 4, 9.9, 10, 30, 99, 1e3, 1e6, 1e12])
@pytest.mark.parametrize("low", [1.3e-6, 0.011, 0.07, 0.5, 3.0])
def test_log_ticks_give_three_or_more_inside_any_range(low, ratio):
    from src.analysis.log_axis import log_ticks

    ticks = log_ticks(low, low * ratio)
    assert 3 <= len(ticks) <= 12 and ticks == sorted(set(ticks))
    assert all(low <= t <= low * ratio for t in ticks)
