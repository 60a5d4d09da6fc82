"""Server configuration: one frozen value built by the CLI (flags and VMWS_* env)."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Config"]


@dataclass(frozen=True)
class Config:
    host: str = "127.0.0.1"
    port: int = 8080
    backend: str = "sim"
    # Simulator
    scenario: str | None = None
    speed: float = 1.0
    seed: int = 0
    # libvirt
    libvirt_uri: str = "qemu:///system"  # several hosts: comma-separated (``libvirt_uris``)
    vm_filter: str | None = None
    # Tokens
    jwt_secret: str | None = None
    jwt_algorithm: str = "HS256"
    jwt_public_key: str | None = None
    jwt_jwks: str | None = None
    jwt_audience: str | None = None
    jwt_issuer: str | None = None
    # Exact origins (scheme://host[:port]) allowed besides the server's own host.
    allowed_origins: tuple[str, ...] = field(default_factory=tuple)
    # Networks (CIDR) of balancers allowed to name the client: a PROXY header or
    # X-Forwarded-For from anyone else is not believed (docs/hardening.md).
    trusted_proxies: tuple[str, ...] = field(default_factory=tuple)
    # Intervals, seconds
    metrics_interval: float = 2.0
    # The fleet's sweep: every VM sampled into its history, summaries to /ws/fleet.
    fleet_interval: float = 5.0
    heartbeat_interval: float = 30.0
    command_timeout: float = 300.0
    # Slowloris: the request line and headers of a connection's first request must all
    # arrive within header_timeout of the connection opening (a trickle of header lines
    # does not extend it); a kept-alive connection must bring its next request, headers
    # included, within idle_timeout of the previous response, or it is closed.
    header_timeout: float = 10.0
    idle_timeout: float = 30.0
    # Limits
    scrollback_bytes: int = 64 * 1024
    max_message_bytes: int = 64 * 1024
    # Output a client may leave unread before it is cut off as too slow.
    max_pending_bytes: int = 4 * 1024 * 1024
    # Inbound messages per second per connection (bursts of twice that are fine).
    max_message_rate: float = 50.0
    max_connections_per_user: int = 64
    max_console_viewers: int = 32
    # Console sockets one user may hold on one VM (below max_console_viewers, so one user
    # cannot take every seat).
    max_console_viewers_per_user: int = 8
    # Commands one user may have queued or running on one VM, the running one included.
    max_commands_per_user: int = 4
    ticket_ttl: float = 30.0
    log_format: str = "text"
    # Cluster (docs/cluster.md): no Redis URL = one node, everything in process.
    redis_url: str | None = None
    node_name: str | None = None  # default HOSTNAME:PORT
    shard: str | None = None  # "K/N": simulate only that shard of the fleet
    # Seconds between SIGTERM (/readyz turns 503) and the hand-over and closing of sockets,
    # so that a balancer's health check sees the node leave first (docs/cluster.md).
    drain_delay: float = 0.0
    # Operations (docs/operations.md): the audit log file (JSON lines; None = memory only),
    # the events kept in memory for GET /api/audit, and an unauthenticated /metrics listener.
    audit_log: str | None = None
    audit_ring_size: int = 10_000
    metrics_listen: str | None = None  # HOST:PORT

    def __post_init__(self) -> None:
        problems = []
        if not 0 <= self.port <= 65535:
            problems.append(f"port {self.port} is out of range 0–65535")
        if not 0 <= self.drain_delay <= 3600:  # also refuses NaN
            problems.append("drain-delay must be from 0 to 3600 seconds")
        for name in (
            "metrics_interval",
            "fleet_interval",
            "heartbeat_interval",
            "command_timeout",
            "header_timeout",
            "idle_timeout",
            "speed",
        ):
            if getattr(self, name) <= 0:
                problems.append(f"{name.replace('_', '-')} must be positive")
        if self.log_format not in ("text", "json"):
            problems.append("log-format must be 'text' or 'json'")
        if (
            self.scrollback_bytes < 0
            or self.max_message_bytes <= 0
            or self.max_pending_bytes <= 0
            or self.max_message_rate <= 0
            or self.max_connections_per_user <= 0
            or self.max_console_viewers <= 0
            or self.max_console_viewers_per_user <= 0
            or self.max_commands_per_user <= 0
            or self.ticket_ttl <= 0
        ):
            problems.append("size limits must be positive")
        if self.shard is not None:
            from vmws.cluster.shard import parse_shard

            try:
                parse_shard(self.shard)
            except ValueError as exc:
                problems.append(str(exc))
        if self.redis_url is not None:
            from vmws.cluster.redis_url import validate

            try:
                validate(self.redis_url)
            except ValueError as exc:
                problems.append(str(exc))
        if self.trusted_proxies:
            from vmws.client_address import parse_networks

            try:
                parse_networks(self.trusted_proxies)
            except ValueError as exc:
                problems.append(str(exc))
        if self.audit_ring_size <= 0:
            problems.append("audit-ring-size must be positive")
        if self.metrics_listen is not None:
            try:
                self.metrics_address()
            except ValueError as exc:
                problems.append(str(exc))
        if self.node_name is not None and not self.node_name.strip():
            problems.append("node-name must not be empty")
        if problems:
            raise ValueError("; ".join(problems))

    @property
    def libvirt_uris(self) -> list[str]:
        """Every ``--libvirt-uri`` given, one hypervisor host each (docs/cluster.md)."""
        return [uri.strip() for uri in self.libvirt_uri.split(",") if uri.strip()] or ["qemu:///system"]

    def metrics_address(self) -> tuple[str, int]:
        """``--metrics-listen HOST:PORT`` as (host, port)."""
        host, sep, port = (self.metrics_listen or "").rpartition(":")
        host = host.strip("[]")
        if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ValueError("metrics-listen must be HOST:PORT, e.g. 127.0.0.1:9108")
        return host, int(port)
