"""ISO 8601 durations, for a state's ``timeout: {duration: "PT5M"}``.

The accepted forms (designators uppercase, numbers ASCII digits):

* ``PnW``: weeks, alone (``P2W``);
* ``PnDTnHnMnS``: any non-empty subset of days, hours, minutes and seconds, in that
  order, with ``T`` before the time part (``P1D``, ``PT5M``, ``P1DT2H``, ``PT1H30S``).

A decimal fraction, with a point (ISO 8601's decimal comma is not taken), is allowed
on the smallest component given and only there: ``PT0.5S`` and ``PT1.5H`` are
durations, ``PT1.5H30M`` is not. Years and months are refused: their length varies
(a month is 28 to 31 days, a year 365 or 366), and a timeout is a fixed time.

:data:`DURATION_PATTERN`, a JSON Schema ``pattern``, matches exactly the texts
:func:`parse_duration` accepts. ``PT0S`` parses to ``0.0``: whether zero is allowed
is for the caller to say (a timeout must be positive: the schema and the loader
refuse ``PT0S`` there, not this module).
"""

from __future__ import annotations

import re

__all__ = ["DURATION_PATTERN", "parse_duration"]

_INT = "[0-9]+"
_NUM = "[0-9]+(?:[.][0-9]+)?"  # only ever on the last component: see the time part
_TIME = (
    # One alternative per possible smallest component (S, M or H), so that only that
    # one may carry a fraction: the regex, not code after it, enforces the rule.
    f"T(?:(?:{_INT}H)?(?:{_INT}M)?{_NUM}S|(?:{_INT}H)?{_NUM}M|{_NUM}H)"
)

DURATION_PATTERN = f"^P(?:{_NUM}W|{_NUM}D|(?:{_INT}D)?{_TIME})(?![\\s\\S])"
"""A JSON Schema ``pattern`` (ECMA 262 and Python ``re`` alike) matching exactly the
texts :func:`parse_duration` accepts. Like the identifier pattern it ends with
``(?![\\s\\S])`` rather than ``$``, which would also let a trailing newline through."""

_VALID = re.compile(DURATION_PATTERN)
_COMPONENT = re.compile(r"([0-9]+)(?:[.]([0-9]+))?([WDHMS])")
_SECONDS = {"W": 7 * 86_400, "D": 86_400, "H": 3_600, "M": 60, "S": 1}
# The full ISO 8601 shape, years and months included: tells "a calendar unit" apart
# from "not a duration at all", so the error can say which.
_CALENDAR = re.compile(
    rf"P(?:{_NUM}Y)?(?:{_NUM}M)?(?:{_NUM}W)?(?:{_NUM}D)?(?:T(?:{_NUM}H)?(?:{_NUM}M)?(?:{_NUM}S)?)?"
)
_CALENDAR_UNIT = re.compile(r"[YM]")
_SHOWN = 80
_EXAMPLES = "'PT5M', 'PT0.5S', 'P1DT2H' or 'P2W'"


def parse_duration(text: str) -> float:
    """The number of seconds in the ISO 8601 duration ``text`` (``"PT5M"`` -> ``300.0``).

    Exact up to the float's rounding: the components are summed as integers and
    divided once. Raises ``ValueError`` for years or months (their length varies: use
    days or weeks), for any other text that is not a duration of the forms above (the
    message shows the text and the expected form), and for a duration too large for a
    float; ``TypeError`` when ``text`` is not a ``str``.
    """
    if not isinstance(text, str):
        raise TypeError(f"a duration must be a string such as 'PT5M', got {type(text).__name__}")
    if _VALID.match(text) is None:
        raise ValueError(_explain(text))
    try:
        whole = 0
        fraction_digits, scale = "", 1
        digits: str
        fraction: str
        unit: str
        for digits, fraction, unit in _COMPONENT.findall(text):
            # After the pattern matched, at most the last component has a fraction.
            whole += int(digits) * _SECONDS[unit]
            if fraction:
                fraction_digits, scale = fraction, _SECONDS[unit]
        denominator: int = 10 ** len(fraction_digits)  # int ** int is typed Any
        # int / int is correctly rounded, so e.g. PT0.1S is the float nearest 0.1.
        return (whole * denominator + int(fraction_digits or "0") * scale) / denominator
    except (OverflowError, ValueError):
        # Only absurd lengths get here: past int's 4300-digit str limit, or past a float.
        raise ValueError(f"duration {_shown(text)} is too large to parse") from None


def _explain(text: str) -> str:
    if _CALENDAR.fullmatch(text) is not None and _CALENDAR_UNIT.search(text.partition("T")[0]):
        return (
            f"duration {_shown(text)} uses years or months, whose length varies; "
            f"use days or weeks instead, e.g. 'P30D' or 'P4W'"
        )
    return f"{_shown(text)} is not an ISO 8601 duration: expected a form such as {_EXAMPLES}"


def _shown(text: str) -> str:
    """``text`` for an error message: in full, unless it is too long to be read."""
    if len(text) <= _SHOWN:
        return repr(text)
    return f"{text[: _SHOWN - 20]!r}... ({len(text)} characters)"
