"""What the benchmarks share: servers, tokens, console helpers, medians, outcomes."""

from __future__ import annotations

import asyncio
import itertools
import math
import secrets
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from loadtests.fleet import vm_name, write_fleet
from loadtests.procs import ServerProcess, start_baseline, start_vmws
from loadtests.wsclient import Connection
from vmws.auth import mint_token

__all__ = [
    "SERVER_CPU",
    "CLIENT_CPU",
    "Bench",
    "Outcome",
    "ConsoleText",
    "median",
    "percentile",
    "progress",
]

SERVER_CPU = 0
CLIENT_CPU = 1
_subs = itertools.count()


def progress(text: str) -> None:
    print(f"  … {text}", file=sys.stderr, flush=True)


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0–100), nearest rank; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = min(len(ordered), max(1, math.ceil(q / 100 * len(ordered))))  # 1-based
    return ordered[rank - 1]


@dataclass(frozen=True)
class Outcome:
    """One target's verdict: ``ratio`` against ``target`` (``higher``: ratio must reach it)."""

    name: str
    ratio: float
    target: float
    higher: bool
    extra_ok: bool = True
    note: str = ""
    figures: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        held = self.ratio >= self.target if self.higher else self.ratio <= self.target
        return held and self.extra_ok

    def line(self) -> str:
        verdict = "OK" if self.ok else "MISS"
        return f"{self.name} ratio={self.ratio:.2f} target={self.target:g} {verdict}" + (
            f" ({self.note})" if self.note else ""
        )


class Bench:
    """Servers for one benchmark: vmws with a fleet of ``vms`` and a baseline."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.secret = secrets.token_urlsafe(32)

    def vmws(self, name: str, vms: int, **flags: Any) -> ServerProcess:
        fleet = write_fleet(self.out / f"fleet-{vms}.toml", vms)
        return start_vmws(self.secret, self.out / f"vmws-{name}.log", scenario=fleet, cpu=SERVER_CPU, **flags)

    def baseline(self, name: str, **flags: Any) -> ServerProcess:
        return start_baseline(self.out / f"baseline-{name}.log", cpu=SERVER_CPU, **flags)

    def token(self, permissions: Sequence[str] = ("read", "console")) -> str:
        # one user per connection: vmws caps connections per user
        return mint_token(self.secret, sub=f"bench-{next(_subs)}", permissions=list(permissions),
                          now=time.time(), ttl=3600)

    def console_url(self, server: ServerProcess, index: int) -> str:
        return f"{server.base_url}/ws/vms/{vm_name(index)}/console?token={self.token()}"

    def monitor_url(self, server: ServerProcess, index: int) -> str:
        return f"{server.base_url}/ws/vms/{vm_name(index)}?token={self.token()}"


class ConsoleText:
    """Console output of one connection, to wait for prompts (used while logging in)."""

    def __init__(self) -> None:
        self.text = ""
        self.changed = asyncio.Event()

    def on_message(self, conn: Connection, payload: bytes, arrived: float) -> None:
        message = orjson.loads(payload)
        if message.get("type") == "console":
            # a tail is enough to find prompts; a flood must not grow it
            self.text = (self.text + message["data"]["content"])[-4096:]
            self.changed.set()

    async def expect(self, needle: str, timeout: float = 15.0) -> None:
        async with asyncio.timeout(timeout):
            while needle not in self.text:
                self.changed.clear()
                await self.changed.wait()


async def type_text(conn: Connection, content: str) -> None:
    conn.send_text(orjson.dumps({"type": "console_input", "data": {"content": content}}))


async def login(conn: Connection, text: ConsoleText) -> None:
    """From the login prompt (or a shell) to a shell prompt on a simulator console."""
    await asyncio.sleep(0.2)
    text.text = ""
    await type_text(conn, "\x03\r")
    async with asyncio.timeout(15):
        while "$ " not in text.text and "login: " not in text.text:
            text.changed.clear()
            await text.changed.wait()
    if "$ " not in text.text:
        text.text = ""
        await type_text(conn, "admin\r")
        await text.expect("Password: ")
        text.text = ""
        await type_text(conn, "admin\r")
        await text.expect("$ ")
