import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { BACKLOG_CHARS, ConsoleSession, type ConsoleEvent } from "../src/consoleSession";
import { fakeSockets } from "./fakeSocket";

function setup() {
  const fakes = fakeSockets();
  const session = new ConsoleSession({ url: "ws://vmws.test/ws/vms/my-vm/console?token=t", createSocket: fakes.factory });
  session.start();
  return { fakes, session };
}

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

describe("ConsoleSession", () => {
  it("streams output in order, starting each connection with a reset", () => {
    const { fakes, session } = setup();
    const events: ConsoleEvent[] = [];
    session.onOutput((e) => events.push(e));
    const ws = fakes.last();
    ws.connect();
    ws.receive("console", { content: "my-vm login: ", eof: false });
    ws.receive("console", { content: "", eof: false });
    ws.receive("console", { content: "admin\r\n", eof: false });
    expect(events).toEqual([
      { kind: "reset" },
      { kind: "data", content: "my-vm login: " },
      { kind: "data", content: "admin\r\n" },
    ]);
  });

  it("holds output that arrives before anyone subscribes, and hands it to the first subscriber", () => {
    const { fakes, session } = setup();
    fakes.last().connect();
    fakes.last().receive("console", { content: "scrollback", eof: false });
    const events: ConsoleEvent[] = [];
    session.onOutput((e) => events.push(e));
    expect(events).toEqual([{ kind: "reset" }, { kind: "data", content: "scrollback" }]);
  });

  it("bounds that backlog, dropping the oldest output", () => {
    const { fakes, session } = setup();
    fakes.last().connect();
    const chunk = "x".repeat(64 * 1024);
    for (let i = 0; i < 10; i++) fakes.last().receive("console", { content: chunk, eof: false });
    const events: ConsoleEvent[] = [];
    session.onOutput((e) => events.push(e));
    const chars = events.reduce((n, e) => n + (e.kind === "data" ? e.content.length : 0), 0);
    expect(chars).toBeLessThanOrEqual(BACKLOG_CHARS);
    expect(chars).toBeGreaterThan(BACKLOG_CHARS - chunk.length - 1);
    expect(events[0]).toEqual({ kind: "reset" });
  });

  it("sends console_input only while connected", () => {
    const { fakes, session } = setup();
    expect(session.send("ls\n")).toBe(false);
    fakes.last().connect();
    expect(session.send("ls\n")).toBe(true);
    expect(fakes.last().frames).toMatchObject([{ type: "console_input", data: { content: "ls\n" } }]);
  });

  it("marks eof and does not reconnect after the server's normal close", () => {
    const { fakes, session } = setup();
    const events: ConsoleEvent[] = [];
    session.onOutput((e) => events.push(e));
    fakes.last().connect();
    fakes.last().receive("console", { content: "Powering off.\n", eof: true });
    fakes.last().serverClose(1000);
    expect(session.getSnapshot()).toMatchObject({ eof: true, connection: "closed" });
    expect(events.at(-1)).toEqual({ kind: "eof" });
    vi.advanceTimersByTime(60_000);
    expect(fakes.sockets).toHaveLength(1);
  });

  it("fails with VM_NOT_RUNNING when the VM is not running (4009)", () => {
    const { fakes, session } = setup();
    fakes.last().open();
    fakes.last().receive("error", { code: "VM_NOT_RUNNING", message: "Cannot connect to console: VM is not running" });
    fakes.last().serverClose(4009);
    expect(session.getSnapshot()).toMatchObject({ connection: "failed", error: { code: "VM_NOT_RUNNING" } });
    vi.advanceTimersByTime(60_000);
    expect(fakes.sockets).toHaveLength(1);
  });

  it("reconnects 5 s after a lost connection and clears eof on the new one", () => {
    const { fakes, session } = setup();
    const events: ConsoleEvent[] = [];
    session.onOutput((e) => events.push(e));
    fakes.last().connect();
    fakes.last().serverClose(1006);
    expect(session.getSnapshot().connection).toBe("reconnecting");
    vi.advanceTimersByTime(5_000);
    fakes.last().connect();
    expect(session.getSnapshot()).toMatchObject({ connection: "open", eof: false, error: null });
    expect(events.filter((e) => e.kind === "reset")).toHaveLength(2);
  });
});

describe("ConsoleSession presence", () => {
  it("keeps the latest viewers list while connected, and empties it when the connection goes", () => {
    const { fakes, session } = setup();
    fakes.last().connect();
    const viewers = [{ user: "alice", mode: "interactive", joinedAt: "2026-01-01T00:00:00.000Z" }];
    fakes.last().receive("viewers", { viewers });
    expect(session.getSnapshot().viewers).toEqual(viewers);
    fakes.last().receive("viewers", { viewers: [{ user: 1 }] }); // malformed: dropped, not shown
    expect(session.getSnapshot().viewers).toEqual(viewers);
    fakes.last().serverClose(1006);
    expect(session.getSnapshot().viewers).toEqual([]);
  });
});
