"""Fixtures for driving a console by hand (see ``consolehost.py``)."""

from __future__ import annotations

import pytest

from simulator.console import Console
from tests.simulator.consolehost import RecordingHost, make_console


@pytest.fixture
def host() -> RecordingHost:
    return RecordingHost()


@pytest.fixture
def console(host: RecordingHost) -> Console:
    return make_console(host)
