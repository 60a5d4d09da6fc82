// The Screen tab's rules without a browser: a new ticket per attempt, bounded
// backoff after a lost link, no retry on refusals (with the close reason shown), the
// VM stopping (1000), and input only while connected and not watch-only.

import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { keyStrokes, keysymFor, MAX_PASTE_CHARS, XK_RETURN, XK_SHIFT_L } from "../src/keysyms";
import { CloseCode } from "../src/protocol";
import { ScreenSession, type RfbLike, type ScreenSessionOptions, type ScreenSocketLike } from "../src/screenSession";
import { ConnectError, MAX_BACKOFF_MS, ServerBusyError } from "../src/socket";

class FakeScreenSocket implements ScreenSocketLike {
  private listener: ((ev: { code: number; reason: string }) => void) | null = null;
  closedByClient = false;
  constructor(readonly url: string) {}
  addEventListener(_type: "close", listener: (ev: { code: number; reason: string }) => void): void {
    this.listener = listener;
  }
  close(): void {
    this.closedByClient = true;
  }
  /** The server closes. */
  serverClose(code: number, reason = ""): void {
    this.listener?.({ code, reason });
  }
}

class FakeRfb extends EventTarget implements RfbLike {
  readonly keys: [number, string | null, boolean | undefined][] = [];
  ctrlAltDel = 0;
  disconnected = false;
  disconnect(): void {
    this.disconnected = true;
  }
  sendCtrlAltDel(): void {
    this.ctrlAltDel += 1;
  }
  sendKey(keysym: number, code: string | null, down?: boolean): void {
    this.keys.push([keysym, code, down]);
  }
  connect(): void {
    this.dispatchEvent(new Event("connect"));
  }
}

function setup(overrides: Partial<ScreenSessionOptions> = {}) {
  const sockets: FakeScreenSocket[] = [];
  const rfbs: FakeRfb[] = [];
  let tickets = 0;
  const session = new ScreenSession({
    url: async () => `ws://h/ws/vms/v/screen?token=vmt_${++tickets}`,
    createSocket: (url) => {
      const socket = new FakeScreenSocket(url);
      sockets.push(socket);
      return socket;
    },
    attach: () => {
      const rfb = new FakeRfb();
      rfbs.push(rfb);
      return rfb;
    },
    random: () => 0.999_999,
    ...overrides,
  });
  const states: string[] = [];
  session.subscribe(() => states.push(session.getSnapshot().connection));
  return { session, sockets, rfbs, states };
}

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

describe("ScreenSession", () => {
  it("connects with a fresh ticket each time and backs off, bounded, after lost links", async () => {
    const { session, sockets, rfbs } = setup();
    session.start();
    await vi.advanceTimersByTimeAsync(0);
    expect(sockets[0]!.url).toBe("ws://h/ws/vms/v/screen?token=vmt_1");
    rfbs[0]!.connect();
    expect(session.getSnapshot().connection).toBe("open");

    // Lost again and again, never connecting: 5 s, 10 s, 20 s, 40 s, then 60 s at most.
    const waits: number[] = [];
    for (let i = 0; i < 6; i++) {
      sockets.at(-1)!.serverClose(CloseCode.ABNORMAL_CLOSURE);
      expect(session.getSnapshot()).toMatchObject({ connection: "reconnecting", error: { message: "connection lost" } });
      const before = sockets.length;
      let waited = 0;
      while (sockets.length === before) {
        await vi.advanceTimersByTimeAsync(500);
        waited += 500;
      }
      waits.push(waited);
    }
    expect(waits).toEqual([5_000, 10_000, 20_000, 40_000, MAX_BACKOFF_MS, MAX_BACKOFF_MS]);
    expect(new Set(sockets.map((s) => s.url)).size).toBe(sockets.length);
    // A connection that succeeds starts the backoff over.
    rfbs.at(-1)!.connect();
    sockets.at(-1)!.serverClose(CloseCode.GOING_AWAY, "server shutting down");
    expect(session.getSnapshot().error?.message).toBe("server shutting down");
    const before = sockets.length;
    await vi.advanceTimersByTimeAsync(5_000);
    expect(sockets.length).toBe(before + 1);
  });

  it.each([
    [CloseCode.UNAUTHENTICATED, "AUTH_ERROR"],
    [CloseCode.FORBIDDEN, "AUTH_ERROR"],
    [CloseCode.VM_NOT_FOUND, "VM_NOT_FOUND"],
    [CloseCode.VM_NOT_RUNNING, "VM_NOT_RUNNING"],
    [CloseCode.NO_SCREEN, "UNKNOWN_ERROR"],
  ])("stops on close code %i with the server's reason", async (code, errorCode) => {
    const { session, sockets } = setup();
    session.start();
    await vi.advanceTimersByTimeAsync(0);
    sockets[0]!.serverClose(code, "the reason the server gave");
    expect(session.getSnapshot()).toMatchObject({
      connection: "failed",
      error: { code: errorCode, message: "the reason the server gave" },
      stopped: code === CloseCode.VM_NOT_RUNNING,
    });
    await vi.advanceTimersByTimeAsync(120_000);
    expect(sockets).toHaveLength(1);
  });

  it("says the VM stopped when the gateway closes normally, and does not retry", async () => {
    const { session, sockets, rfbs } = setup();
    session.start();
    await vi.advanceTimersByTimeAsync(0);
    rfbs[0]!.connect();
    sockets[0]!.serverClose(CloseCode.NORMAL_CLOSURE);
    expect(session.getSnapshot()).toEqual({ connection: "closed", error: null, stopped: true });
    await vi.advanceTimersByTimeAsync(120_000);
    expect(sockets).toHaveLength(1);
    // Reconnect on request.
    session.start();
    await vi.advanceTimersByTimeAsync(0);
    expect(sockets).toHaveLength(2);
  });

  it("stops on a refused ticket, and backs off on a busy one", async () => {
    let calls = 0;
    const refused = setup({
      url: async () => {
        throw new ConnectError("AUTH_ERROR", "token expired");
      },
    });
    refused.session.start();
    await vi.advanceTimersByTimeAsync(0);
    expect(refused.session.getSnapshot()).toMatchObject({ connection: "failed", error: { message: "token expired" } });

    const busy = setup({
      url: async () => {
        calls += 1;
        throw new ServerBusyError("POST /api/tickets answered 429; retrying", 30_000);
      },
    });
    busy.session.start();
    await vi.advanceTimersByTimeAsync(0);
    expect(busy.session.getSnapshot().connection).toBe("reconnecting");
    await vi.advanceTimersByTimeAsync(29_999);
    expect(calls).toBe(1); // Retry-After is honoured
    await vi.advanceTimersByTimeAsync(1);
    expect(calls).toBe(2);
    busy.session.stop();
  });

  it("drops a late socket of an attempt that is over", async () => {
    const { session, sockets, rfbs } = setup();
    session.start();
    await vi.advanceTimersByTimeAsync(0);
    session.stop();
    expect(rfbs[0]!.disconnected).toBe(true);
    sockets[0]!.serverClose(CloseCode.FORBIDDEN);
    rfbs[0]!.connect();
    expect(session.getSnapshot().connection).toBe("closed");
  });

  it("sends Ctrl-Alt-Del and pasted text only while connected and not watch-only", async () => {
    const { session, rfbs } = setup();
    session.start();
    expect(session.sendCtrlAltDel()).toBe(false);
    expect(session.typeText("x")).toBe(0);
    await vi.advanceTimersByTimeAsync(0);
    rfbs[0]!.connect();
    expect(session.sendCtrlAltDel()).toBe(true);
    expect(rfbs[0]!.ctrlAltDel).toBe(1);
    expect(session.typeText("aB\r\n")).toBe(3);
    expect(rfbs[0]!.keys).toEqual([
      [0x61, null, undefined],
      [XK_SHIFT_L, "ShiftLeft", true],
      [0x42, null, undefined],
      [XK_SHIFT_L, "ShiftLeft", false],
      [XK_RETURN, null, undefined],
    ]);

    const watching = setup({ watchOnly: true });
    watching.session.start();
    await vi.advanceTimersByTimeAsync(0);
    watching.rfbs[0]!.connect();
    expect(watching.session.sendCtrlAltDel()).toBe(false);
    expect(watching.session.typeText("admin")).toBe(0);
    expect(watching.rfbs[0]!.keys).toEqual([]);
    expect(watching.rfbs[0]!.ctrlAltDel).toBe(0);
  });
});

describe("keysyms", () => {
  it("follows X11: Latin-1 as is, other Unicode offset, Return and Tab as keys", () => {
    expect(keysymFor("a")).toBe(0x61);
    expect(keysymFor("é")).toBe(0xe9);
    expect(keysymFor("€")).toBe(0x010020ac);
    expect(keysymFor("😀")).toBe(0x0101f600);
    expect(keysymFor("\n")).toBe(XK_RETURN);
    expect(keysymFor("\t")).toBe(0xff09);
    expect(keysymFor("\x1b")).toBeNull();
    expect(keysymFor("\x85")).toBeNull();
  });

  it("holds Shift for what a US keyboard shifts, skips control characters, and is bounded", () => {
    expect(keyStrokes("a!\x07Z").map((s) => [String.fromCodePoint(s.keysym), s.shift])).toEqual([
      ["a", false],
      ["!", true],
      ["Z", true],
    ]);
    expect(keyStrokes("x".repeat(MAX_PASTE_CHARS + 10))).toHaveLength(MAX_PASTE_CHARS);
  });
});
