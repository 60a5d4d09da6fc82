"""Property tests: whatever a client sends, the parser answers with a message or INVALID_COMMAND."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import example, given, settings, strategies as st

from vmws import protocol
from vmws.errors import InvalidCommand
from vmws.protocol import Endpoint

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)
plausible = st.fixed_dictionaries(
    {},
    optional={
        "type": st.sampled_from(["command", "console_input", "heartbeat", "status", "bogus"]) | json_values,
        "timestamp": st.text(max_size=30) | json_values,
        "data": st.fixed_dictionaries(
            {},
            optional={
                "action": st.sampled_from(["start", "stop", "restart", "suspend", "resume", "pause", "x"])
                | json_values,
                "requestId": st.text(max_size=200) | json_values,
                "force": json_values,
                "content": st.text(max_size=50) | json_values,
            },
        )
        | json_values,
    },
)


def check(raw: str | bytes, endpoint: Endpoint) -> None:
    try:
        parsed = protocol.parse_client_message(raw, endpoint)
    except InvalidCommand as exc:
        assert exc.code == "INVALID_COMMAND" and exc.message
        assert exc.request_id is None or isinstance(exc.request_id, str)
        return
    assert isinstance(parsed, (protocol.Command, protocol.ConsoleInput, protocol.Heartbeat))
    if isinstance(parsed, protocol.Command):
        assert endpoint is Endpoint.MONITOR and isinstance(parsed.force, bool)
    if isinstance(parsed, protocol.ConsoleInput):
        assert endpoint is Endpoint.CONSOLE and isinstance(parsed.content, str)


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=200) | st.binary(max_size=200), st.sampled_from(list(Endpoint)))
def test_any_frame(raw: str | bytes, endpoint: Endpoint) -> None:
    check(raw, endpoint)


@settings(max_examples=600, deadline=None)
@given(plausible, st.sampled_from(list(Endpoint)))
def test_any_json_shape(message: Any, endpoint: Endpoint) -> None:
    check(json.dumps(message), endpoint)  # stdlib: it writes integers of any size


@example(12.9999996)
@example(12.9995)
@example(1_767_000_000.9999999)
@example(0.0)
@example(59.9999995)
@given(st.floats(min_value=0, max_value=4_102_444_800, allow_nan=False, allow_infinity=False))
def test_iso_timestamp_is_what_datetime_gives(t: float) -> None:
    # The cached whole second must never change a timestamp (rounding near a second included).
    import datetime as dt

    from vmws.protocol import iso_timestamp

    moment = dt.datetime.fromtimestamp(t, tz=dt.UTC)
    assert iso_timestamp(t) == moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
