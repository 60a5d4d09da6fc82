// A scripted stand-in for the browser WebSocket: the test plays the server.

import type { SocketFactory, SocketLike } from "../src/socket";

export class FakeSocket implements SocketLike {
  onopen: SocketLike["onopen"] = null;
  onmessage: SocketLike["onmessage"] = null;
  onclose: SocketLike["onclose"] = null;
  onerror: SocketLike["onerror"] = null;
  readonly sent: string[] = [];
  closedByClient: { code?: number; reason?: string } | null = null;

  constructor(readonly url: string) {}

  send(data: string): void {
    if (this.closedByClient) throw new Error("send on a closed socket");
    this.sent.push(data);
  }

  close(code?: number, reason?: string): void {
    this.closedByClient = { code, reason };
  }

  /** Frames the client sent, parsed. */
  get frames(): { type: string; timestamp: string; data: Record<string, unknown> }[] {
    return this.sent.map((s) => JSON.parse(s));
  }

  // Server side

  open(): void {
    this.onopen?.({});
  }

  receive(type: string, data: unknown, timestamp = new Date().toISOString()): void {
    this.onmessage?.({ data: JSON.stringify({ type, timestamp, data }) });
  }

  receiveRaw(raw: unknown): void {
    this.onmessage?.({ data: raw });
  }

  /** The server's `connection` message, as docs/websocket-api.md has it. */
  connect(overrides: Record<string, unknown> = {}): void {
    this.open();
    this.receive("connection", {
      status: "connected",
      vm: "my-vm",
      sessionId: "s-1",
      user: "alice",
      permissions: ["read", "control", "console"],
      heartbeatInterval: 30,
      metricsInterval: 2,
      ...overrides,
    });
  }

  serverClose(code: number, reason = ""): void {
    this.onerror?.({});
    this.onclose?.({ code, reason });
  }
}

/** A socket factory that remembers every socket it made. */
export function fakeSockets(): { factory: SocketFactory; sockets: FakeSocket[]; last(): FakeSocket } {
  const sockets: FakeSocket[] = [];
  return {
    sockets,
    factory: (url) => {
      const socket = new FakeSocket(url);
      sockets.push(socket);
      return socket;
    },
    last: () => {
      const socket = sockets[sockets.length - 1];
      if (socket === undefined) throw new Error("no socket was made");
      return socket;
    },
  };
}

export function metricsData(rx: number, tx: number, read: number, write: number, cpu = 10) {
  return {
    cpu: { utilization: cpu },
    memory: { used: 1024, total: 4096 },
    network: { rxBytes: rx, txBytes: tx },
    disk: { readBytes: read, writeBytes: write },
  };
}
