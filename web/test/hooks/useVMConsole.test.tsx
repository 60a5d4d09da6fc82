import { act, renderHook } from "@testing-library/react";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { ConsoleEvent } from "../../src/consoleSession";
import { useVMConsole } from "../../src/hooks/useVMConsole";
import { fakeSockets } from "../fakeSocket";

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

describe("useVMConsole", () => {
  it("connects to the console endpoint only while enabled", () => {
    const fakes = fakeSockets();
    const { rerender } = renderHook(
      ({ enabled }) => useVMConsole("my vm", { url: "ws://h", token: "t", enabled, tickets: false, createSocket: fakes.factory }),
      { initialProps: { enabled: false } },
    );
    expect(fakes.sockets).toHaveLength(0);
    rerender({ enabled: true });
    expect(fakes.last().url).toBe("ws://h/ws/vms/my%20vm/console?token=t");
    rerender({ enabled: false });
    expect(fakes.last().closedByClient?.code).toBe(1000);
  });

  it("streams output to subscribers, sends input, and reports eof", () => {
    const fakes = fakeSockets();
    const { result } = renderHook(() => useVMConsole("my-vm", { url: "ws://h", token: "t", tickets: false, createSocket: fakes.factory }));
    const events: ConsoleEvent[] = [];
    let unsubscribe = () => {};
    act(() => {
      unsubscribe = result.current.subscribe((e) => events.push(e));
    });
    act(() => {
      fakes.last().connect();
      fakes.last().receive("console", { content: "login: ", eof: false });
    });
    expect(result.current.connection).toBe("open");
    expect(result.current.send("admin\r")).toBe(true);
    expect(fakes.last().frames).toMatchObject([{ type: "console_input", data: { content: "admin\r" } }]);
    act(() => fakes.last().receive("console", { content: "", eof: true }));
    expect(result.current.eof).toBe(true);
    expect(events).toEqual([{ kind: "reset" }, { kind: "data", content: "login: " }, { kind: "eof" }]);
    unsubscribe();
    act(() => fakes.last().receive("console", { content: "more", eof: false }));
    expect(events).toHaveLength(3);
  });

  it("reconnect() opens a new connection after a refusal", () => {
    const fakes = fakeSockets();
    const { result } = renderHook(() => useVMConsole("my-vm", { url: "ws://h", token: "t", tickets: false, createSocket: fakes.factory }));
    act(() => fakes.last().serverClose(4009));
    expect(result.current.connection).toBe("failed");
    act(() => result.current.reconnect());
    expect(fakes.sockets).toHaveLength(2);
    expect(result.current.connection).toBe("connecting");
  });
});
