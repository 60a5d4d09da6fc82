"""Hostile client addresses from behind a trusted balancer, over real sockets."""

from __future__ import annotations

import pytest

from tests.e2e.client import running_server
from tests.e2e.test_client_address import exchange, ticket_remote

pytestmark = pytest.mark.asyncio


async def test_a_scoped_ipv6_address_is_not_an_address_to_name_a_client_by() -> None:
    """``fe80::1%ANY TEXT`` parses as an IPv6 address with a scope (Python accepts any
    text after ``%``), so a forged hop became the audit events' and the access log's
    ``remote`` verbatim. A scope names an interface of the host that wrote it, never a
    client: such a hop stops the walk at the last believable one, as garbage does."""
    async with running_server(trusted_proxies=("127.0.0.1/32", "10.0.0.0/8")) as server:
        forged = "X-Forwarded-For: fe80::1%alice-is-admin, 10.1.2.3"
        assert await ticket_remote(server, forged) == "10.1.2.3"
        # A PROXY v1 line naming a scoped TCP6 client is malformed: closed unserved.
        line = b"PROXY TCP6 fe80::1%eth0 ::1 50123 8080\r\n"
        assert await exchange(server, line + b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n") == b""
