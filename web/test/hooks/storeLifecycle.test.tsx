// Each hook's store is created in useState (as TanStack Query's useBaseQuery holds
// its observer), not in an effect: the first render already reads "connecting", a
// StrictMode double mount leaves one live socket, and VMConsole never shows
// "Reconnect" for a frame while it is only starting.

import { act, cleanup, render, renderHook } from "@testing-library/react";
import { StrictMode, type ReactNode } from "react";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { useVMConsole } from "../../src/hooks/useVMConsole";
import { useVMWebSocket } from "../../src/hooks/useVMWebSocket";
import { fakeSockets } from "../fakeSocket";

vi.mock("@xterm/xterm", () => import("../xtermStub"));
vi.mock("@xterm/addon-fit", () => import("../xtermStub"));
vi.mock("@xterm/xterm/css/xterm.css", () => ({}));

beforeEach(() => {
  vi.useFakeTimers();
  vi.stubGlobal("ResizeObserver", class { observe() {} disconnect() {} });
});
afterEach(() => {
  cleanup();
  vi.useRealTimers();
  vi.unstubAllGlobals();
});

const strict = ({ children }: { children: ReactNode }) => <StrictMode>{children}</StrictMode>;

describe("stores created in render", () => {
  it.each([
    ["useVMWebSocket", useVMWebSocket],
    ["useVMConsole", useVMConsole],
  ] as const)("%s's first render reads connecting, never closed", (_, hook) => {
    const fakes = fakeSockets();
    const seen: string[] = [];
    renderHook(() => {
      const handle = hook("my-vm", { url: "ws://h", token: "t", tickets: false, createSocket: fakes.factory });
      seen.push(handle.connection);
      return handle;
    });
    expect(seen[0]).toBe("connecting");
    expect(seen).not.toContain("closed");
    expect(fakes.sockets).toHaveLength(1);
  });

  it("under StrictMode one socket stays open and works", () => {
    const fakes = fakeSockets();
    const { result } = renderHook(
      () => useVMWebSocket("my-vm", { url: "ws://h", token: "t", tickets: false, createSocket: fakes.factory }),
      { wrapper: strict },
    );
    const live = fakes.sockets.filter((s) => s.closedByClient === null);
    expect(live).toHaveLength(1);
    act(() => live[0]!.connect());
    expect(result.current.connection).toBe("open");
  });

  it("a new key (another VM) makes a new store and closes the old socket", () => {
    const fakes = fakeSockets();
    const { result, rerender } = renderHook(
      ({ name }) => useVMWebSocket(name, { url: "ws://h", token: "t", tickets: false, createSocket: fakes.factory }),
      { initialProps: { name: "a" } },
    );
    act(() => fakes.last().connect());
    expect(result.current.connection).toBe("open");
    rerender({ name: "b" });
    expect(result.current.connection).toBe("connecting");
    expect(fakes.sockets).toHaveLength(2);
    expect(fakes.sockets[0]!.closedByClient?.code).toBe(1000);
    expect(fakes.last().url).toBe("ws://h/ws/vms/b?token=t");
  });

  it("unmounting stops the store: the socket is closed and no retry follows", () => {
    const fakes = fakeSockets();
    const { unmount } = renderHook(() =>
      useVMConsole("my-vm", { url: "ws://h", token: "t", tickets: false, createSocket: fakes.factory }),
    );
    unmount();
    expect(fakes.last().closedByClient?.code).toBe(1000);
    vi.advanceTimersByTime(120_000);
    expect(fakes.sockets).toHaveLength(1);
  });

  it("VMConsole never renders Reconnect while it starts", async () => {
    const { VMConsole } = await import("../../src/components/VMConsole");
    const fakes = fakeSockets();
    // Nodes added then removed within the test: a removed node keeps its text, so a
    // button shown for one frame and taken away is still seen here.
    const touched: string[] = [];
    const observer = new MutationObserver(() => undefined);
    observer.observe(document.body, { childList: true, subtree: true, characterData: true });
    render(<VMConsole name="my-vm" token="t" tickets={false} createSocket={fakes.factory} />);
    act(() => fakes.last().connect());
    for (const record of observer.takeRecords()) {
      for (const node of [...record.addedNodes, ...record.removedNodes]) touched.push(node.textContent ?? "");
    }
    observer.disconnect();
    expect(touched.join(" ")).toContain("Console");
    expect(touched.join(" ")).not.toContain("Reconnect");
    // It does appear once the console is refused for good.
    act(() => fakes.last().serverClose(4009));
    expect(document.body.textContent).toContain("Reconnect");
  });
});
