import { act, renderHook } from "@testing-library/react";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { useVMWebSocket } from "../../src/hooks/useVMWebSocket";
import { fakeSockets, metricsData } from "../fakeSocket";

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

describe("useVMWebSocket", () => {
  it("connects with the name percent-encoded and the token in ?token=", () => {
    const fakes = fakeSockets();
    renderHook(() => useVMWebSocket("<b>&x", { url: "ws://h:1", token: "a b", tickets: false, createSocket: fakes.factory }));
    expect(fakes.last().url).toBe("ws://h:1/ws/vms/%3Cb%3E%26x?token=a%20b");
  });

  it("makes no connection without a token", () => {
    const fakes = fakeSockets();
    const { result } = renderHook(() => useVMWebSocket("my-vm", { url: "ws://h", token: null, tickets: false, createSocket: fakes.factory }));
    expect(fakes.sockets).toHaveLength(0);
    expect(result.current.connection).toBe("closed");
  });

  it("renders status, metrics and permissions as they arrive", () => {
    const fakes = fakeSockets();
    const { result } = renderHook(() => useVMWebSocket("my-vm", { url: "ws://h", token: "t", tickets: false, createSocket: fakes.factory }));
    expect(result.current.connection).toBe("connecting");
    act(() => {
      fakes.last().connect({ permissions: ["read"] });
      fakes.last().receive("status", { status: "paused", lastStateChange: "", uptime: 5 });
      fakes.last().receive("metrics", metricsData(0, 0, 0, 0), "2024-01-01T00:00:00Z");
      fakes.last().receive("metrics", metricsData(200, 0, 0, 0), "2024-01-01T00:00:02Z");
    });
    expect(result.current.connection).toBe("open");
    expect(result.current.permissions).toEqual(["read"]);
    expect(result.current.status?.status).toBe("paused");
    expect(result.current.metrics.map((p) => p.rxRate)).toEqual([null, 100]);
  });

  it("settles sendCommand with the matching response", async () => {
    const fakes = fakeSockets();
    const { result } = renderHook(() => useVMWebSocket("my-vm", { url: "ws://h", token: "t", tickets: false, createSocket: fakes.factory }));
    act(() => fakes.last().connect());
    let done!: Promise<unknown>;
    act(() => {
      done = result.current.sendCommand("start");
    });
    const requestId = fakes.last().frames[0]!.data.requestId;
    act(() => fakes.last().receive("response", { requestId, success: true, message: "started" }));
    await expect(done).resolves.toMatchObject({ message: "started" });
  });

  it("closes the socket on unmount and when the VM changes", () => {
    const fakes = fakeSockets();
    const { rerender, unmount } = renderHook(
      ({ name }) => useVMWebSocket(name, { url: "ws://h", token: "t", tickets: false, createSocket: fakes.factory }),
      { initialProps: { name: "a" } },
    );
    rerender({ name: "b" });
    expect(fakes.sockets.map((s) => s.url)).toEqual(["ws://h/ws/vms/a?token=t", "ws://h/ws/vms/b?token=t"]);
    expect(fakes.sockets[0]!.closedByClient?.code).toBe(1000);
    unmount();
    expect(fakes.sockets[1]!.closedByClient?.code).toBe(1000);
    vi.advanceTimersByTime(120_000);
    expect(fakes.sockets).toHaveLength(2);
  });

  it("trades the token for a single-use ticket on every connection", async () => {
    const fakes = fakeSockets();
    const fetch = vi.fn(async (_url: string, init?: RequestInit) => {
      expect(init?.method).toBe("POST");
      expect(new Headers(init?.headers).get("Authorization")).toBe("Bearer secret-token");
      return new Response(JSON.stringify({ ticket: `vmt_${fetch.mock.calls.length}`, expiresIn: 30 }), { status: 201 });
    });
    vi.stubGlobal("fetch", fetch);
    renderHook(() =>
      useVMWebSocket("my-vm", { url: "wss://h:9", token: "secret-token", prefill: false, createSocket: fakes.factory }),
    );
    await act(async () => {});
    expect(fetch.mock.calls[0]?.[0]).toBe("https://h:9/api/tickets");
    expect(fakes.last().url).toBe("wss://h:9/ws/vms/my-vm?token=vmt_1");
    act(() => fakes.last().serverClose(1006));
    await act(async () => {
      vi.advanceTimersByTime(5_000);
    });
    expect(fakes.last().url).toBe("wss://h:9/ws/vms/my-vm?token=vmt_2");
    expect(fakes.sockets.every((s) => !s.url.includes("secret-token"))).toBe(true);
    vi.unstubAllGlobals();
  });

  it("opens the charts with the VM's history from GET /api/vms/{name}/metrics", async () => {
    const fakes = fakeSockets();
    const sample = (timestamp: string, rx: number) => ({ timestamp, ...metricsData(rx, 0, 0, 0) });
    const fetch = vi.fn(async (url: string, init?: RequestInit) => {
      expect(new Headers(init?.headers).get("Authorization")).toBe("Bearer t");
      return url.includes("/metrics?")
        ? new Response(JSON.stringify([sample("2023-05-23T12:30:00.000Z", 0), sample("2023-05-23T12:30:02.000Z", 4000),
            { timestamp: "junk" }]), { status: 200 })
        : new Response("", { status: 404 });
    });
    vi.stubGlobal("fetch", fetch);
    const { result } = renderHook(() => useVMWebSocket("a b", { url: "ws://h", token: "t", tickets: false, createSocket: fakes.factory }));
    await act(async () => {});
    expect(fetch.mock.calls[0]?.[0]).toBe("http://h/api/vms/a%20b/metrics?since=600");
    expect(result.current.metrics.map((p) => p.rxRate)).toEqual([null, 2000]);
    vi.unstubAllGlobals();
  });

  it("uses the token itself where the server has no tickets, and stops if it is refused", async () => {
    const fakes = fakeSockets();
    vi.stubGlobal("fetch", vi.fn(async () => new Response("", { status: 404 })));
    renderHook(() => useVMWebSocket("my-vm", { url: "ws://h", token: "t", createSocket: fakes.factory }));
    await act(async () => {});
    expect(fakes.last().url).toBe("ws://h/ws/vms/my-vm?token=t");

    const refused = fakeSockets();
    vi.stubGlobal(
      "fetch",
      vi.fn(async () => new Response(JSON.stringify({ error: { code: "AUTH_ERROR", message: "token expired" } }), { status: 401 })),
    );
    const { result } = renderHook(() => useVMWebSocket("my-vm", { url: "ws://h", token: "t", createSocket: refused.factory }));
    await act(async () => {});
    expect(result.current.connection).toBe("failed");
    expect(result.current.lastError).toMatchObject({ code: "AUTH_ERROR", message: "token expired" });
    expect(refused.sockets).toHaveLength(0);
    vi.unstubAllGlobals();
  });
});
