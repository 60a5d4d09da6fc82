"""The four scenarios: their locustfiles, the fleet and server settings each needs,
and the figures that judge them (what the smoke requires, what capacity limits)."""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Scenario", "ScenarioSpec", "SCENARIOS", "spec_for"]

_HERE = Path(__file__).resolve().parent / "scenarios"


class Scenario(str, enum.Enum):
    CONSOLE_THROUGHPUT = "console_throughput"
    CONSOLE_INTERACTIVE = "console_interactive"
    HEARTBEAT = "heartbeat"
    MONITORING = "monitoring"


@dataclass(frozen=True, slots=True)
class ScenarioSpec:
    scenario: Scenario
    summary: str
    # users per VM: 1 gives every user its own console; more share VMs
    users_per_vm: int
    heartbeat_interval: float
    metrics_interval: float
    # requests every run must show (the smoke fails without them)
    required: tuple[str, ...]
    # capacity: the request whose p99 is the limit, and that limit in ms
    limit_request: str
    limit_p99_ms: float
    # capacity: the request whose rate (or bytes/s) is the throughput plotted
    throughput_request: str
    default_users: int

    @property
    def locustfile(self) -> Path:
        return _HERE / f"{self.scenario.value}.py"

    def vms_for(self, users: int) -> int:
        return max(1, math.ceil(users / self.users_per_vm))


SCENARIOS: dict[Scenario, ScenarioSpec] = {
    Scenario.CONSOLE_THROUGHPUT: ScenarioSpec(
        Scenario.CONSOLE_THROUGHPUT,
        "viewers running a flood (seq) on their own consoles: bytes/s",
        users_per_vm=1,
        heartbeat_interval=30.0,
        metrics_interval=30.0,
        required=("connect console", "console login", "console bytes", "console line"),
        limit_request="console bytes",
        limit_p99_ms=500.0,
        throughput_request="console bytes",
        default_users=10,
    ),
    Scenario.CONSOLE_INTERACTIVE: ScenarioSpec(
        Scenario.CONSOLE_INTERACTIVE,
        "people typing at human speed: keystroke-to-echo latency",
        users_per_vm=1,
        heartbeat_interval=30.0,
        metrics_interval=30.0,
        required=("connect console", "console login", "console echo"),
        limit_request="console echo",
        limit_p99_ms=50.0,
        throughput_request="console echo",
        default_users=100,
    ),
    Scenario.HEARTBEAT: ScenarioSpec(
        Scenario.HEARTBEAT,
        "many idle watchers, 2 s heartbeats: heartbeat RTT, missed beats, drops",
        users_per_vm=100,
        heartbeat_interval=2.0,
        metrics_interval=60.0,
        required=("connect monitor", "heartbeat rtt"),
        limit_request="heartbeat rtt",
        limit_p99_ms=100.0,
        throughput_request="heartbeat rtt",
        default_users=500,
    ),
    Scenario.MONITORING: ScenarioSpec(
        Scenario.MONITORING,
        "many watchers per VM, metrics every second, command churn",
        users_per_vm=50,
        heartbeat_interval=30.0,
        metrics_interval=1.0,
        required=("connect monitor", "metrics lag", "command pause", "command resume", "command start"),
        limit_request="metrics lag",
        limit_p99_ms=100.0,
        throughput_request="metrics lag",
        default_users=200,
    ),
}


def spec_for(name: str | Scenario) -> ScenarioSpec:
    try:
        return SCENARIOS[Scenario(name)]
    except ValueError:
        known = ", ".join(s.value for s in Scenario)
        raise ValueError(f"unknown scenario {name!r}; expected one of: {known}") from None
