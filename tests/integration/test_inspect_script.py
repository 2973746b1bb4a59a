"""scripts/inspect_model.py as a user types it, in a fresh process: its answer, its refusal,
no folder left behind by a refusal, and its interactive page as a browser shows it: drawn
by circuitsvis for every layer, offline."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.browser import Page, needs_chromium, open_page, screenshot
from tests.helpers import PROMPT, ROOT, run_script, snapshot

INSPECT_SCRIPT = ROOT / "scripts" / "inspect_model.py"
LAYERS, HEADS = 2, 2  # the trained run's (tests/helpers.py: INSPECTED_RUN)


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
    page = out / "attention.html"
    assert f"wrote logs/inspect/{out.name}/attention.html" in ok.stdout
    generated = re.search(r"^  generated  (.*)$", ok.stdout, re.M).group(1)
    assert f"<pre>example 1: {PROMPT} | _ _ _ _\n" in page.read_text()
    assert f"\n  generated  {generated}\n" in page.read_text()

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


@pytest.fixture(scope="module")
def random_page(trained_run, tmp_path_factory) -> tuple[Path, str]:
    """`inspect_model.py run=... random=1` as typed: (its attention.html, what it printed)."""
    run_dir, *_ = trained_run
    cwd = tmp_path_factory.mktemp("user")
    proc = run_script(INSPECT_SCRIPT, f"run={run_dir}", "random=1", cwd=cwd)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (out,) = (cwd / "logs" / "inspect").iterdir()
    assert out.name.endswith("_random=1")
    return out / "attention.html", proc.stdout


@pytest.mark.slow
def test_random_writes_one_page_with_its_example(random_page):
    page, printed = random_page
    text = page.read_text()
    assert text.startswith("<!DOCTYPE html>") and "example 2" not in text
    generated = re.search(r"^  generated  (.*)$", printed, re.M).group(1)
    verdict = "all right" if "all right" in printed else "wrong"
    assert f"\n  generated  {generated}\n" in text and verdict in text
    assert text.count("CircuitsVis.render(") == LAYERS


def rendered_problems(page: Page, answer: str) -> list[str]:
    """What is missing from a page circuitsvis drew for every layer, offline: per layer, the
    head selector and zoomed view React renders (script text left out: the bundle holds
    the same words), a head tab per head; the answer; and no request off the machine."""
    dom = re.sub(r"(?s)<script\b.*?</script>", "", page.dom)
    problems = [f"requested {url}" for url in page.remote_requests()]
    layers = re.split(r"<h3>layer \d+</h3>", dom)[1:]
    if len(layers) != LAYERS:
        problems.append(f"{len(layers)} layer headings, not {LAYERS}")
    for layer, part in enumerate(layers):
        part = part.split("<h3>layer")[0]
        if "Head Selector (hover to view, click to lock)" not in part or "<canvas" not in part:
            problems.append(f"layer {layer}: circuitsvis drew nothing")
        for head in range(HEADS):
            if f">L{layer}H{head}</h4>" not in part:
                problems.append(f"layer {layer}: no tab for head L{layer}H{head}")
        if f"L{layer}H0 Zoomed" not in part:
            problems.append(f"layer {layer}: no zoomed head")
    if f"generated  {answer}" not in dom:
        problems.append(f"the answer {answer!r} is not on the page")
    return problems


def coloured_share(png: Path) -> float:
    """Share of a screenshot's pixels in colour (not white, grey or black text): the heat
    maps are, the page's text is not."""
    from matplotlib.image import imread

    pixels = imread(png)[..., :3]  # floats in [0, 1]
    return float(((pixels.max(-1) - pixels.min(-1)) > 0.2).mean())


@needs_chromium
@pytest.mark.slow
def test_the_page_renders_offline_in_a_browser(random_page, tmp_path):
    """Chromium, with every host unresolvable, opens the page from its file: circuitsvis drew
    every layer, the answer is there, nothing was requested off the machine; a screenshot
    shows the heat maps."""
    page, printed = random_page
    answer = re.search(r"^  generated  (.*)$", printed, re.M).group(1)
    opened = open_page(str(page))
    assert opened.dom, "Chromium returned no DOM"
    assert rendered_problems(opened, answer) == []
    shot = screenshot(str(page), tmp_path / "page.png")
    assert coloured_share(shot) > 0.02, "the first screen shows no heat map"


@needs_chromium
@pytest.mark.slow
def test_a_page_loading_circuitsvis_from_its_cdn_fails_those_checks(random_page, tmp_path):
    """The checks above can fail: circuitsvis's own CDN page (`str()` of its output) asks
    unpkg.com for the bundle, which an offline machine cannot reach, and draws nothing."""
    import circuitsvis.attention
    import torch

    from src.inspect.html_view import head_names

    page, printed = random_page
    answer = re.search(r"^  generated  (.*)$", printed, re.M).group(1)
    heads = []
    for layer in range(LAYERS):
        attention = torch.eye(8).expand(HEADS, 8, 8)
        drawn = circuitsvis.attention.attention_heads(
            attention=attention,
            tokens=list("abcdefgh"),
            attention_head_names=head_names(layer, HEADS),
        )
        heads.append(f"<h3>layer {layer}</h3>\n{drawn}")  # str(): circuitsvis's CDN source
    cdn = tmp_path / "cdn.html"
    cdn.write_text(f"<!DOCTYPE html><body><pre>  generated  {answer}</pre>{''.join(heads)}")
    problems = rendered_problems(open_page(str(cdn)), answer)
    assert any(p.startswith("requested https://unpkg.com/circuitsvis") for p in problems)
    assert "layer 0: circuitsvis drew nothing" in problems
    assert coloured_share(screenshot(str(cdn), tmp_path / "cdn.png")) < 0.02
