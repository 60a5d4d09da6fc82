"""Oversight's choices that need no server: a console session's mode, refusal reasons."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from vmws import protocol
from vmws.auth import Permission, Principal
from vmws.codes import CloseCode
from vmws.config import Config
from vmws.errors import AuthError
from vmws.oversight import Oversight, refusal_reason
from vmws.revocations import RevokedError


def console_peer(perms: set[Permission], session: str, **extra: object) -> SimpleNamespace:
    principal = Principal("u", frozenset(perms), None, 2e9)
    return SimpleNamespace(
        endpoint=protocol.Endpoint.CONSOLE,
        principal=principal,
        user="u",
        vm="web-1",
        session_id=session,
        request=SimpleNamespace(remote_ip="127.0.0.1"),
        bytes_in=1,
        bytes_out=2,
        close_code=1000,
        **extra,
    )


def test_a_console_session_mode_comes_from_the_socket_else_from_the_token_and_outlives_the_principal() -> None:
    oversight = Oversight(Config(), SimpleNamespace(peers=set()), now=lambda: 0.0)
    watcher = console_peer({Permission.WATCH}, "s1")
    typist = console_peer({Permission.CONSOLE}, "s2")
    chose_watch = console_peer({Permission.CONSOLE}, "s3", mode="watch")
    for peer in (watcher, typist, chose_watch):
        oversight.session_opened(peer)
        peer.principal = None  # the socket lets go of it before its close is reported
        oversight.session_closed(peer)
    modes = [(e["session"], e["state"], e["mode"]) for e in oversight.audit.query()]
    assert modes == [
        ("s1", "opened", "watch"),
        ("s1", "closed", "watch"),
        ("s2", "opened", "interactive"),
        ("s2", "closed", "interactive"),
        ("s3", "opened", "watch"),
        ("s3", "closed", "watch"),
    ]


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (AuthError("missing token: pass ?token=..."), "missing"),
        (AuthError("token has expired"), "expired"),
        (AuthError("token signature is invalid"), "invalid"),
        (AuthError("ticket is unknown, already used or expired"), "ticket"),
        (RevokedError("token has been revoked"), "revoked"),
        (AuthError("token lacks the 'read' permission", CloseCode.FORBIDDEN), "forbidden"),
        (AuthError("too many connections", CloseCode.TOO_MANY), "too_many"),
    ],
)
def test_refusal_reasons(error: AuthError, reason: str) -> None:
    assert refusal_reason(error) == reason


def test_sent_messages_are_counted_under_their_type_and_strangers_under_other() -> None:
    from prometheus_client.parser import text_string_to_metric_families

    from vmws.telemetry import Telemetry

    telemetry = Telemetry()
    for kind in ("connection", "status", "metrics", "response", "error", "heartbeat", "console"):
        telemetry.sent(f'{{"type":"{kind}","timestamp":"x","data":{{}}}}', 10)
    telemetry.sent('{"type":"weird"}', 3)
    telemetry.sent("[]", 2)
    telemetry.received(None, 7)
    counted = {
        (s.labels["direction"], s.labels["type"]): s.value
        for family in text_string_to_metric_families(telemetry.scrape().decode())
        if family.name == "vmws_message_bytes"
        for s in family.samples
    }
    assert counted == {
        ("out", k): 10 for k in ("connection", "status", "metrics", "response", "error", "heartbeat", "console")
    } | {("out", "other"): 5, ("in", "other"): 7}
