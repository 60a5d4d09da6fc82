"""Who the client is when vmws sits behind a balancer: ``--trusted-proxy`` networks and
the ``X-Forwarded-For`` rule.

Only a peer inside a trusted network may speak for someone else (a PROXY header, or
``X-Forwarded-For``). The client is the right-most address of the chain that is not
itself a trusted proxy: every hop appends the address it saw, so whatever lies left of
the first untrusted hop was written by someone we cannot believe.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

__all__ = ["TrustedProxies", "parse_networks", "MAX_FORWARDED_HOPS"]

# Hops of X-Forwarded-For looked at, from the right: a real chain has a few; a header of
# thousands of commas is not walked.
MAX_FORWARDED_HOPS = 16

_Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def parse_networks(specs: Iterable[str]) -> tuple[_Network, ...]:
    """``10.0.0.0/8``, ``127.0.0.1`` (one address), ``fd00::/8``; ValueError naming a bad one."""
    networks = []
    for spec in specs:
        try:
            networks.append(ipaddress.ip_network(spec.strip(), strict=False))
        except ValueError:
            raise ValueError(f"trusted-proxy {spec.strip()[:64]!r} is not an address or a network (CIDR)") from None
    return tuple(networks)


def _address(text: str) -> _Address | None:
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped  # ::ffff:10.0.0.1 from a dual-stack socket is 10.0.0.1
    return address


class TrustedProxies:
    def __init__(self, specs: Iterable[str] = ()) -> None:
        self.networks = parse_networks(specs)

    def __bool__(self) -> bool:
        return bool(self.networks)

    def trusts(self, ip: str) -> bool:
        address = _address(ip)
        return address is not None and any(address in network for network in self.networks)

    def client(self, connection_ip: str, forwarded_for: list[str]) -> str:
        """The client behind a request whose connection comes from ``connection_ip`` (the
        peer, or what a trusted peer's PROXY header named) with these ``X-Forwarded-For``
        header values. The caller has checked the TCP peer is trusted."""
        client = connection_ip
        if not self.trusts(client):
            return client
        hops = [hop for value in forwarded_for for hop in value.split(",")]
        for hop in reversed(hops[-MAX_FORWARDED_HOPS:]):
            address = _address(hop)
            if address is None:
                return client  # garbage: the last hop we could believe is all we know
            client = str(address)
            if not self.trusts(client):
                return client
        return client
