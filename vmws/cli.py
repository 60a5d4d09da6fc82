"""The ``vmws`` command: ``serve``, ``token`` and ``console``.

Every ``serve`` flag can also be set through a ``VMWS_*`` environment variable named
after it (``--jwt-secret`` ↔ ``VMWS_JWT_SECRET``); a flag wins over the variable.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import shlex
import signal
import sys
import tempfile
import time
from importlib import resources
from typing import Any

from vmws import __version__
from vmws.auth import generate_secret, mint_token
from vmws.backend import Backend
from vmws.backends import BACKENDS, load_backend_class
from vmws.config import Config
from vmws.durations import duration_argument
from vmws.loops import LOOPS, default_loop, run, tune_gc

__all__ = ["main"]

log = logging.getLogger("vmws")


def _env(name: str, default: Any = None) -> Any:
    return os.environ.get("VMWS_" + name.upper().replace("-", "_"), default)


def _add(parser: argparse.ArgumentParser, flag: str, help: str, default: Any = None, **kw: Any) -> None:
    env_name = "VMWS_" + flag.upper().replace("-", "_")
    shown = f" (env {env_name}"
    shown += f"; default {default})" if default is not None else ")"
    parser.add_argument("--" + flag, default=_env(flag, default), help=help + shown, **kw)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vmws", description="A WebSocket gateway to watch, control and log into virtual machines."
    )
    parser.add_argument("--version", action="version", version=f"vmws {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser("serve", help="run the gateway", description="Run the WebSocket gateway.")
    _add(serve, "backend", "VM source", "sim", choices=sorted(BACKENDS))
    _add(serve, "host", "address to listen on", "127.0.0.1")
    _add(serve, "port", "port to listen on (0 picks a free one)", 8080, type=int)
    _add(
        serve,
        "jwt-secret",
        "HS256 secret, at least 32 bytes; when unset, generated into a 0600 file whose path is printed",
    )
    _add(serve, "jwt-algorithm", "token algorithm", "HS256", choices=["HS256", "RS256", "ES256"])
    _add(serve, "jwt-public-key", "PEM public key file for RS256/ES256")
    _add(serve, "jwt-jwks", "JWKS file for RS256/ES256; the token's kid picks the key")
    _add(serve, "jwt-audience", "required token audience (aud); mandatory with RS256/ES256")
    _add(serve, "jwt-issuer", "required token issuer (iss)")
    _add(serve, "allowed-origin", "comma-separated exact origins allowed besides this host", "")
    serve.add_argument(
        "--trusted-proxy",
        action="append",
        default=None,
        metavar="CIDR",
        help="network of a balancer whose PROXY header (v1/v2) and X-Forwarded-For name the client; "
        "repeatable (env VMWS_TRUSTED_PROXY, comma-separated; default none)",
    )
    _add(serve, "metrics-interval", "seconds between metrics messages", 2.0, type=float)
    _add(
        serve,
        "fleet-interval",
        "seconds between fleet summaries on /ws/fleet (every VM sampled into its history)",
        5.0,
        type=float,
    )
    _add(serve, "heartbeat-interval", "seconds between heartbeats", 30.0, type=float)
    _add(serve, "command-timeout", "seconds a command may take before it fails", 300.0, type=float)
    _add(serve, "header-timeout", "seconds a new connection has to send its request line and headers", 10.0, type=float)
    _add(serve, "idle-timeout", "seconds a kept-alive HTTP connection may wait for its next request", 30.0, type=float)
    _add(serve, "scenario", "simulator fleet/scenario file (TOML); default: the demo fleet")
    _add(serve, "speed", "simulated clock speed-up factor", 1.0, type=float)
    _add(serve, "seed", "simulator random seed", 0, type=int)
    serve.add_argument(
        "--libvirt-uri",
        action="append",
        default=None,
        help="libvirt connection URI, one hypervisor host each; repeat it for several hosts "
        "(env VMWS_LIBVIRT_URI, comma-separated; default qemu:///system)",
    )
    _add(serve, "vm-filter", "glob of libvirt domain names to serve (default all)")
    _add(serve, "scrollback-bytes", "console output replayed to new viewers", 65536, type=int)
    _add(serve, "max-message-bytes", "largest inbound message accepted (larger: close 1009)", 65536, type=int)
    _add(serve, "max-message-rate", "inbound messages per second per connection", 50.0, type=float)
    _add(serve, "max-connections-per-user", "open WebSocket connections per token subject", 64, type=int)
    _add(serve, "max-console-viewers", "viewers of one VM's console", 32, type=int)
    _add(serve, "max-console-viewers-per-user", "console sockets one user may hold on one VM", 8, type=int)
    _add(serve, "max-commands-per-user", "commands one user may have queued or running on one VM", 4, type=int)
    _add(serve, "ticket-ttl", "seconds a ticket from POST /api/tickets stays valid", 30.0, type=float)
    _add(serve, "log-format", "log line format", "text", choices=["text", "json"])
    _add(
        serve,
        "redis-url",
        "join the cluster this Redis holds: redis://[USER:PASSWORD@]HOST[:PORT][/DB] "
        "or rediss:// (TLS); prefer the env variable or --redis-url-file (argv shows in ps). "
        "Default: one node, all in process",
    )
    _add(serve, "redis-url-file", "file holding the Redis URL")
    _add(serve, "node-name", "this node's name in the cluster; default HOSTNAME:PORT")
    _add(serve, "shard", "K/N: simulate only shard K (from 1) of N of the fleet (docs/cluster.md)")
    _add(
        serve,
        "drain-delay",
        "seconds between SIGTERM (/readyz answers 503) and handing VMs over and closing sockets; "
        "give it your balancer's health-check interval times its fall count",
        0.0,
        type=float,
    )
    _add(serve, "loop", "asyncio event loop (uvloop: pip install 'vmws[fast]')", default_loop(), choices=LOOPS)
    _add(serve, "audit-log", "append audit events to FILE as JSON lines; reopened on SIGHUP (docs/operations.md)")
    _add(serve, "audit-ring-size", "audit events kept in memory for GET /api/audit", 10000, type=int)
    _add(
        serve,
        "metrics-listen",
        "HOST:PORT serving GET /metrics without a token (default: only on the main "
        "port, for tokens with the 'metrics' permission)",
    )

    token = sub.add_parser(
        "token",
        help="mint an HS256 token",
        description="Print an HS256 token signed with the server's secret.",
    )
    token.add_argument("--sub", required=True, help="the user the token names")
    token.add_argument(
        "--perm",
        default="read",
        help="comma-separated permissions: read, control, console, watch, audit, metrics, admin (default read)",
    )
    token.add_argument(
        "--vm",
        action="append",
        default=None,
        help="glob of VM names the token may reach, or =NAME for exactly NAME (repeatable; default all)",
    )
    token.add_argument(
        "--ttl", type=duration_argument, default=3600.0, help="lifetime, e.g. 90s, 15m, 1h30m (default 1h)"
    )
    _add(token, "jwt-secret", "HS256 secret the server uses")

    console = sub.add_parser(
        "console",
        help="attach to a VM's serial console",
        description=(
            "Attach the terminal to a VM's shared serial console, like virsh console. "
            "The token comes from VMWS_TOKEN or --token-file, never the command line. "
            "Control strings in guest output (titles, clipboard writes: OSC, DCS, SOS, PM, APC) "
            "never reach this terminal, be stdout a tty or a pipe; on detach, the modes the "
            "guest switched on (alternate screen, mouse, bracketed paste...) are switched off."
        ),
    )
    console.add_argument("name", help="VM name")
    _add(console, "url", "server base URL", "ws://127.0.0.1:8080")
    console.add_argument("--token-file", help="file holding the token (default: env VMWS_TOKEN)")
    console.add_argument("--escape", default="^]", help="key that detaches, as ^X (default ^])")
    console.add_argument("--since", type=int, default=None, help="replay output from this byte offset")
    console.add_argument(
        "--watch",
        action="store_true",
        help="join watch-only (?mode=watch): see the console, send nothing but the escape key",
    )
    console.add_argument(
        "--record",
        metavar="FILE.cast",
        default=None,
        help="write the session as an asciinema v2 recording (filtered like the screen; mode 0600)",
    )
    console.add_argument(
        "--linger",
        type=float,
        default=1.0,
        help="seconds to keep showing output after stdin ends (non-tty input; default 1)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "serve":
            return _serve(args)
        if args.command == "token":
            return _token(args)
        from vmws.console_client import run_console

        return run_console(args)
    except ValueError as exc:
        print(f"vmws: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _token(args: argparse.Namespace) -> int:
    if not args.jwt_secret:
        raise ValueError("no secret: pass --jwt-secret or set VMWS_JWT_SECRET")
    perms = [p.strip() for p in args.perm.split(",") if p.strip()]
    print(mint_token(args.jwt_secret, sub=args.sub, permissions=perms, now=time.time(), ttl=args.ttl, vms=args.vm))
    return 0


def config_from_args(args: argparse.Namespace, secret: str) -> Config:
    origins = tuple(o.strip() for o in (args.allowed_origin or "").split(",") if o.strip())
    proxies = args.trusted_proxy if args.trusted_proxy is not None else (_env("trusted-proxy") or "").split(",")
    return Config(
        host=args.host,
        port=int(args.port),
        backend=args.backend,
        scenario=args.scenario,
        speed=float(args.speed),
        seed=int(args.seed),
        libvirt_uri=",".join(args.libvirt_uri or [os.environ.get("VMWS_LIBVIRT_URI") or "qemu:///system"]),
        vm_filter=args.vm_filter,
        jwt_secret=secret,
        jwt_algorithm=args.jwt_algorithm,
        jwt_public_key=args.jwt_public_key,
        jwt_jwks=args.jwt_jwks,
        jwt_audience=args.jwt_audience,
        jwt_issuer=args.jwt_issuer,
        allowed_origins=origins,
        trusted_proxies=tuple(p.strip() for p in proxies if p.strip()),
        metrics_interval=float(args.metrics_interval),
        fleet_interval=float(args.fleet_interval),
        heartbeat_interval=float(args.heartbeat_interval),
        command_timeout=float(args.command_timeout),
        scrollback_bytes=int(args.scrollback_bytes),
        header_timeout=float(args.header_timeout),
        idle_timeout=float(args.idle_timeout),
        max_message_bytes=int(args.max_message_bytes),
        log_format=args.log_format,
        max_message_rate=float(args.max_message_rate),
        max_connections_per_user=int(args.max_connections_per_user),
        max_console_viewers=int(args.max_console_viewers),
        max_console_viewers_per_user=int(args.max_console_viewers_per_user),
        max_commands_per_user=int(args.max_commands_per_user),
        ticket_ttl=float(args.ticket_ttl),
        redis_url=_redis_url(args),
        node_name=args.node_name or None,
        shard=args.shard or None,
        drain_delay=float(args.drain_delay),
        audit_log=args.audit_log or None,
        audit_ring_size=int(args.audit_ring_size),
        metrics_listen=args.metrics_listen or None,
    )


def _redis_url(args: argparse.Namespace) -> str | None:
    from vmws.cluster.redis_url import read_url_file

    if args.redis_url and args.redis_url_file:
        raise ValueError("give --redis-url or --redis-url-file, not both")
    if args.redis_url_file:
        return read_url_file(args.redis_url_file)
    return args.redis_url or None


def make_backend(config: Config) -> Backend:
    try:
        cls = load_backend_class(config.backend)
    except ImportError as exc:
        raise ValueError(
            f"backend {config.backend!r} cannot be loaded ({exc}); "
            "for libvirt: pip install 'vmws[libvirt]' (needs libvirt-dev and pkg-config)"
        ) from None
    return cls.from_config(config)


def _serve(args: argparse.Namespace) -> int:
    from vmws.logs import configure_logging

    generated = not args.jwt_secret and args.jwt_algorithm == "HS256"
    secret = generate_secret() if generated else args.jwt_secret
    config = config_from_args(args, secret)
    configure_logging(config.log_format)
    backend = make_backend(config)
    secret_file = write_secret_file(secret) if generated else None
    try:
        return run(_run_server(config, backend, secret_file, args.loop), args.loop)
    finally:
        if secret_file:
            with contextlib.suppress(OSError):
                os.unlink(secret_file)


def write_secret_file(secret: str) -> str:
    """A generated secret goes to a file only its owner can read, never to the terminal
    (scrollback, screen sharing, CI logs); the banner prints the path. Removed at exit:
    the secret is this run's only."""
    directory = os.environ.get("XDG_RUNTIME_DIR") or None
    if directory and not os.path.isdir(directory):
        directory = None
    fd, path = tempfile.mkstemp(prefix="vmws-jwt-secret-", dir=directory)  # mode 0600
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write(secret + "\n")
    return path


def _banner(config: Config, port: int, secret_file: str | None, vms: list[Any]) -> str:
    base = f"{config.host}:{port}"
    lines = [f"vmws {__version__} serving {len(vms)} VMs from the '{config.backend}' backend on http://{base}"]
    if secret_file and config.jwt_secret:
        token = mint_token(
            config.jwt_secret,
            sub="admin",
            permissions=["read", "control", "console"],
            now=time.time(),
            ttl=86400,
        )
        running = [v.name for v in vms if v.status.value == "running"]
        example = "my-vm" if "my-vm" in running else (running or [v.name for v in vms] or ["my-vm"])[0]
        lines += [
            f"No JWT secret configured: generated one for this run in {secret_file} (mode 0600, removed at exit).",
            "Mint more tokens with `vmws token` after:",
            f'  export VMWS_JWT_SECRET="$(cat {shlex.quote(secret_file)})"',
            "Token for user 'admin' with read, control and console permissions, valid 24h:",
            f"  {token}",
            "Connect:",
            f"  ws://{base}/ws/vms/{example}?token={token}",
            f"  ws://{base}/ws/vms/{example}/console?token={token}",
        ]
        if resources.files("vmws").joinpath("static", "index.html").is_file():
            lines.append(f"  http://{base}/?token={token}   (web UI)")
    return "\n".join(lines)


async def _run_server(config: Config, backend: Backend, secret_file: str | None, loop_name: str) -> int:
    from vmws.app import Server

    server = Server(config, backend)
    try:
        await server.start()
    except OSError as exc:
        print(f"vmws: error: cannot listen on {config.host}:{config.port}: {exc.strerror}", file=sys.stderr)
        await backend.close()
        return 1
    vms = await backend.list()
    frozen = tune_gc()  # start-up is over: what exists now lives as long as the process
    log.info("event loop %s; %d start-up objects frozen out of garbage collection", loop_name, frozen)
    print(_banner(config, server.port, secret_file, vms), flush=True)
    log.info("listening on %s:%d", config.host, server.port)
    stop = asyncio.Event()
    drain = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGINT, stop.set)

    # SIGTERM (a service stop, a rolling upgrade) drains first: /readyz says 503 and a
    # cluster node hands its libvirt VMs to another node before its sockets close.
    def terminate() -> None:
        drain.set()
        stop.set()

    loop.add_signal_handler(signal.SIGTERM, terminate)
    # logrotate moves the audit log away, then SIGHUP: the next event goes to a new file.
    loop.add_signal_handler(signal.SIGHUP, server.hub.oversight.audit.reopen)
    await stop.wait()
    if drain.is_set():
        log.info("SIGTERM: draining")
        await server.drain()
    log.info("shutting down: closing %d connections", len(server.hub.peers))
    await server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
