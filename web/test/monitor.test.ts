import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { CommandError, VMMonitor } from "../src/monitor";
import { fakeSockets, metricsData } from "./fakeSocket";

function setup(options: { commandTimeoutMs?: number; historySize?: number } = {}) {
  const fakes = fakeSockets();
  const monitor = new VMMonitor({ url: "ws://vmws.test/ws/vms/my-vm?token=t", createSocket: fakes.factory, ...options });
  const notified = vi.fn();
  monitor.subscribe(notified);
  monitor.start();
  return { fakes, monitor, notified };
}

/** The requestId of the n-th command the client sent. */
const requestIdOf = (frames: { type: string; data: Record<string, unknown> }[], n: number) =>
  frames.filter((f) => f.type === "command")[n]!.data.requestId as string;

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

describe("snapshot", () => {
  it("follows connection, status and metrics, notifying subscribers each time", () => {
    const { fakes, monitor, notified } = setup();
    const ws = fakes.last();
    ws.connect();
    ws.receive("status", { status: "running", lastStateChange: "2023-05-23T12:30:00Z", uptime: 300 });
    ws.receive("metrics", metricsData(0, 0, 0, 0), "2023-05-23T12:34:56Z");
    ws.receive("metrics", metricsData(4000, 2000, 0, 8000), "2023-05-23T12:34:58Z");
    const snap = monitor.getSnapshot();
    expect(snap.connection).toBe("open");
    expect(snap.info?.permissions).toEqual(["read", "control", "console"]);
    expect(snap.status?.status).toBe("running");
    expect(snap.history.points.map((p) => [p.rxRate, p.txRate, p.writeRate])).toEqual([
      [null, null, null],
      [2000, 1000, 4000],
    ]);
    expect(notified.mock.calls.length).toBeGreaterThanOrEqual(4);
  });

  it("bounds the metrics history", () => {
    const { fakes, monitor } = setup({ historySize: 5 });
    fakes.last().connect();
    for (let i = 0; i < 12; i++) {
      fakes.last().receive("metrics", metricsData(i, 0, 0, 0), new Date(Date.UTC(2024, 0, 1, 0, 0, 2 * i)).toISOString());
    }
    expect(monitor.getSnapshot().history.points).toHaveLength(5);
  });

  it("does not compute a rate across a reconnect", () => {
    const { fakes, monitor } = setup();
    fakes.last().connect();
    fakes.last().receive("metrics", metricsData(0, 0, 0, 0), "2024-01-01T00:00:00Z");
    fakes.last().serverClose(1006);
    vi.advanceTimersByTime(5_000);
    fakes.last().connect();
    fakes.last().receive("metrics", metricsData(9_000_000, 0, 0, 0), "2024-01-01T00:01:00Z");
    expect(monitor.getSnapshot().history.points.map((p) => p.rxRate)).toEqual([null, null]);
  });

  it("keeps the last error", () => {
    const { fakes, monitor } = setup();
    fakes.last().connect();
    fakes.last().receive("error", { code: "INVALID_COMMAND", message: "bad frame" });
    expect(monitor.getSnapshot().lastError).toEqual({ code: "INVALID_COMMAND", message: "bad frame" });
    expect(monitor.getSnapshot().connection).toBe("open");
  });
});

describe("sendCommand", () => {
  it("sends the action with a fresh requestId and resolves on the matching response", async () => {
    const { fakes, monitor } = setup();
    const ws = fakes.last();
    ws.connect();
    const done = monitor.sendCommand("stop", { force: true });
    const frame = ws.frames[0]!;
    expect(frame.type).toBe("command");
    expect(frame.data).toMatchObject({ action: "stop", force: true });
    const requestId = frame.data.requestId as string;
    ws.receive("response", { requestId, success: true, message: "Command 'stop' completed successfully" });
    await expect(done).resolves.toEqual({ requestId, message: "Command 'stop' completed successfully" });
  });

  it("matches responses by requestId, whatever their order", async () => {
    const { fakes, monitor } = setup();
    const ws = fakes.last();
    ws.connect();
    const first = monitor.sendCommand("suspend");
    const second = monitor.sendCommand("resume");
    const [id1, id2] = [requestIdOf(ws.frames, 0), requestIdOf(ws.frames, 1)];
    expect(id1).not.toBe(id2);
    ws.receive("response", { requestId: "someone-else", success: true, message: "not ours" });
    ws.receive("response", { requestId: id2, success: true, message: "resumed" });
    ws.receive("response", { requestId: id1, success: true, message: "suspended" });
    await expect(first).resolves.toMatchObject({ message: "suspended" });
    await expect(second).resolves.toMatchObject({ message: "resumed" });
  });

  it("rejects with the server's code when the command fails", async () => {
    const { fakes, monitor } = setup();
    fakes.last().connect();
    const done = monitor.sendCommand("suspend");
    const requestId = requestIdOf(fakes.last().frames, 0);
    fakes.last().receive("response", { requestId, success: false, message: "VM is stopped", code: "VM_NOT_RUNNING" });
    await expect(done).rejects.toEqual(new CommandError("VM_NOT_RUNNING", "VM is stopped", requestId));
  });

  it("rejects on an error message that names the requestId (a refused command)", async () => {
    const { fakes, monitor } = setup();
    fakes.last().connect({ permissions: ["read"] });
    const done = monitor.sendCommand("start");
    const requestId = requestIdOf(fakes.last().frames, 0);
    fakes.last().receive("error", { code: "AUTH_ERROR", message: "needs control", requestId });
    await expect(done).rejects.toMatchObject({ code: "AUTH_ERROR", requestId });
    expect(monitor.getSnapshot().connection).toBe("open");
  });

  it("rejects after the timeout when no response comes, and ignores a late one", async () => {
    const { fakes, monitor } = setup({ commandTimeoutMs: 1_000 });
    fakes.last().connect();
    const done = monitor.sendCommand("restart");
    const caught = done.catch((e: unknown) => e);
    vi.advanceTimersByTime(999);
    const requestId = requestIdOf(fakes.last().frames, 0);
    vi.advanceTimersByTime(1);
    expect(await caught).toMatchObject({ code: "TIMEOUT", requestId });
    fakes.last().receive("response", { requestId, success: true, message: "late" });
  });

  it("rejects at once when not connected, and pending ones when the connection drops", async () => {
    const { fakes, monitor } = setup();
    await expect(monitor.sendCommand("start")).rejects.toMatchObject({ code: "DISCONNECTED" });
    fakes.last().connect();
    const done = monitor.sendCommand("start");
    fakes.last().serverClose(1001);
    await expect(done).rejects.toMatchObject({ code: "DISCONNECTED" });
  });
});

describe("charts pre-filled from the server's history", () => {
  it("puts the loaded samples before the live ones, once per monitor", async () => {
    const loaded = [
      { time: Date.parse("2023-05-23T12:30:00Z") / 1000, data: metricsData(0, 0, 0, 0) },
      { time: Date.parse("2023-05-23T12:30:10Z") / 1000, data: metricsData(10_000, 0, 0, 0) },
      // as new as the live sample: left out
      { time: Date.parse("2023-05-23T12:34:56Z") / 1000, data: metricsData(99, 0, 0, 0) },
    ];
    let resolve: (samples: typeof loaded) => void = () => undefined;
    const loadHistory = vi.fn(() => new Promise<typeof loaded>((r) => (resolve = r)));
    const fakes = fakeSockets();
    const monitor = new VMMonitor({ url: "ws://vmws.test/ws/vms/my-vm?token=t", createSocket: fakes.factory, loadHistory });
    monitor.start();
    const ws = fakes.last();
    ws.connect();
    ws.receive("metrics", metricsData(20_000, 0, 0, 0), "2023-05-23T12:34:56Z");
    resolve(loaded);
    await vi.waitFor(() => expect(monitor.getSnapshot().history.points).toHaveLength(3));
    const live = Date.parse("2023-05-23T12:34:56Z") / 1000;
    expect(monitor.getSnapshot().history.points.map((p) => [p.time, p.rxRate])).toEqual([
      [loaded[0]!.time, null],
      [loaded[1]!.time, 1000],
      // the live sample came first, with no rate; the loaded one before it gives it one
      [live, (20_000 - 10_000) / (live - loaded[1]!.time)],
    ]);
    monitor.stop();
    monitor.start();
    expect(loadHistory).toHaveBeenCalledTimes(1);
    monitor.dispose();
  });
});
