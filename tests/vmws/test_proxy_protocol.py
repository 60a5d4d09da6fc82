"""The PROXY header parser and the X-Forwarded-For rule, alone: any bytes give a header
or ``ProxyHeaderError`` (never another exception), and the chain rule picks the
right-most untrusted hop."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, strategies as st

from vmws.client_address import MAX_FORWARDED_HOPS, TrustedProxies
from vmws.proxy_protocol import (
    MAX_V2_BODY,
    V2_SIGNATURE,
    ProxyHeader,
    ProxyHeaderError,
    classify,
    parse_v1,
    parse_v2,
    v2_body_length,
)


def test_classify_waits_on_ambiguous_prefixes_and_decides_on_the_rest() -> None:
    assert classify(b"") is None
    assert classify(b"P") is None and classify(b"PROX") is None and classify(b"\r\n\r\n") is None
    assert classify(V2_SIGNATURE) == "v2" and classify(b"PROXY TCP4") == "v1"
    assert classify(b"POST /") == "http" and classify(b"GET / HTTP/1.1") == "http"
    assert classify(b"PROXY") is None and classify(b"PROXYX") == "http"


def test_v2_ipv4_ipv6_local_and_unix() -> None:
    ipv4 = bytes([203, 0, 113, 7, 127, 0, 0, 1]) + struct.pack("!HH", 4242, 80)
    preamble = V2_SIGNATURE + b"\x21\x11" + struct.pack("!H", len(ipv4))
    assert parse_v2(preamble, ipv4) == ProxyHeader(("203.0.113.7", 4242))
    ipv6 = bytes(15) + b"\x01" + bytes(16) + struct.pack("!HH", 1, 2)
    assert parse_v2(V2_SIGNATURE + b"\x21\x21" + struct.pack("!H", 36), ipv6) == ProxyHeader(("::1", 1))
    assert parse_v2(V2_SIGNATURE + b"\x20\x00\x00\x00", b"") == ProxyHeader(None)
    unix = bytes(216)
    assert parse_v2(V2_SIGNATURE + b"\x21\x31" + struct.pack("!H", 216), unix) == ProxyHeader(None)
    # TLVs after the addresses are allowed (and skipped).
    tlv = ipv4 + b"\x05\x00\x03abc"
    assert parse_v2(V2_SIGNATURE + b"\x21\x11" + struct.pack("!H", len(tlv)), tlv).source == ("203.0.113.7", 4242)


def test_v2_length_is_checked_before_the_body_is_read() -> None:
    with pytest.raises(ProxyHeaderError, match="over 1024 bytes"):
        v2_body_length(V2_SIGNATURE + b"\x21\x11" + struct.pack("!H", MAX_V2_BODY + 1))
    assert v2_body_length(V2_SIGNATURE + b"\x21\x11" + struct.pack("!H", MAX_V2_BODY)) == MAX_V2_BODY


def test_v1_forms() -> None:
    assert parse_v1(b"PROXY TCP4 192.0.2.1 192.0.2.2 56324 443\r\n").source == ("192.0.2.1", 56324)
    assert parse_v1(b"PROXY TCP6 2001:db8::1 ::1 1 65535\r\n").source == ("2001:db8::1", 1)
    assert parse_v1(b"PROXY UNKNOWN whatever follows\r\n") == ProxyHeader(None)
    for bad in (b"PROXY TCP4 192.0.2.1 192.0.2.2 56324 443\n", b"PROXY TCP4 0192.0.2.1 1.1.1.1 1 1\r\n"):
        with pytest.raises(ProxyHeaderError):
            parse_v1(bad)


@given(st.binary(max_size=300))
def test_any_bytes_give_a_header_or_a_proxy_header_error(data: bytes) -> None:
    for attempt in (
        lambda: parse_v1(b"PROXY " + data),
        lambda: parse_v2(V2_SIGNATURE + data[:4].ljust(4, b"\0"), data[4:]),
        lambda: v2_body_length(data[:16]),
    ):
        try:
            attempt()
        except ProxyHeaderError:
            pass


def test_forwarded_for_takes_the_right_most_untrusted_hop() -> None:
    trusted = TrustedProxies(["10.0.0.0/8", "127.0.0.1"])
    assert trusted.client("127.0.0.1", ["1.1.1.1, 2.2.2.2, 10.0.0.1"]) == "2.2.2.2"
    assert trusted.client("127.0.0.1", []) == "127.0.0.1"
    assert trusted.client("198.51.100.1", ["2.2.2.2"]) == "198.51.100.1"  # an untrusted hop ends it
    assert trusted.client("127.0.0.1", ["::ffff:10.1.1.1, 3.3.3.3"]) == "3.3.3.3"
    assert trusted.client("127.0.0.1", ["10.0.0.2, 10.0.0.3"]) == "10.0.0.2"  # all trusted: the first
    assert trusted.client("127.0.0.1", ["2.2.2.2, x"]) == "127.0.0.1"
    assert trusted.client("127.0.0.1", [" 2001:db8::5 "]) == "2001:db8::5"
    many = ", ".join(["9.9.9.9"] + ["10.0.0.1"] * (MAX_FORWARDED_HOPS + 5))
    assert trusted.client("127.0.0.1", [many]) == "10.0.0.1"  # the walk stops: not 9.9.9.9
    assert not TrustedProxies() and TrustedProxies(["::1"]).trusts("::1")
    assert not trusted.trusts("not an address")
