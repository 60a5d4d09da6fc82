"""Checks on what another node sent: numbers in range, and an owner's refusal raised as
the error it was on that node. Every value read from Redis passes through here."""

from __future__ import annotations

import math
from typing import Any

from vmws.errors import NoConsole, VMNotFound, VMNotRunning, VMWSError

__all__ = ["MAX_NUMBER", "MAX_TIME", "number", "raise_answer"]

# Numbers from another node: timestamps, uptimes, counters. Below 2**53 (a float holds it
# exactly; orjson writes it) and, for times, before the year 5000 (ISO timestamps).
MAX_NUMBER = 2.0**53
MAX_TIME = 95_000_000_000.0

# The refusals an owner node passes on by name; any other kind is a plain VMWSError.
_ERRORS: dict[str, type[VMWSError]] = {"VMNotFound": VMNotFound, "VMNotRunning": VMNotRunning, "NoConsole": NoConsole}


def number(value: object, limit: float = MAX_NUMBER) -> float:
    """``value`` as a float if it is a finite number from 0 to ``limit`` (ValueError if not)."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or not 0 <= value <= limit
    ):
        raise ValueError(f"not a number from 0 to {limit:g}")
    return float(value)


def raise_answer(answer: dict[str, Any]) -> None:
    """Raise the owner's refusal as the error it was there."""
    if answer.get("ok") is True:
        return
    message = answer.get("message")
    message = message[:1000] if isinstance(message, str) else "the owner node refused"
    kind = answer.get("kind")
    raise _ERRORS.get(kind if isinstance(kind, str) else "", VMWSError)(message)
