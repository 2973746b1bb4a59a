"""The value checks every layer shares, worded in the layer's own argument names.

A layer says what is wrong with a value (`head_dim=0 is not allowed: it must be a positive
integer.`); it does not know which config key fed it. The config layer adds that, once
(`src.preflight.checks.name_config_keys`). Plain Python: layers import it without torch,
Lightning or Hydra coming along.
"""

from __future__ import annotations

import math


def is_int(value: object) -> bool:
    """An int that is not a bool: True is an int to Python, but never a size here."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: object) -> bool:
    """A finite int or float (not a bool, not nan or inf)."""
    return (is_int(value) or isinstance(value, float)) and math.isfinite(value)


def require(condition: bool, message: str) -> None:
    """Raise ValueError(message) unless `condition` holds."""
    if not condition:
        raise ValueError(message)


def check_positive_int(name: str, value: object) -> None:
    """`name=value` must be an integer >= 1 (a size, a count)."""
    require(
        is_int(value) and value > 0,
        f"{name}={value!r} is not allowed: it must be a positive integer.",
    )


def check_positive_number(name: str, value: object, hint: str = "") -> None:
    """`name=value` must be a finite number > 0; `hint` (a sentence) may say what it means."""
    why = f" {hint}" if hint else ""
    require(
        is_number(value) and value > 0,
        f"{name}={value!r} is not allowed: it must be a positive number.{why}",
    )


def as_typed(value: object) -> str:
    """A config value as a user types it: true/false and null, not Python's True/None, and a
    number as written (scale=0.25). The one spelling of a knob's value in TensorBoard's
    hparams tab, in checkpoint refusals and in compare's labels."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return "null" if value is None else str(value)
