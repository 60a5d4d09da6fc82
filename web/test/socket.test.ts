import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { ConnectError, ManagedSocket, type ConnectionState, type WireError } from "../src/socket";
import { fakeSockets } from "./fakeSocket";

function setup(options: { reconnectOnNormalClose?: boolean } = {}) {
  const fakes = fakeSockets();
  const states: [ConnectionState, WireError | null][] = [];
  const latencies: number[] = [];
  const messages: string[] = [];
  const socket = new ManagedSocket(
    { url: "ws://vmws.test/ws/vms/my-vm?token=t", createSocket: fakes.factory, ...options },
    {
      onState: (s, e) => states.push([s, e]),
      onLatency: (ms) => latencies.push(ms),
      onMessage: (m) => messages.push(m.type),
    },
  );
  socket.start();
  return { fakes, socket, states, latencies, messages };
}

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

describe("connecting", () => {
  it("is open only once the server's connection message arrives", () => {
    const { fakes, socket, messages } = setup();
    expect(fakes.sockets).toHaveLength(1);
    expect(fakes.last().url).toBe("ws://vmws.test/ws/vms/my-vm?token=t");
    fakes.last().open();
    expect(socket.connectionState).toBe("connecting");
    expect(socket.send("x")).toBe(false);
    fakes.last().connect();
    expect(socket.connectionState).toBe("open");
    expect(socket.connection?.user).toBe("alice");
    expect(messages).toEqual(["connection"]);
    expect(socket.send("x")).toBe(true);
  });
});

describe("reconnect timing", () => {
  it("waits 5 s after a lost connection, not less, then opens a new socket", () => {
    const { fakes, states } = setup();
    fakes.last().connect();
    fakes.last().serverClose(1006);
    expect(states.at(-1)?.[0]).toBe("reconnecting");
    expect(states.at(-1)?.[1]?.message).toBe("connection lost");
    vi.advanceTimersByTime(4_999);
    expect(fakes.sockets).toHaveLength(1);
    vi.advanceTimersByTime(1);
    expect(fakes.sockets).toHaveLength(2);
    expect(states.at(-1)?.[0]).toBe("connecting");
  });

  it("keeps trying every 5 s while the server is away (1001) or refuses the upgrade", () => {
    const { fakes } = setup();
    fakes.last().serverClose(1001, "server shutting down");
    for (let attempt = 2; attempt <= 4; attempt++) {
      vi.advanceTimersByTime(5_000);
      expect(fakes.sockets).toHaveLength(attempt);
      fakes.last().serverClose(1006);
    }
  });

  it("reconnects after 60 s of silence, even with the socket still open", () => {
    const { fakes } = setup();
    fakes.last().connect();
    vi.advanceTimersByTime(59_999);
    expect(fakes.sockets).toHaveLength(1);
    vi.advanceTimersByTime(1);
    expect(fakes.sockets).toHaveLength(2);
    expect(fakes.sockets[0]?.closedByClient?.code).toBe(4000);
  });

  it("counts any message, the server's heartbeat among them, as a sign of life", () => {
    const { fakes } = setup();
    fakes.last().connect();
    for (let i = 0; i < 4; i++) {
      vi.advanceTimersByTime(30_000);
      fakes.last().receive("heartbeat", {});
    }
    expect(fakes.sockets).toHaveLength(1);
    vi.advanceTimersByTime(60_000);
    expect(fakes.sockets).toHaveLength(2);
  });

  it("waits at least two heartbeat intervals when the server's interval is long", () => {
    const { fakes } = setup();
    fakes.last().connect({ heartbeatInterval: 45 });
    vi.advanceTimersByTime(89_999);
    expect(fakes.sockets).toHaveLength(1);
    vi.advanceTimersByTime(1);
    expect(fakes.sockets).toHaveLength(2);
  });

  it("ignores events from a socket it has replaced", () => {
    const { fakes, states } = setup();
    fakes.last().connect();
    vi.advanceTimersByTime(60_000);
    const old = fakes.sockets[0]!;
    const before = states.length;
    old.serverClose(1006);
    old.receive("status", { status: "stopped", lastStateChange: "", uptime: 0 });
    expect(states.length).toBe(before);
  });
});

describe("stopping instead of looping", () => {
  it.each([
    [4001, "AUTH_ERROR"],
    [4003, "AUTH_ERROR"],
    [4004, "VM_NOT_FOUND"],
    [4009, "VM_NOT_RUNNING"],
    [4005, "UNKNOWN_ERROR"],
  ])("close code %i fails for good with %s", (code, errorCode) => {
    const { fakes, states, socket } = setup();
    fakes.last().open();
    fakes.last().serverClose(code, "nope");
    expect(socket.connectionState).toBe("failed");
    expect(states.at(-1)?.[1]?.code).toBe(errorCode);
    vi.advanceTimersByTime(600_000);
    expect(fakes.sockets).toHaveLength(1);
  });

  it("uses the server's error message sent before the close", () => {
    const { fakes, states } = setup();
    fakes.last().open();
    fakes.last().receive("error", { code: "AUTH_ERROR", message: "token expired" });
    fakes.last().serverClose(1006);
    expect(states.at(-1)).toEqual(["failed", { code: "AUTH_ERROR", message: "token expired" }]);
    vi.advanceTimersByTime(60_000);
    expect(fakes.sockets).toHaveLength(1);
  });

  it("stays connected on an AUTH_ERROR after the handshake (a refused command)", () => {
    const { fakes, socket } = setup();
    fakes.last().connect({ permissions: ["read"] });
    fakes.last().receive("error", { code: "AUTH_ERROR", message: "needs control", requestId: "r1" });
    expect(socket.connectionState).toBe("open");
  });

  it("can be started again by hand after failing", () => {
    const { fakes, socket } = setup();
    fakes.last().serverClose(4009);
    socket.start();
    expect(fakes.sockets).toHaveLength(2);
    expect(socket.connectionState).toBe("connecting");
  });

  it("ends without retry on a normal close when told so (console eof)", () => {
    const { fakes, socket } = setup({ reconnectOnNormalClose: false });
    fakes.last().connect();
    fakes.last().serverClose(1000);
    expect(socket.connectionState).toBe("closed");
    vi.advanceTimersByTime(60_000);
    expect(fakes.sockets).toHaveLength(1);
  });

  it("dispose closes the socket and cancels every timer", () => {
    const { fakes, socket } = setup();
    fakes.last().connect();
    socket.dispose();
    expect(fakes.last().closedByClient?.code).toBe(1000);
    expect(socket.connectionState).toBe("closed");
    vi.advanceTimersByTime(600_000);
    expect(fakes.sockets).toHaveLength(1);
    expect(fakes.last().sent).toHaveLength(0);
  });
});

describe("URL providers", () => {
  function withProvider(provider: () => Promise<string>) {
    const fakes = fakeSockets();
    const states: [ConnectionState, WireError | null][] = [];
    const socket = new ManagedSocket(
      { url: provider, createSocket: fakes.factory },
      { onState: (s, e) => states.push([s, e]) },
    );
    socket.start();
    return { fakes, socket, states };
  }

  it("asks the provider for a URL on every attempt", async () => {
    let n = 0;
    const { fakes } = withProvider(async () => `ws://h/ws/vms/a?token=ticket-${++n}`);
    await vi.advanceTimersByTimeAsync(0);
    expect(fakes.last().url).toBe("ws://h/ws/vms/a?token=ticket-1");
    fakes.last().serverClose(1006);
    await vi.advanceTimersByTimeAsync(5_000);
    expect(fakes.last().url).toBe("ws://h/ws/vms/a?token=ticket-2");
  });

  it("stops on an AUTH_ERROR from the provider, retries in 5 s on anything else", async () => {
    const refused = withProvider(async () => {
      throw new ConnectError("AUTH_ERROR", "token expired");
    });
    await vi.advanceTimersByTimeAsync(0);
    expect(refused.states.at(-1)).toEqual(["failed", expect.objectContaining({ code: "AUTH_ERROR" })]);
    await vi.advanceTimersByTimeAsync(60_000);
    expect(refused.fakes.sockets).toHaveLength(0);

    let calls = 0;
    const flaky = withProvider(async () => {
      calls += 1;
      if (calls === 1) throw new TypeError("Failed to fetch");
      return "ws://h/x";
    });
    await vi.advanceTimersByTimeAsync(0);
    expect(flaky.states.at(-1)?.[0]).toBe("reconnecting");
    expect(flaky.states.at(-1)?.[1]?.message).toBe("Failed to fetch");
    await vi.advanceTimersByTimeAsync(5_000);
    expect(flaky.fakes.sockets).toHaveLength(1);
  });

  it("drops a URL that arrives after dispose or after the attempt timed out", async () => {
    let release: (url: string) => void = () => {};
    const { fakes, socket } = withProvider(() => new Promise((resolve) => (release = resolve)));
    const first = release;
    await vi.advanceTimersByTimeAsync(60_000); // the provider hung: a new attempt starts
    first("ws://h/late");
    await vi.advanceTimersByTimeAsync(0);
    expect(fakes.sockets).toHaveLength(0);
    socket.dispose();
    release("ws://h/after-dispose");
    await vi.advanceTimersByTimeAsync(0);
    expect(fakes.sockets).toHaveLength(0);
  });
});

describe("heartbeats", () => {
  it("sends a JSON heartbeat every heartbeatInterval and times the echo", () => {
    const { fakes, latencies, messages } = setup();
    const ws = fakes.last();
    ws.connect({ heartbeatInterval: 10 });
    vi.advanceTimersByTime(10_000);
    expect(ws.frames.map((f) => f.type)).toEqual(["heartbeat"]);
    vi.advanceTimersByTime(10_000);
    expect(ws.frames).toHaveLength(2);
    const echo = ws.frames[1]!.data;
    vi.advanceTimersByTime(37);
    ws.receive("heartbeat", echo);
    expect(latencies).toEqual([37]);
    // Our own echo is not passed on as a server message; the server's heartbeats are.
    ws.receive("heartbeat", {});
    expect(messages).toEqual(["connection", "heartbeat"]);
  });

  it("stops sending when the connection is lost", () => {
    const { fakes } = setup();
    const ws = fakes.last();
    ws.connect({ heartbeatInterval: 10 });
    ws.serverClose(1006);
    vi.advanceTimersByTime(4_999);
    expect(ws.sent).toHaveLength(0);
  });
});
