"""Durations as people write them, one parser for every place that reads one.

Scenario files (``at``, ``every``, timings…) and ``vmws token --ttl`` take the same
spellings: a number of seconds (``90``, ``1.5``, ``"90"``) or numbers with units,
``ms``, ``s``, ``m``, ``h``, ``d``, summed (``"500ms"``, ``"10m"``, ``"1h30m"``,
``"1m 5s"``, ``"2d"``). Only ASCII digits count: ``float()`` alone would take
``"1_0"``, ``"1e3"``, ``"inf"`` or Arabic-Indic digits, which nobody means here.
Stdlib only, so the pure simulator may import it.
"""

from __future__ import annotations

import argparse
import math
import re

__all__ = ["parse_duration", "duration_argument"]

_NUMBER = r"(?:\d+(?:\.\d*)?|\.\d+)"
_PART = re.compile(rf"({_NUMBER})\s*(ms|s|m|h|d)", re.ASCII)
_WITH_UNITS = re.compile(rf"\s*(?:{_NUMBER}\s*(?:ms|s|m|h|d)\s*)+", re.ASCII)
_BARE = re.compile(rf"\s*{_NUMBER}\s*", re.ASCII)
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_EXAMPLES = '90, "90s", "500ms", "10m" or "1h30m"'


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def parse_duration(value: object) -> float:
    """``90``, ``1.5``, ``"90s"``, ``"500ms"``, ``"10m"``, ``"1h30m"``, ``"2d"`` → seconds
    (zero or more). A ``ValueError`` says what was expected and shows (a cut of) the value."""
    seconds: float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str):
        if _WITH_UNITS.fullmatch(value):
            seconds = sum(float(n) * _UNITS[unit] for n, unit in _PART.findall(value))
        elif _BARE.fullmatch(value):
            seconds = float(value)  # a bare number in a string: seconds
    if seconds is None:
        raise ValueError(f"must be a duration such as {_EXAMPLES}, got {_show(value)}")
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"must be a duration of zero or more seconds, got {_show(value)}")
    return seconds


def duration_argument(text: str) -> float:
    """``parse_duration`` as an argparse ``type``: a bad value is a usage error."""
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None  # "argument --ttl: must be a duration…"
