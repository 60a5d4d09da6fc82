// A refused ticket request (429: too many outstanding tickets, 503: overloaded) is
// retried with exponential backoff and jitter, bounded, instead of giving up.

import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { fetchTicket } from "../src/api";
import { ticketedSocketUrl } from "../src/endpoints";
import { backoffDelay, ConnectError, ManagedSocket, MAX_BACKOFF_MS, ServerBusyError, type ConnectionState } from "../src/socket";
import { fakeSockets } from "./fakeSocket";

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
  vi.unstubAllGlobals();
});

describe("backoffDelay", () => {
  it("doubles, stays within [ceiling / 2, ceiling], and never exceeds the cap", () => {
    for (let failures = 0; failures < 40; failures++) {
      const ceiling = Math.min(60_000, 5_000 * 2 ** failures);
      expect(backoffDelay(failures, 5_000, 60_000, () => 0)).toBe(ceiling / 2);
      expect(backoffDelay(failures, 5_000, 60_000, () => 0.999_999)).toBeLessThanOrEqual(ceiling);
      expect(backoffDelay(failures, 5_000, 60_000, () => 0.999_999)).toBeGreaterThan(ceiling * 0.99);
    }
    expect(backoffDelay(1000, 5_000, 60_000)).toBeLessThanOrEqual(60_000);
  });

  it("spreads clients refused together", () => {
    const delays = new Set([0.1, 0.4, 0.7].map((r) => backoffDelay(3, 5_000, 60_000, () => r)));
    expect(delays.size).toBe(3);
  });
});

function busySocket(provider: () => Promise<string>, random = () => 0.999_999) {
  const fakes = fakeSockets();
  const states: ConnectionState[] = [];
  let calls = 0;
  const socket = new ManagedSocket(
    {
      url: () => {
        calls += 1;
        return provider();
      },
      createSocket: fakes.factory,
      random,
    },
    { onState: (s) => states.push(s) },
  );
  socket.start();
  return { fakes, states, socket, calls: () => calls };
}

describe("ManagedSocket after a busy refusal", () => {
  it("retries after 5, 10, 20, 40, then at most 60 s, and connects when a ticket comes", async () => {
    let refusals = 7;
    const { fakes, states, calls } = busySocket(async () => {
      if (refusals-- > 0) throw new ServerBusyError("POST /api/tickets answered 429; retrying");
      return "ws://h/ws/vms/my-vm?token=vmt_ok";
    });
    await vi.advanceTimersByTimeAsync(0);
    for (const [n, wait] of [5_000, 10_000, 20_000, 40_000, 60_000, 60_000, 60_000].entries()) {
      expect(calls()).toBe(n + 1);
      expect(states.at(-1)).toBe("reconnecting");
      await vi.advanceTimersByTimeAsync(wait - 2);
      expect(calls()).toBe(n + 1);
      await vi.advanceTimersByTimeAsync(2);
    }
    expect(calls()).toBe(8);
    expect(states).not.toContain("failed");
    expect(fakes.last().url).toBe("ws://h/ws/vms/my-vm?token=vmt_ok");
  });

  it("starts again from the shortest wait once a ticket was granted", async () => {
    let busy = true;
    const { fakes, calls } = busySocket(async () => {
      if (busy) throw new ServerBusyError("busy");
      return "ws://h/x";
    });
    await vi.advanceTimersByTimeAsync(0);
    await vi.advanceTimersByTimeAsync(5_000);
    await vi.advanceTimersByTimeAsync(10_000);
    expect(calls()).toBe(3);
    busy = false;
    await vi.advanceTimersByTimeAsync(20_000);
    expect(calls()).toBe(4);
    busy = true;
    fakes.last().serverClose(1011); // lost: the usual 5 s wait, then a refusal
    await vi.advanceTimersByTimeAsync(5_000);
    expect(calls()).toBe(5);
    await vi.advanceTimersByTimeAsync(5_000);
    expect(calls()).toBe(6);
  });

  it("waits at least the server's Retry-After, still capped", async () => {
    const { calls } = busySocket(async () => {
      throw new ServerBusyError("busy", 30_000);
    }, () => 0);
    await vi.advanceTimersByTimeAsync(0);
    await vi.advanceTimersByTimeAsync(29_999);
    expect(calls()).toBe(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(calls()).toBe(2);

    const capped = busySocket(async () => {
      throw new ServerBusyError("busy", 3_600_000);
    });
    await vi.advanceTimersByTimeAsync(MAX_BACKOFF_MS);
    expect(capped.calls()).toBe(2);
  });

  it("still gives up on a refused token", async () => {
    const { states, calls } = busySocket(async () => {
      throw new ConnectError("AUTH_ERROR", "the token was refused");
    });
    await vi.advanceTimersByTimeAsync(120_000);
    expect(states.at(-1)).toBe("failed");
    expect(calls()).toBe(1);
  });
});

describe("fetchTicket", () => {
  const answer = (status: number, body: unknown, headers: Record<string, string> = {}) =>
    vi.fn(async () => new Response(JSON.stringify(body), { status, headers }));

  it("reports 429 and 503 as busy (with Retry-After), 401 as a refused token", async () => {
    vi.stubGlobal("fetch", answer(429, { error: { code: "AUTH_ERROR", message: "too many outstanding tickets" } }, { "Retry-After": "7" }));
    const busy = await fetchTicket("t", "http://h").catch((e: unknown) => e);
    expect(busy).toBeInstanceOf(ServerBusyError);
    expect((busy as ServerBusyError).retryAfterMs).toBe(7_000);
    vi.stubGlobal("fetch", answer(503, {}, { "Retry-After": "soon" }));
    const overloaded = await fetchTicket("t", "http://h").catch((e: unknown) => e);
    expect(overloaded).toBeInstanceOf(ServerBusyError);
    expect((overloaded as ServerBusyError).retryAfterMs).toBeNull();
    vi.stubGlobal("fetch", answer(401, { error: { code: "AUTH_ERROR", message: "expired" } }));
    const refused = await fetchTicket("t", "http://h").catch((e: unknown) => e);
    expect(refused).not.toBeInstanceOf(ServerBusyError);
    expect(refused).toMatchObject({ code: "AUTH_ERROR", message: "expired" });
  });

  it("a page whose ticket requests get 429 connects once a ticket is granted", async () => {
    let refusals = 2;
    vi.stubGlobal(
      "fetch",
      vi.fn(async () =>
        refusals-- > 0
          ? new Response(JSON.stringify({ error: { code: "AUTH_ERROR", message: "too many" } }), { status: 429 })
          : new Response(JSON.stringify({ ticket: "vmt_granted", expiresIn: 30 }), { status: 201 }),
      ),
    );
    const fakes = fakeSockets();
    const states: ConnectionState[] = [];
    const socket = new ManagedSocket(
      { url: ticketedSocketUrl("ws://h", "my-vm", "jwt", "monitor"), createSocket: fakes.factory },
      { onState: (s) => states.push(s) },
    );
    socket.start();
    await vi.advanceTimersByTimeAsync(60_000);
    expect(states).not.toContain("failed");
    expect(fakes.sockets).toHaveLength(1);
    expect(fakes.last().url).toBe("ws://h/ws/vms/my-vm?token=vmt_granted");
    socket.dispose();
  });
});
