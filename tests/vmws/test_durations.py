"""One duration parser for scenario files and ``vmws token --ttl`` (vmws/durations.py)."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys

import pytest

from simulator.scenario import ScenarioError, parse_scenario
from vmws.durations import parse_duration

SECRET = "durations-test-secret-that-is-32-bytes-or-more"


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (90, 90.0),
        (1.5, 1.5),
        ("90s", 90.0),
        ("500ms", 0.5),
        ("10m", 600.0),
        ("1h30m", 5400.0),
        ("2d", 172800.0),
        ("1m 5s", 65.0),
        ("12", 12.0),
        (" 15m ", 900.0),
        (".5s", 0.5),
        ("0", 0.0),
    ],
)
def test_durations(value: object, seconds: float) -> None:
    assert parse_duration(value) == seconds


@pytest.mark.parametrize(
    "value",
    [
        "soon",
        "-5s",
        -1,
        True,
        "5 parsecs",
        "",
        None,
        "1e3",
        "inf",
        "nan",
        "1_000",
        "\u0661\u0662s",
        "\u0661\u0662",
        "1h-5m",
        "9" * 400,
        float("inf"),
        "s",
        "5 s m",
    ],
)
def test_bad_durations(value: object) -> None:
    with pytest.raises(ValueError, match="must be a duration"):
        parse_duration(value)


def test_the_message_cuts_a_long_value() -> None:
    with pytest.raises(ValueError) as caught:
        parse_duration("x" * 10_000)
    assert len(str(caught.value)) < 200


def test_a_scenario_and_the_cli_agree() -> None:
    fleet = parse_scenario('[[vm]]\nname = "a"\n[[event]]\nat = "1h30m"\nvm = "a"\nevent = "crash"\n')
    assert fleet.events[0].at == 5400.0
    with pytest.raises(ScenarioError, match=r"event #1 \(crash\): at must be a duration"):
        parse_scenario('[[vm]]\nname = "a"\n[[event]]\nat = "1e3"\nvm = "a"\nevent = "crash"\n')


def _vmws(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "VMWS_JWT_SECRET": SECRET}
    return subprocess.run(
        [sys.executable, "-m", "vmws", *args], capture_output=True, text=True, env=env, timeout=60, check=False
    )


@pytest.mark.parametrize(("ttl", "seconds"), [("1h30m", 5400), ("500ms", 0), ("90", 90), ("2d", 172800)])
def test_token_ttl_takes_what_scenarios_take(ttl: str, seconds: int) -> None:
    done = _vmws("token", "--sub", "carol", "--ttl", ttl)
    assert done.returncode == 0, done.stderr
    payload = done.stdout.strip().split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert claims["exp"] - claims["iat"] in (seconds, seconds + 1)  # exp is rounded down, iat may be too


def test_a_bad_ttl_is_a_usage_error_without_a_traceback() -> None:
    done = _vmws("token", "--sub", "carol", "--ttl", "soon")
    assert done.returncode == 2
    assert "argument --ttl: must be a duration such as" in done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""
