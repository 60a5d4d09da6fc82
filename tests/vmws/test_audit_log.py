"""The audit log on its own: hostile strings, the ring, batched fsync, reopen."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
import pytest

from vmws.audit import MAX_FIELD_CHARS, AuditLog, parse_rfc3339


def test_hostile_strings_are_cut_redacted_and_kept_one_line(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    log = AuditLog(str(path), now=lambda: 0.0, node="n1")
    jwt_like = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"
    log.record("command", vm="x" * 100_000, user="\ud800\x1b]52;c;evil\x07\n" + jwt_like, requestId="vmt_abc")
    log.close()
    (line,) = path.read_bytes().splitlines()
    event = orjson.loads(line)
    assert len(event["vm"]) == MAX_FIELD_CHARS
    assert jwt_like not in event["user"] and "REDACTED" in event["user"] and "\n" in event["user"]
    assert (
        event["requestId"] == "vmt_REDACTED" and event["node"] == "n1" and event["time"] == "1970-01-01T00:00:00.000Z"
    )


def test_the_ring_keeps_the_newest_and_answers_newest_first_cut_oldest_first() -> None:
    clock = [0.0]
    log = AuditLog(ring_size=3, now=lambda: clock[0])
    for n in range(5):
        clock[0] = float(n)
        log.record("ticket_issued", user=f"u{n}")
    assert [e["user"] for e in log.query()] == ["u2", "u3", "u4"]
    assert [e["user"] for e in log.query(limit=2)] == ["u3", "u4"]
    assert [e["user"] for e in log.query(since=3.0)] == ["u3", "u4"]


def test_events_are_fsynced_in_one_batch_after_the_delay(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[int] = []
    monkeypatch.setattr("vmws.audit.os.fsync", lambda fd: synced.append(fd))
    monkeypatch.setattr("vmws.audit.FLUSH_DELAY", 0.01)
    path = tmp_path / "audit.jsonl"

    async def burst() -> None:
        log = AuditLog(str(path), now=lambda: 0.0)
        for n in range(100):
            log.record("ticket_issued", user=f"u{n}")
        assert synced == []
        await asyncio.sleep(0.1)
        assert len(synced) == 1 and len(path.read_bytes().splitlines()) == 100
        log.close()

    asyncio.run(burst())


def test_reopen_writes_to_a_new_file_after_a_rename(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    log = AuditLog(str(path), now=lambda: 0.0)
    log.record("ticket_issued", user="a")
    path.rename(tmp_path / "old")
    log.record("ticket_issued", user="b")
    log.reopen()
    log.record("ticket_issued", user="c")
    log.close()
    assert [orjson.loads(x)["user"] for x in (tmp_path / "old").read_bytes().splitlines()] == ["a", "b"]
    assert [orjson.loads(x)["user"] for x in path.read_bytes().splitlines()] == ["c"]


def test_an_unwritable_path_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cannot open the audit log"):
        AuditLog(str(tmp_path / "missing" / "audit.jsonl"), now=lambda: 0.0)


@pytest.mark.parametrize(
    ("text", "epoch"),
    [
        ("1970-01-01T00:00:10Z", 10.0),
        ("1970-01-01T01:00:10+01:00", 10.0),
        ("1970-01-01t00:00:10.5z", 10.5),
    ],
)
def test_rfc3339(text: str, epoch: float) -> None:
    assert parse_rfc3339(text) == epoch


@pytest.mark.parametrize("text", ["", "yesterday", "1970-01-01T00:00:10", "1970-01-01"])
def test_rfc3339_refusals(text: str) -> None:
    with pytest.raises(ValueError):
        parse_rfc3339(text)


def test_a_new_audit_file_is_not_world_readable(tmp_path: Path) -> None:
    import os
    import stat

    path = tmp_path / "audit.jsonl"
    old = os.umask(0o022)
    try:
        AuditLog(str(path), now=lambda: 0.0).close()
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
