"""Every relative link and image in README.md and in the experiments' write-ups
(scripts/results/*/README.md) points at a file that exists, and a `#anchor` at a heading."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.helpers import ROOT

DOCS = [ROOT / "README.md", *sorted((ROOT / "scripts" / "results").glob("*/README.md"))]

LINK = re.compile(r"\]\(([^)\s]+)\)")  # [text](target) and ![alt](target)


def links(text: str) -> list[tuple[int, str]]:
    """(line number, target) of each markdown link outside fenced blocks and code spans."""
    found, fenced = [], False
    for number, line in enumerate(text.splitlines(), start=1):
        if line.startswith("```"):
            fenced = not fenced
            continue
        if not fenced:
            prose = re.sub(r"`[^`]*`", "", line)
            found += [(number, target) for target in LINK.findall(prose)]
    return found


def anchors(text: str) -> set[str]:
    """GitHub's anchors for a markdown file's headings: lower case, punctuation dropped,
    spaces as hyphens."""
    headings = re.findall(r"^#+ (.+)$", re.sub(r"(?ms)^```.*?^```", "", text), re.M)
    return {re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-") for heading in headings}


def test_the_slug_rule_on_known_headings():
    assert anchors("## When things go wrong\n### Prediction, written before any run\n") == {
        "when-things-go-wrong",
        "prediction-written-before-any-run",
    }
    assert links("[a](x.md) `[b](y.md)`\n```\n[c](z.md)\n```\n![d](e.png)") == [
        (1, "x.md"),
        (5, "e.png"),
    ]


@pytest.mark.parametrize("doc", DOCS, ids=lambda doc: str(doc.relative_to(ROOT)))
def test_every_relative_link_points_at_a_file_and_heading_that_exist(doc: Path):
    text = doc.read_text(encoding="utf-8")
    broken = []
    for line, target in links(text):
        if re.match(r"[a-z]+:", target):  # https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        file = (doc.parent / path).resolve() if path else doc
        name = file.relative_to(ROOT).as_posix() if file.is_relative_to(ROOT) else str(file)
        if not file.is_relative_to(ROOT):
            broken.append(f"line {line}: {target} leaves the repository")
        elif not file.exists():
            broken.append(f"line {line}: {target} ({name} does not exist)")
        elif anchor and anchor not in anchors(file.read_text(encoding="utf-8")):
            broken.append(f"line {line}: {target} (no heading #{anchor} in {name})")
    assert not broken, f"{doc.relative_to(ROOT)}:\n" + "\n".join(broken)


@pytest.mark.parametrize("doc", DOCS, ids=lambda doc: str(doc.relative_to(ROOT)))
def test_every_table_has_a_header_row_and_a_separator(doc: Path):
    """A markdown table renders only from a header row followed by `|---|` separators: a table
    that starts at its separator shows as a paragraph of pipes."""
    lines = re.sub(r"(?ms)^```.*?^```", "", doc.read_text(encoding="utf-8")).splitlines()
    separator = re.compile(r"^\|\s*:?-{3}")
    broken = []
    for number, line in enumerate(lines, start=1):
        starts = line.startswith("|") and (number == 1 or not lines[number - 2].startswith("|"))
        if starts and (
            separator.match(line)
            or not separator.match(lines[number] if number < len(lines) else "")
        ):
            broken.append(f"line {number}: {line[:60]}")
    assert not broken, f"tables without a header row and separator in {doc.name}: {broken}"
