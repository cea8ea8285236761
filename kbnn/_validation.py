"""Argument checks, one policy: every bad argument raises `kbnn.errors.UsageError` (a
`ValueError`, one line the CLI prints as is) with the message `<name>: expected <what>, got
<value>` — the "Expected … got …" form of LCE's converter. Each check returns the value.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Collection

from kbnn.errors import UsageError

__all__ = [
    "check_choice",
    "check_int",
    "check_positive_int",
    "check_positive_number",
    "check_type",
    "fail",
]


def fail(name: str, expected: str, value) -> UsageError:
    """The error for argument `name`: `"<name>: expected <expected>, got <value!r>"`."""
    return UsageError(f"{name}: expected {expected}, got {value!r}")


def _is_int(value) -> bool:
    """Python and numpy integers; not bools."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_int(value, name: str, *, low: int | None = None, high: int | None = None) -> int:
    """`value` if it is an int (not a bool) in `low..high` (either bound optional)."""
    if (
        not _is_int(value)
        or (low is not None and value < low)
        or (high is not None and value > high)
    ):
        if low is not None and high is not None:
            expected = f"an integer in {low}..{high}"
        elif low is not None:
            expected = f"an integer >= {low}"
        elif high is not None:
            expected = f"an integer <= {high}"
        else:
            expected = "an integer"
        raise fail(name, expected, value)
    return int(value)


def check_positive_int(value, name: str, *, allow_none: bool = False) -> int | None:
    """`value` if it is an integer >= 1 (or None, when `allow_none`)."""
    if value is None and allow_none:
        return None
    if not _is_int(value) or value < 1:
        raise fail(name, "a positive integer", value)
    return int(value)


def check_positive_number(value, name: str) -> numbers.Real:
    """`value` if it is a finite real number > 0 (an int or a float, not a bool)."""
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Real)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise fail(name, "a finite number > 0", value)
    return value


def check_choice(value, name: str, choices: Collection):
    """`value` if it is one of `choices`."""
    if value not in choices:
        raise fail(name, f"one of {tuple(choices)}", value)
    return value


def check_type(value, name: str, expected_type, description: str | None = None):
    """`value` if it is an instance of `expected_type` (named by `description` in the error)."""
    if not isinstance(value, expected_type):
        what = description or getattr(expected_type, "__name__", str(expected_type))
        raise UsageError(f"{name}: expected {what}, got {type(value).__name__}")
    return value
