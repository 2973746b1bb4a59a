"""How TensorBoard's TIME SERIES tab orders its cards, reproduced to test tag names against.

The rules, from TensorBoard's web app (tensorflow/tensorboard, read at 2.21, the version
installed here):
- tensorboard/webapp/metrics/utils.ts: `compareTagNames` sorts every card (scalar, image and
  histogram alike: the plugin plays no part) by its tag, comparing runs of digits as numbers
  and treating `/` and digits as breaks that sort first; `groupCardIdWithMetdata` groups the
  sorted cards by the tag's part before the first `/`, in order of first appearance.
- tensorboard/webapp/metrics/store/metrics_reducers.ts: on the first load only the first
  two groups (`groups.slice(0, 2)`) are expanded; every other group opens collapsed.
- tensorboard/webapp/metrics/views/main_view/common_selectors.ts: the same comparator
  orders the cards the page renders.
Nothing is pinned on a first visit, so these decide the first screen.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable

__all__ = ["EXPANDED_GROUPS", "card_groups", "compare_tag_names", "sorted_tags"]

EXPANDED_GROUPS = 2  # metrics_reducers.ts: the first two tag groups open on the first load


def _is_digit(c: str) -> bool:
    return "0" <= c <= "9"


def _is_break(c: str) -> bool:
    return c == "/" or _is_digit(c)


def _consume_number(s: str, i: int) -> int:
    """Where the number starting before `i` ends: digits, one `.`, an exponent (utils.ts
    `consumeNumber`, a small state machine)."""
    state = "natural"
    while i < len(s):
        c = s[i]
        if state == "natural":
            if c == ".":
                state = "real"
            elif c in "eE":
                state = "exponent_sign"
            elif not _is_digit(c):
                break
        elif state == "real":
            if c in "eE":
                state = "exponent_sign"
            elif not _is_digit(c):
                break
        elif state == "exponent_sign":
            if _is_digit(c) or c in "+-":
                state = "exponent"
            else:
                break
        elif not _is_digit(c):  # exponent
            break
        i += 1
    return i


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:  # JavaScript's Number("1e") is NaN, which compares neither way
        return math.nan


def compare_tag_names(a: str, b: str) -> int:
    """-1, 0 or 1, as TensorBoard's `compareTagNames` (utils.ts) orders tags `a` and `b`."""
    i = j = 0
    while True:
        if i == len(a):
            return 0 if j == len(b) else -1
        if j == len(b):
            return 1
        if _is_digit(a[i]) and _is_digit(b[j]):
            i_start, j_start = i, j
            i, j = _consume_number(a, i + 1), _consume_number(b, j + 1)
            x, y = _number(a[i_start:i]), _number(b[j_start:j])
            if x < y:
                return -1
            if x > y:
                return 1
            continue
        if _is_break(a[i]):
            if not _is_break(b[j]):
                return -1
        elif _is_break(b[j]):
            return 1
        elif a[i] < b[j]:
            return -1
        elif a[i] > b[j]:
            return 1
        i += 1
        j += 1


def sorted_tags(tags: Iterable[str]) -> list[str]:
    """Tags in the order Time Series shows their cards."""
    return sorted(tags, key=functools.cmp_to_key(compare_tag_names))


def card_groups(tags: Iterable[str]) -> list[tuple[str, list[str]]]:
    """[(group name, its tags in order)] as Time Series lays them out (utils.ts
    `groupCardIdWithMetdata`: the group is the tag up to its first `/`)."""
    groups: dict[str, list[str]] = {}
    for tag in sorted_tags(tags):
        groups.setdefault(tag.split("/", 1)[0], []).append(tag)
    return list(groups.items())
