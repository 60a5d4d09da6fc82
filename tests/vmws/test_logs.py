"""The log filter alone: redaction, escaping and truncation of one record."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import orjson
import pytest

from vmws.logs import MAX_ARG_CHARS, RepeatLimit, _JSONFormatter, _SafeRecordFilter, escape_controls, redact

JWT = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJhIn0.c2lnbmF0dXJlLXNpZ25hdHVyZQ"
TICKET = "vmt_Abc-_0123456789abcdefghijKLMN"


@pytest.mark.parametrize(
    "uri",
    [
        f"/api/vms?token={JWT}",
        f"/api/vms?%74oken={JWT}",
        f"/x?a=1&TOKEN={JWT}",
        f"/x?%54%4F%4B%45%4E={JWT}",
        f"/x?tok%65n={JWT}&b=2",
        f"/x?access_token={JWT}",
        f"/x?Ticket={TICKET}",
        f"/x?token=%FF{TICKET}",
        f"/x?since=5;token={JWT}",
    ],
)
def test_credentials_in_query_strings_are_redacted_whatever_the_name_spelling(uri: str) -> None:
    out = redact(uri)
    assert "REDACTED" in out and JWT not in out and TICKET[4:] not in out


def test_credential_shapes_are_redacted_anywhere() -> None:
    text = f"Invalid unicode in token: b'{TICKET}\\xff' / b'{JWT}\\xff' Authorization: Bearer abc.def"
    out = redact(text)
    assert TICKET[4:] not in out and JWT.split(".")[2] not in out and "abc.def" not in out
    # Ordinary text is left alone.
    plain = "/api/vms?since=10&vm=web-1 tests.e2e.test_logs module.function"
    assert redact(plain) == plain


def test_every_c0_c1_del_and_line_separator_is_escaped() -> None:
    hostile = "".join(chr(c) for c in [*range(0x20), 0x7F, *range(0x80, 0xA0), 0x2028, 0x2029]) + "\ud800"
    out = escape_controls("a" + hostile + "é✓")
    assert out.isprintable() and out.startswith("a\\x00\\x01") and out.endswith("\\ud800é✓")
    assert "\\x0d" in out and "\\x9b" in out and "\\x7f" in out


@pytest.fixture
def logger() -> Iterator[tuple[logging.Logger, io.StringIO, logging.Handler]]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    handler.addFilter(_SafeRecordFilter(indent_blocks=True))
    log = logging.getLogger("vmws.test_logs")
    log.propagate = False
    log.setLevel(logging.DEBUG)
    log.addHandler(handler)
    yield log, stream, handler
    log.removeHandler(handler)
    log.setLevel(logging.NOTSET)


def test_arguments_are_cut_numbers_keep_their_format_and_exceptions_are_cleaned(
    logger: tuple[logging.Logger, io.StringIO, logging.Handler],
) -> None:
    log, stream, _ = logger
    log.info("vm=%s took %.1fms code=%d %r", "x" * 10_000, 1.25, 4004, "q\n")
    log.info("%(who)s did it", {"who": "eve\x1b[2J"})
    log.info("bad format %d", "not a number")
    try:
        raise ValueError(f"Invalid unicode in token: b'{TICKET}\\xff'\nFORGED line")
    except ValueError:
        log.exception("uncaught error on GET /ws?token=%s", TICKET)
    lines = stream.getvalue().splitlines()
    assert lines[0].startswith("INFO vm=" + "x" * MAX_ARG_CHARS + "…(+9700 chars) took 1.2ms code=4004 'q\\n'")  # repr
    assert lines[1] == "INFO eve\\x1b[2J did it"
    assert lines[2].startswith("INFO bad format")
    assert all(line.startswith(("INFO ", "ERROR ", "    ")) for line in lines)
    assert TICKET[4:] not in stream.getvalue() and "FORGED line" in stream.getvalue()


def test_json_records_with_lone_surrogates_and_c1_are_still_written() -> None:
    record = logging.LogRecord("vmws", logging.INFO, __file__, 1, "user=%s", ("\ud800\x9b\x1b",), None)
    assert _SafeRecordFilter(indent_blocks=False).filter(record)
    entry = orjson.loads(_JSONFormatter().format(record))
    assert entry["message"] == "user=\\ud800\\x9b\\x1b"


def test_a_call_site_of_the_cluster_logs_at_most_five_records_per_window_then_counts_the_rest() -> None:
    clock = [100.0]
    limit = RepeatLimit(("vmws.cluster",), burst=5, window=10.0, clock=lambda: clock[0])

    def record(name: str, msg: str, *args: object) -> logging.LogRecord:
        return logging.LogRecord(name, logging.WARNING, __file__, 1, msg, args, None)

    template = "dropped a message on %s: its header is not JSON"
    passed = [limit.filter(record("vmws.cluster", template, f"chan-{i}")) for i in range(50)]
    assert passed == [True] * 5 + [False] * 45
    # another call site, and loggers not fed from Redis, are not held back
    assert limit.filter(record("vmws.cluster", "another template %s", "x"))
    assert all(limit.filter(record("vmws.access", "%d GET /", 404)) for _ in range(50))
    clock[0] += 10.0
    after = record("vmws.cluster", template, "chan-x")
    assert limit.filter(after)
    assert (
        after.getMessage()
        == "dropped a message on chan-x: its header is not JSON (45 like it left out in the last 10 s)"
    )
    quiet = record("vmws.cluster", template, "chan-y")
    assert limit.filter(quiet) and "left out" not in quiet.getMessage()


def test_messages_built_before_logging_do_not_grow_the_filter_without_end() -> None:
    limit = RepeatLimit(("vmws.cluster",))
    for i in range(5000):
        limit.filter(logging.LogRecord("vmws.cluster", logging.WARNING, __file__, 1, f"built {i}", None, None))
    assert len(limit._sites) <= 1000
