"""``python -m loadtests.bench.crossnode [--quick]``: the two cross-node designs, measured.

A client on a node that does not own the VM needs the owner's output, and the owner
needs the client's input. Two known designs:

- ``redis``: relay through Redis (Centrifugo's Redis engine). The owner publishes each
  message once on the VM's pub/sub channel (console chunks are also appended to a
  stream, the history for resumes); a node with viewers subscribes once and fans out.
  Input goes the other way on a second channel.
- ``forward``: the client's node forwards the WebSocket to the owner (Proxmox, Incus):
  a Tornado proxy socket per client, frames copied both ways.
- ``direct`` is the baseline: the client on the owner itself.

Processes, all on loopback: the owner (a Tornado server emitting console chunks or
broadcast messages at a fixed rate, stamped with ``CLOCK_MONOTONIC``, system-wide),
the relaying node, ``redis-server``, and this process as the clients. CPU counts the
owner, the relaying node and Redis (not the clients, which are the same in every
design); latency is the owner's stamp to the client's arrival, and the keystroke echo
is a round trip client → owner → client.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import tornado.httpserver
import tornado.netutil
import tornado.web
import tornado.websocket

from loadtests.bench.common import median, percentile, progress
from loadtests.cluster_procs import free_port, start_redis, wait_for_port
from loadtests.procs import usage_of

__all__ = ["main"]

CHANNEL_OUT = "vmws:vm:{bench}:out"
CHANNEL_IN = "vmws:vm:{bench}:in"
STREAM = "vmws:vm:{bench}:con"
TICK = 0.01  # the owner emits in 10 ms batches, in every design alike


# ---------------------------------------------------------------- the owner node


class _OwnerSocket(tornado.websocket.WebSocketHandler):
    def initialize(self, owner: Owner) -> None:
        self.owner = owner

    def open(self) -> None:
        self.owner.clients.add(self)

    def on_message(self, message: str | bytes) -> None:
        self.owner.echo(message if isinstance(message, bytes) else message.encode())

    def on_close(self) -> None:
        self.owner.clients.discard(self)


class _GoHandler(tornado.web.RequestHandler):
    def initialize(self, owner: Owner) -> None:
        self.owner = owner

    async def post(self) -> None:
        spec = orjson.loads(self.request.body)
        await self.owner.emit(spec["kind"], int(spec["count"]), float(spec["rate"]), int(spec["size"]))
        self.write(b"done")


class Owner:
    """Emits messages to its WebSocket clients (``ws`` sink) or to Redis (``redis``)."""

    def __init__(self, sink: str, redis_url: str | None) -> None:
        self.sink = sink
        self.clients: set[_OwnerSocket] = set()
        self.redis: Any = None
        self.redis_url = redis_url
        self.offset = 0

    async def start(self) -> None:
        if self.sink == "redis":
            import redis.asyncio as aioredis

            self.redis = aioredis.Redis.from_url(self.redis_url)
            pubsub = self.redis.pubsub()
            await pubsub.subscribe(CHANNEL_IN)
            asyncio.get_running_loop().create_task(self._inputs(pubsub))

    async def _inputs(self, pubsub: Any) -> None:
        async for item in pubsub.listen():
            if item["type"] == "message":
                self.echo(item["data"])

    def _message(self, kind: str, size: int, filler: str) -> bytes:
        stamp = time.monotonic_ns()
        if kind == "console":
            self.offset += size
            return orjson.dumps({"type": "console", "t": stamp, "offset": self.offset, "content": filler})
        return orjson.dumps(
            {
                "type": "metrics",
                "t": stamp,
                "vm": "bench",
                "cpu": 12.5,
                "memory": 41.0,
                "diskRead": 1024,
                "diskWrite": 2048,
                "netRx": 4096,
                "netTx": 512,
            }
        )

    async def _send(self, batch: list[bytes], console: bool) -> None:
        if self.sink == "ws":
            for message in batch:
                for client in list(self.clients):
                    client.write_message(message)
            return
        pipe = self.redis.pipeline(transaction=False)
        for message in batch:
            if console:  # the history for resumes, capped like the scrollback
                pipe.xadd(STREAM, {b"d": message}, maxlen=256, approximate=True)
            pipe.publish(CHANNEL_OUT, message)
        await pipe.execute()

    async def emit(self, kind: str, count: int, rate: float, size: int) -> None:
        filler = "x" * size
        per_tick = max(1, round(rate * TICK))
        start = time.monotonic()
        sent = 0
        while sent < count:
            n = min(per_tick, count - sent)
            await self._send([self._message(kind, size, filler) for _ in range(n)], kind == "console")
            sent += n
            delay = start + (sent / per_tick) * TICK - time.monotonic()
            await asyncio.sleep(max(0.0, delay))

    def echo(self, keystroke: bytes) -> None:
        # the "guest" echoes the keystroke at once as console output, stamp preserved
        message = b'{"type":"console","echo":' + keystroke + b"}"
        if self.sink == "ws":
            for client in list(self.clients):
                client.write_message(message)
        else:
            asyncio.get_running_loop().create_task(self.redis.publish(CHANNEL_OUT, message))


# ---------------------------------------------------------------- the relaying node


class _RelaySocket(tornado.websocket.WebSocketHandler):
    def initialize(self, relay: Relay) -> None:
        self.relay = relay
        self.upstream: tornado.websocket.WebSocketClientConnection | None = None

    async def open(self) -> None:
        if self.relay.via == "forward":
            # one proxied socket to the owner per client, frames copied both ways
            self.upstream = await tornado.websocket.websocket_connect(
                f"ws://127.0.0.1:{self.relay.owner_port}/ws",
                on_message_callback=self._from_owner,
            )
        else:
            self.relay.viewers.add(self)

    def _from_owner(self, message: str | bytes | None) -> None:
        if message is not None:
            self.write_message(message)

    def on_message(self, message: str | bytes) -> None:
        if self.upstream is not None:
            self.upstream.write_message(message)
        elif self.relay.redis is not None:
            asyncio.get_running_loop().create_task(self.relay.redis.publish(CHANNEL_IN, message))

    def on_close(self) -> None:
        self.relay.viewers.discard(self)
        if self.upstream is not None:
            self.upstream.close()


class Relay:
    """A node that does not own the VM: subscribes once and fans out, or forwards."""

    def __init__(self, via: str, owner_port: int, redis_url: str | None) -> None:
        self.via = via
        self.owner_port = owner_port
        self.redis_url = redis_url
        self.redis: Any = None
        self.viewers: set[_RelaySocket] = set()

    async def start(self) -> None:
        if self.via == "redis":
            import redis.asyncio as aioredis

            self.redis = aioredis.Redis.from_url(self.redis_url)
            pubsub = self.redis.pubsub()
            await pubsub.subscribe(CHANNEL_OUT)
            asyncio.get_running_loop().create_task(self._outputs(pubsub))

    async def _outputs(self, pubsub: Any) -> None:
        async for item in pubsub.listen():
            if item["type"] == "message":
                data = item["data"].decode()  # text frames, as vmws sends
                for viewer in list(self.viewers):
                    viewer.write_message(data)


async def _serve_role(args: argparse.Namespace) -> None:
    if args.role == "owner":
        owner = Owner(args.sink, args.redis_url)
        await owner.start()
        routes: list[Any] = [(r"/ws", _OwnerSocket, {"owner": owner}), (r"/go", _GoHandler, {"owner": owner})]
    else:
        relay = Relay(args.via, args.owner_port, args.redis_url)
        await relay.start()
        routes = [(r"/ws", _RelaySocket, {"relay": relay})]
    server = tornado.httpserver.HTTPServer(tornado.web.Application(routes))
    server.add_sockets(tornado.netutil.bind_sockets(args.port, "127.0.0.1"))
    await asyncio.Event().wait()


# ---------------------------------------------------------------- the clients and the runs


@dataclass
class Figures:
    design: str
    workload: str
    cpu_s: float
    units: float  # MB of console output delivered, or broadcast messages delivered
    p50_ms: float
    p99_ms: float
    redis_calls: int

    @property
    def cpu_per_unit_ms(self) -> float:
        return 1000 * self.cpu_s / self.units


class _Topology:
    """Owner (+ relaying node) (+ Redis) for one design, stopped on exit."""

    def __init__(self, design: str, directory: Path) -> None:
        self.design = design
        self.directory = directory
        self.procs: list[subprocess.Popen[bytes]] = []
        self.redis: Any = None

    def _spawn(self, *argv: str) -> tuple[subprocess.Popen[bytes], int]:
        port = free_port()
        proc = subprocess.Popen(
            [sys.executable, "-m", "loadtests.bench.crossnode", "--port", str(port), *argv],
            stdin=subprocess.DEVNULL,
        )
        self.procs.append(proc)
        wait_for_port(port, proc, argv[1])
        return proc, port

    def __enter__(self) -> _Topology:
        redis_url = None
        if self.design == "redis":
            self.redis = start_redis(self.directory / "redis")
            redis_url = self.redis.url
        sink = "redis" if self.design == "redis" else "ws"
        self.owner, self.owner_port = self._spawn(
            "--role", "owner", "--sink", sink, *(["--redis-url", redis_url] if redis_url else [])
        )
        self.entry_port = self.owner_port
        self.relay: subprocess.Popen[bytes] | None = None
        if self.design != "direct":
            self.relay, self.entry_port = self._spawn(
                "--role",
                "relay",
                "--via",
                self.design,
                "--owner-port",
                str(self.owner_port),
                *(["--redis-url", redis_url] if redis_url else []),
            )
        return self

    def pids(self) -> list[int]:
        pids = [p.pid for p in self.procs]
        if self.redis is not None:
            pids.append(self.redis.pid)
        return pids

    def cpu(self) -> float:
        return sum(usage_of(pid).cpu_seconds for pid in self.pids())

    def redis_calls(self) -> int:
        if self.redis is None:
            return 0
        out = subprocess.run(
            ["redis-cli", "-p", str(self.redis.port), "info", "stats"], capture_output=True, text=True, check=True
        ).stdout
        return next(int(line.split(":")[1]) for line in out.splitlines() if line.startswith("total_commands_processed"))

    def __exit__(self, *exc: object) -> None:
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self.redis is not None:
            self.redis.stop()


async def _clients(port: int, n: int, sink: list[list[float]], total: list[int]) -> list[Any]:
    conns = []
    for i in range(n):
        lat = sink[i]

        def arrived(message: str | bytes | None, lat: list[float] = lat, first: bool = i == 0) -> None:
            if message is None:
                return
            if not first:  # the others only count: the clients must not be the bottleneck
                total[0] += 1
                return
            now = time.monotonic_ns()
            data = orjson.loads(message)
            total[0] += 1
            stamp = data.get("t") or data.get("echo", {}).get("t")
            if stamp:
                lat.append((now - stamp) / 1e6)

        conns.append(
            await tornado.websocket.websocket_connect(f"ws://127.0.0.1:{port}/ws", on_message_callback=arrived)
        )
    await asyncio.sleep(0.3)  # subscriptions and proxied sockets in place
    return conns


async def _go(port: int, **spec: Any) -> None:
    from tornado.httpclient import AsyncHTTPClient

    await AsyncHTTPClient().fetch(
        f"http://127.0.0.1:{port}/go", method="POST", body=orjson.dumps(spec), request_timeout=600
    )


async def _measure(design: str, workload: str, directory: Path, quick: bool) -> Figures:
    if workload == "console":  # one viewer, 1 KiB chunks at 2 MB/s
        viewers, count, rate, size = 1, (4000 if quick else 20000), 2000.0, 1024
    elif workload == "broadcast":  # 100 watchers of one VM, 100 messages/s (10,000 frames/s out)
        viewers, count, rate, size = 100, (300 if quick else 1000), 100.0, 0
    else:  # echo: one typist, 50 keystrokes/s
        viewers, count, rate, size = 1, (200 if quick else 1000), 50.0, 0
    with _Topology(design, directory / f"{design}-{workload}") as topo:
        latencies: list[list[float]] = [[] for _ in range(viewers)]
        total = [0]
        conns = await _clients(topo.entry_port, viewers, latencies, total)
        cpu0, calls0 = topo.cpu(), topo.redis_calls()
        if workload == "echo":
            for _ in range(count):
                conns[0].write_message(orjson.dumps({"t": time.monotonic_ns()}))
                await asyncio.sleep(1 / rate)
        else:
            await _go(topo.owner_port, kind=workload, count=count, rate=rate, size=size)
        expected = count * viewers
        deadline = time.monotonic() + 30
        while total[0] < expected and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        cpu = topo.cpu() - cpu0
        calls = topo.redis_calls() - calls0
        for conn in conns:
            conn.close()
    lat = [x for per in latencies for x in per]
    if total[0] < expected:
        progress(f"{design}/{workload}: {total[0]} of {expected} messages arrived")
    units = count * size / 1e6 if workload == "console" else float(total[0])
    return Figures(design, workload, cpu, units, median(lat), percentile(lat, 99), calls)


async def _run(quick: bool, rounds: int) -> list[Figures]:
    results: list[Figures] = []
    with tempfile.TemporaryDirectory(prefix="vmws-crossnode-") as tmp:
        for workload in ("console", "broadcast", "echo"):
            for design in ("direct", "redis", "forward"):
                runs = []
                for r in range(rounds):
                    progress(f"{workload} via {design}, round {r + 1}/{rounds}")
                    runs.append(await _measure(design, workload, Path(tmp) / str(r), quick))
                results.append(
                    Figures(
                        design,
                        workload,
                        median([f.cpu_s for f in runs]),
                        runs[0].units,
                        median([f.p50_ms for f in runs]),
                        median([f.p99_ms for f in runs]),
                        int(median([f.redis_calls for f in runs])),
                    )
                )
    return results


def report(results: list[Figures]) -> str:
    unit = {"console": "ms CPU per MB", "broadcast": "ms CPU per 1,000 messages", "echo": "ms CPU per keystroke"}
    lines = [
        "| workload | design | CPU (all processes) | × direct | p50 ms | p99 ms | × direct p99 | Redis commands |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for f in results:
        base = next(b for b in results if b.workload == f.workload and b.design == "direct")
        per = f.cpu_per_unit_ms * (1000 if f.workload == "broadcast" else 1)
        base_per = base.cpu_per_unit_ms * (1000 if f.workload == "broadcast" else 1)
        lines.append(
            f"| {f.workload} | {f.design} | {per:.2f} {unit[f.workload]} | {per / base_per:.2f} | "
            f"{f.p50_ms:.2f} | {f.p99_ms:.2f} | {f.p99_ms / base.p99_ms:.2f} | {f.redis_calls} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtests.bench.crossnode", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="shorter runs (a smoke test, not figures)")
    parser.add_argument(
        "--rounds", type=int, default=None, help="runs per design and workload (median; default 3, quick 1)"
    )
    # internal: the roles this module runs as in its subprocesses
    parser.add_argument("--role", choices=["owner", "relay"], help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--sink", choices=["ws", "redis"], default="ws", help=argparse.SUPPRESS)
    parser.add_argument("--via", choices=["redis", "forward"], default="redis", help=argparse.SUPPRESS)
    parser.add_argument("--owner-port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--redis-url", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.role:
        asyncio.run(_serve_role(args))
        return 0
    rounds = args.rounds or (1 if args.quick else 3)
    results = asyncio.run(_run(args.quick, rounds))
    print(f"cross-node path, {rounds} round(s), medians; CPU counts owner + relaying node + Redis")
    print(report(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
