"""``/ws/fleet``: every VM the token may see, as a snapshot then changes and summaries.

Admission is the other endpoints' (token, ``read``, per-user connection cap, heartbeats,
expiry); what it sends comes from ``vmws.fleet.Fleet``. The token's ``vms`` patterns and
an optional ``?vms=GLOB`` filter every entry. Clients send only heartbeats here.
"""

from __future__ import annotations

from typing import Any

from vmws import protocol
from vmws.auth import Permission, Principal
from vmws.config import Config
from vmws.errors import InvalidCommand
from vmws.fleet import Fleet, FleetFilter
from vmws.handlers import _VMSocket
from vmws.http_request import query_argument
from vmws.hub import Hub
from vmws.tickets import Authenticator

__all__ = ["FleetSocket", "FLEET_VM", "MAX_GLOB_BYTES", "MAX_GLOB_STARS"]

# What the `connection` message's `vm` says on this endpoint: every VM (that passes the filter).
FLEET_VM = "*"
MAX_GLOB_BYTES = 255
# Matching time grows with the number of `*` in a glob (127 of them: 1.5 ms per name,
# 15 s for 10,000 VMs); 16 keep it near 5 us.
MAX_GLOB_STARS = 16


class FleetSocket(_VMSocket):
    endpoint = protocol.Endpoint.FLEET
    permission = Permission.READ

    def initialize(self, hub: Hub, auth: Authenticator, config: Config, fleet: Fleet) -> None:  # type: ignore[override]
        super().initialize(hub, auth, config)
        self.fleet = fleet
        self._glob: str | None = None

    async def open(self) -> None:  # type: ignore[override]
        await super().open(FLEET_VM)

    def authorize(self, principal: Principal, name: str) -> None:
        principal.require(self.permission)  # its `vms` filters the entries instead

    def read_query(self) -> None:
        super().read_query()
        glob = query_argument(self.request, "vms", strip=False)
        if glob is not None and not 0 < len(glob.encode("utf-8", "surrogatepass")) <= MAX_GLOB_BYTES:
            raise InvalidCommand(f"'vms' must be a glob of 1 to {MAX_GLOB_BYTES} bytes")
        if glob is not None and glob.count("*") > MAX_GLOB_STARS:
            raise InvalidCommand(f"'vms' may hold at most {MAX_GLOB_STARS} '*'")
        self._glob = glob

    async def backend_check(self, name: str) -> None:
        pass  # no VM to look up

    def connection_extra(self) -> dict[str, Any] | None:
        return {"fleetInterval": self.fleet.interval, "filter": self._glob}

    async def join_hub(self, name: str) -> None:
        assert self.principal is not None
        self.fleet.join(self, FleetFilter.of(self.principal, self._glob))

    def leave_hub(self) -> None:
        self.fleet.leave(self)

    def handle(self, message: protocol.ClientMessage) -> None:
        pass  # only heartbeats are accepted here, and answered before this
