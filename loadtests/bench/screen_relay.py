"""Benchmark 7: a VM's screen relayed to a browser: vmws's ``/ws/vms/{name}/screen``
against websockify (PyPI), relaying the same RFB server.

The RFB server is a process of its own (``loadtests.bench.screen_host``: the simulator
serving one VM's screen on a loopback TCP port), as a QEMU guest's VNC server is.
websockify relays that port; vmws (``loadtests.bench.screen_gateway``: ``vmws serve``
whose VM screens are that port) relays it too, over TCP. The RFB server and both
relays share CPU 0, the viewer runs on CPU 1. The screen is kept busy: ``seq`` counts
on tty1, and each viewer asks for Raw only and sends its next incremental
FramebufferUpdateRequest as soon as an update has arrived, as noVNC does. Per round:
the RFB bytes received per second, and each update's latency from its request to its
last byte (p99). Rounds alternate vmws and websockify; ratios are per round, medians.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from loadtests.bench import screen_gateway
from loadtests.bench.common import (
    SERVER_CPU,
    Bench,
    ClientMeter,
    Measured,
    Outcome,
    client_peak,
    median,
    paired_ratio,
    percentile,
    progress,
)
from loadtests.cluster_procs import free_port, wait_for_port
from loadtests.fleet import vm_name, write_fleet
from loadtests.procs import ServerProcess, pin_to, raise_nofile, start_server, usage_of
from loadtests.wsclient import Connection, connect

__all__ = ["run", "TARGET_MBPS", "TARGET_P99"]

TARGET_MBPS = 1.0  # vmws's MB/s ≥ websockify's
TARGET_P99 = 1.5  # vmws's p99 update latency ≤ 1.5 × websockify's
_KEY_RETURN = 0xFF0D
_ENCODING_RAW = 0


def _key(keysym: int) -> bytes:
    return struct.pack(">BBxxI", 4, 1, keysym) + struct.pack(">BBxxI", 4, 0, keysym)


class _Viewer:
    """An RFB 3.8 viewer over a binary WebSocket that counts bytes and times updates.

    Pixel data is skipped as it streams in (never kept), so the client stays cheap."""

    def __init__(self) -> None:
        self.conn: Connection | None = None
        self.ready = asyncio.Event()
        self.recording = False
        self.latencies: list[float] = []
        self.updates = 0
        self.failed: Exception | None = None
        self._buf = bytearray()
        self._state = "version"
        self._skip = 0
        self._rects = 0
        self._bpp = 4
        self._width = self._height = 0
        self._asked = 0.0

    def on_message(self, conn: Connection, payload: bytes, arrived: float) -> None:
        # the greeting can come with the upgrade's answer, before connect() has returned
        self.conn = conn
        view = memoryview(payload)
        if self._skip:
            taken = min(self._skip, len(view))
            self._skip -= taken
            view = view[taken:]
            if self._skip == 0 and self._state == "pixels":
                self._rect_done(arrived)
        self._buf += view
        try:
            self._parse(arrived)
        except (ConnectionError, struct.error) as exc:  # said by _open_viewer, not lost in the transport
            self.failed = exc
            conn.close()

    def _send(self, data: bytes) -> None:
        assert self.conn is not None
        self.conn.send_binary(data)

    def type_keys(self, text: str) -> None:
        self._send(b"".join(_key(_KEY_RETURN if c == "\r" else ord(c)) for c in text))

    def _ask(self, incremental: bool) -> None:
        self._asked = time.perf_counter()
        self._send(struct.pack(">BBHHHH", 3, int(incremental), 0, 0, self._width, self._height))

    def _rect_done(self, arrived: float) -> None:
        self._state = "rect"
        self._rects -= 1
        if self._rects == 0:
            self._update_done(arrived)

    def _update_done(self, arrived: float) -> None:
        self._state = "message"
        self.updates += 1
        if self.recording:
            self.latencies.append(arrived - self._asked)
        self._ask(True)

    def _parse(self, arrived: float) -> None:  # noqa: C901 (one state machine)
        buf = self._buf
        while True:
            if self._skip:
                taken = min(self._skip, len(buf))
                del buf[:taken]
                self._skip -= taken
                if self._skip:
                    return
                if self._state == "pixels":
                    self._rect_done(arrived)
                continue
            state = self._state
            if state == "version":
                if len(buf) < 12:
                    return
                del buf[:12]
                self._send(b"RFB 003.008\n")
                self._state = "security"
            elif state == "security":
                if len(buf) < 1 or len(buf) < 1 + buf[0]:
                    return
                if buf[0] == 0 or 1 not in buf[1 : 1 + buf[0]]:
                    raise ConnectionError("the server offers no security type None")
                del buf[: 1 + buf[0]]
                self._send(b"\x01")
                self._state = "result"
            elif state == "result":
                if len(buf) < 4:
                    return
                if buf[:4] != b"\0\0\0\0":
                    raise ConnectionError("security handshake failed")
                del buf[:4]
                self._send(b"\x01")  # ClientInit: shared
                self._state = "init"
            elif state == "init":
                if len(buf) < 24 or len(buf) < 24 + struct.unpack_from(">I", buf, 20)[0]:
                    return
                self._width, self._height, bits = struct.unpack_from(">HHB", buf, 0)
                self._bpp = bits // 8
                del buf[: 24 + struct.unpack_from(">I", buf, 20)[0]]
                self._send(struct.pack(">BxHi", 2, 1, _ENCODING_RAW))  # Raw only: the most bytes
                self._state = "message"
                self._ask(False)
                self.ready.set()
            elif state == "message":
                if not buf:
                    return
                kind = buf[0]
                if kind == 0:  # FramebufferUpdate
                    if len(buf) < 4:
                        return
                    self._rects = struct.unpack_from(">H", buf, 2)[0]
                    del buf[:4]
                    self._state = "rect"
                    if self._rects == 0:
                        self._update_done(arrived)
                elif kind == 2:  # Bell
                    del buf[:1]
                elif kind == 3:  # ServerCutText: skipped
                    if len(buf) < 8:
                        return
                    self._skip = struct.unpack_from(">I", buf, 4)[0]
                    del buf[:8]
                else:
                    raise ConnectionError(f"unexpected RFB server message type {kind}")
            elif state == "rect":
                if len(buf) < 12:
                    return
                _, _, w, h, encoding = struct.unpack_from(">HHHHi", buf, 0)
                del buf[:12]
                size = w * h * self._bpp if encoding == _ENCODING_RAW else 4 if encoding == 1 else 0
                if size:
                    self._skip = size
                    self._state = "pixels"
                else:
                    self._rect_done(arrived)


async def _open_viewer(url: str) -> _Viewer:
    viewer = _Viewer()
    viewer.conn = await connect(url, viewer.on_message, subprotocol="binary")
    ready: asyncio.Future[object] = asyncio.ensure_future(viewer.ready.wait())
    closed: asyncio.Future[object] = viewer.conn.closed  # type: ignore[assignment]
    # a loaded machine's first full update can take a while
    await asyncio.wait({ready, closed}, timeout=30, return_when=asyncio.FIRST_COMPLETED)
    ready.cancel()
    if not viewer.ready.is_set():
        viewer.conn.close()
        raise ConnectionError(f"no RFB session through {url.split('?')[0]}: {viewer.failed or 'closed or timed out'}")
    return viewer


async def _round(url: str, host_pid: int, seconds: float) -> Measured:
    """(MB/s of RFB received, p99 update latency in ms, the RFB server's CPU share, updates/s) for one viewer."""
    viewer = await _open_viewer(url)
    assert viewer.conn is not None
    try:
        await asyncio.sleep(0.5)  # the first full update and the warm-up are not counted
        u0, b0, t0, client = usage_of(host_pid), viewer.conn.bytes_received, time.perf_counter(), ClientMeter()
        viewer.recording = True
        await asyncio.sleep(seconds)
        viewer.recording = False
        u1, b1, t1 = usage_of(host_pid), viewer.conn.bytes_received, time.perf_counter()
        if not viewer.conn.is_open:
            raise RuntimeError(f"the relay closed the screen (code {viewer.conn.close_code})")
        return Measured(
            (
                (b1 - b0) / (t1 - t0) / 1e6,
                percentile(viewer.latencies, 99) * 1000,
                (u1.cpu_seconds - u0.cpu_seconds) / (t1 - t0),
                len(viewer.latencies) / (t1 - t0),
            ),
            client.share(),
        )
    finally:
        viewer.conn.close()
        await asyncio.sleep(0.3)


def _start_host(out: Path, fleet: Path, vm: str) -> ServerProcess:
    """The RFB server: the simulator serving ``vm``'s screen on a loopback TCP port."""
    port_file = out / "screen-port"
    port_file.unlink(missing_ok=True)
    argv = [sys.executable, "-m", "loadtests.bench.screen_host", "--scenario", str(fleet), "--vm", vm]
    log = out / "screen-host.log"
    with open(log, "wb") as sink:
        proc = subprocess.Popen(
            [*argv, "--port-file", str(port_file)],
            stdout=sink,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=_pinned,
        )
    deadline = time.monotonic() + 15
    while not port_file.exists() or not port_file.read_text(encoding="ascii"):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            raise RuntimeError(f"the screen host did not serve its screen port (log: {log})")
        time.sleep(0.05)
    port = int(port_file.read_text(encoding="ascii"))
    return ServerProcess(proc, port, log, f"RFB on 127.0.0.1:{port}")


def _start_gateway(bench: Bench, out: Path, fleet: Path, screen_port: int) -> ServerProcess:
    """vmws, its VMs' screens being the screen host's port."""
    argv = [sys.executable, "-m", "loadtests.bench.screen_gateway", "--host", "127.0.0.1", "--port", "0"]
    argv += ["--scenario", str(fleet), "--max-message-rate", "100000"]
    env = {"VMWS_JWT_SECRET": bench.secret, screen_gateway.PORT_ENV: str(screen_port)}
    return start_server(argv, out / "vmws-screen.log", cpu=SERVER_CPU, env=env)


def _pinned() -> None:  # in the child, before exec
    raise_nofile()
    pin_to(SERVER_CPU)


@contextlib.contextmanager
def _websockify(target_port: int, log: Path) -> Iterator[int]:
    """websockify relaying ``target_port``, pinned beside the host; yields its port."""
    port = free_port()
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "websockify", f"127.0.0.1:{port}", f"127.0.0.1:{target_port}"],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=_pinned,
            start_new_session=True,  # its per-connection children go with it
        )
    try:
        wait_for_port(port, proc, "websockify", timeout=15)
        yield port
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, 15)
        proc.wait(10)


async def _make_busy(url: str) -> None:
    """Log in on tty1 through the screen and run ``seq 1000000000`` there: it scrolls for good, each row changing (``yes`` would leave the picture as it was, and the server sends no update for that)."""
    viewer = await _open_viewer(url)
    assert viewer.conn is not None
    try:
        for text in ("admin\r", "admin\r", "seq 1000000000\r"):
            viewer.type_keys(text)
            await asyncio.sleep(1.0)
    finally:
        viewer.conn.close()
        await asyncio.sleep(0.3)


async def run(out: Path, *, rounds: int, seconds: float) -> Outcome:
    bench = Bench(out)
    vm = vm_name(0)
    results: dict[str, list[Measured]] = {"vmws": [], "websockify": []}
    fleet = write_fleet(out / "fleet-screen.toml", 1)
    with _start_host(out, fleet, vm) as host, _start_gateway(bench, out, fleet, host.port) as gateway:
        with _websockify(host.port, out / "websockify.log") as wsify_port:
            vmws_url = lambda: f"{gateway.base_url}/ws/vms/{vm}/screen?token={bench.token()}"  # noqa: E731
            wsify_url = f"ws://127.0.0.1:{wsify_port}/"
            await _make_busy(wsify_url)
            for r in range(rounds):
                results["vmws"].append(await _round(vmws_url(), host.pid, seconds))
                results["websockify"].append(await _round(wsify_url, host.pid, seconds))
                progress(
                    f"screen round {r + 1}/{rounds}: "
                    + ", ".join(
                        f"{k} {v[-1].figures[0]:.1f} MB/s, p99 {v[-1].figures[1]:.1f} ms, "
                        f"{v[-1].figures[3]:.0f} updates/s, RFB server {v[-1].figures[2] * 100:.0f}% "
                        f"(client {v[-1].client * 100:.0f}%)"
                        for k, v in results.items()
                    )
                )
    mbps = {k: median([m.figures[0] for m in v]) for k, v in results.items()}
    p99 = {k: median([m.figures[1] for m in v]) for k, v in results.items()}
    ups = {k: median([m.figures[3] for m in v]) for k, v in results.items()}
    ratio, kept = paired_ratio(results["vmws"], results["websockify"], 0)
    p99_ratio, _ = paired_ratio(results["vmws"], results["websockify"], 1)
    return Outcome(
        "screen_relay",
        ratio,
        TARGET_MBPS,
        higher=True,
        extra_ok=p99_ratio <= TARGET_P99,
        note=f"vmws {mbps['vmws']:.1f} vs websockify {mbps['websockify']:.1f} MB/s of RFB; p99 update "
        f"{p99['vmws']:.1f} vs {p99['websockify']:.1f} ms, ratio {p99_ratio:.2f} target {TARGET_P99:g}; "
        f"{ups['vmws']:.0f} vs {ups['websockify']:.0f} updates/s",
        figures={"mb_per_s": mbps, "p99_ms": p99, "updates_per_s": ups, "p99_ratio": p99_ratio},
        client_cpu=client_peak([m for v in results.values() for m in v]),
        rounds=(kept, rounds),
    )
