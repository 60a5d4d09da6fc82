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
from vmws.loops import LOOPS, default_loop, uvloop_available

__all__ = [
    "SERVER_CPU",
    "CLIENT_CPU",
    "CLIENT_LIMIT",
    "ClientMeter",
    "vmws_loops",
    "counted",
    "Measured",
    "paired_ratio",
    "client_peak",
    "Bench",
    "Outcome",
    "ConsoleText",
    "median",
    "percentile",
    "progress",
    "stop_flood",
]

SERVER_CPU = 0
CLIENT_CPU = 1
# A round whose load generator (this process) used more of its core than this is not
# counted: the client, not the server, may have set the pace.
CLIENT_LIMIT = 0.8
_subs = itertools.count()


class ClientMeter:
    """The load generator's CPU share (this process: the client and its event loop)
    from its creation to ``share()``."""

    def __init__(self) -> None:
        self._cpu = time.process_time()
        self._wall = time.perf_counter()

    def share(self) -> float:
        return (time.process_time() - self._cpu) / max(1e-9, time.perf_counter() - self._wall)


def counted(client_shares: Sequence[float]) -> bool:
    """Whether rounds that ran together (a vmws round and its baseline's) count."""
    return all(share <= CLIENT_LIMIT for share in client_shares)


@dataclass(frozen=True)
class Measured:
    """One server's figures over one round, and the load generator's CPU share then."""

    figures: tuple[float, ...]
    client: float


def paired_ratio(mine: Sequence[Measured], theirs: Sequence[Measured], figure: int = 0) -> tuple[float, int]:
    """The median of per-round ratios ``mine / theirs`` of one figure over the rounds
    that count (rounds ran back to back: this cancels a shared machine's slow drifts
    better than a ratio of medians), and how many counted."""
    ratios = [
        m.figures[figure] / t.figures[figure]
        for m, t in zip(mine, theirs, strict=True)
        if counted((m.client, t.client)) and t.figures[figure]
    ]
    return median(ratios), len(ratios)


def client_peak(rounds: Sequence[Measured]) -> float:
    """The load generator's highest CPU share over the rounds that count."""
    shares = [r.client for r in rounds if r.client <= CLIENT_LIMIT]
    return max(shares) if shares else float("nan")


def vmws_loops() -> tuple[str, ...]:
    """The event loops vmws is measured on, the one ``vmws serve`` picks by default
    first (its figures are the ones judged)."""
    first = default_loop()
    return (first, *(loop for loop in LOOPS if loop != first)) if uvloop_available() else ("asyncio",)


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
    # the load generator's highest CPU share in a counted round, and how many rounds
    # were counted of those run (a round over CLIENT_LIMIT is not)
    client_cpu: float = float("nan")
    rounds: tuple[int, int] = (1, 1)

    @property
    def invalid(self) -> bool:
        """No round counted: the figures say nothing about the server."""
        return self.rounds[0] == 0 or math.isnan(self.ratio)

    @property
    def ok(self) -> bool:
        held = self.ratio >= self.target if self.higher else self.ratio <= self.target
        return held and self.extra_ok and not self.invalid

    def line(self) -> str:
        verdict = "INVALID" if self.invalid else "OK" if self.ok else "MISS"
        notes = [self.note] if self.note else []
        if not math.isnan(self.client_cpu) or self.rounds != (1, 1):
            client = "" if math.isnan(self.client_cpu) else f"client CPU ≤ {self.client_cpu * 100:.0f}%, "
            notes.append(f"{client}{self.rounds[0]}/{self.rounds[1]} rounds counted")
        return f"{self.name} ratio={self.ratio:.2f} target={self.target:g} {verdict}" + (
            f" ({'; '.join(notes)})" if notes else ""
        )


class Bench:
    """Servers for one benchmark: vmws with a fleet of ``vms`` and a baseline."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.secret = secrets.token_urlsafe(32)

    def vmws(self, name: str, vms: int, *, loop: str | None = None, **flags: Any) -> ServerProcess:
        fleet = write_fleet(self.out / f"fleet-{vms}.toml", vms)
        extra = ("--loop", loop) if loop else ()
        return start_vmws(
            self.secret,
            self.out / f"vmws-{name}-{loop or 'default'}.log",
            scenario=fleet,
            cpu=SERVER_CPU,
            extra=extra,
            **flags,
        )

    def baseline(self, name: str, **flags: Any) -> ServerProcess:
        return start_baseline(self.out / f"baseline-{name}.log", cpu=SERVER_CPU, **flags)

    def token(self, permissions: Sequence[str] = ("read", "console")) -> str:
        # one user per connection: vmws caps connections per user
        return mint_token(
            self.secret, sub=f"bench-{next(_subs)}", permissions=list(permissions), now=time.time(), ttl=3600
        )

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


async def stop_flood(conn: Connection, text: ConsoleText) -> None:
    """^C a console flood, see the prompt, then close. A socket closed with unread data
    is reset, and the reset can discard the ^C before the server reads it."""
    text.text = ""
    conn.on_message = text.on_message
    await type_text(conn, "\x03")
    await text.expect("$ ", timeout=30)
    conn.close()
    await asyncio.sleep(0.3)
