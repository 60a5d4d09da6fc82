// The console panel's bar: who is on the console, the watch-only toggle, the
// recording download. xterm.js is a stand-in here (test/xtermStub.ts); the real
// terminal runs in the browser tests.

import { act, cleanup, fireEvent, render, screen, waitFor } from "@testing-library/react";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { VMConsole } from "../../src/components/VMConsole";
import { fakeSockets } from "../fakeSocket";
import { typed } from "../xtermStub";

vi.mock("@xterm/xterm", () => import("../xtermStub"));
vi.mock("@xterm/addon-fit", () => import("../xtermStub"));
vi.mock("@xterm/xterm/css/xterm.css", () => ({}));

beforeEach(() => {
  vi.stubGlobal("ResizeObserver", class { observe() {} disconnect() {} });
});
afterEach(() => {
  cleanup();
  vi.unstubAllGlobals();
  typed.handler = null;
});

function renderConsole(extra: { token?: string } = {}) {
  const fakes = fakeSockets();
  render(<VMConsole name="my-vm" url="ws://h" token={extra.token ?? "t"} tickets={false} createSocket={fakes.factory} />);
  return fakes;
}

const viewer = (user: string, mode: string) => ({ user, mode, joinedAt: "2026-01-01T00:00:00.000Z" });

describe("VMConsole", () => {
  it("lists who is on the console, as text, and forgets them when disconnected", () => {
    const fakes = renderConsole();
    act(() => {
      fakes.last().connect();
      fakes.last().receive("viewers", { viewers: [viewer("alice", "interactive"), viewer("<b>bob</b>", "watch")] });
    });
    const list = screen.getByTestId("console-viewers");
    expect(list.textContent).toBe("On this console: alice (typing), <b>bob</b> (watching)");
    expect(list.querySelector("b")).toBeNull();
    act(() => fakes.last().serverClose(1006));
    expect(screen.queryByTestId("console-viewers")).toBeNull();
  });

  it("the watch-only toggle reconnects with ?mode=watch and stops sending keys", () => {
    const fakes = renderConsole();
    act(() => fakes.last().connect());
    act(() => typed.handler?.("a"));
    expect(fakes.last().frames.map((f) => f.type)).toEqual(["console_input"]);
    fireEvent.click(screen.getByTestId("console-watch-only"));
    expect(fakes.sockets).toHaveLength(2);
    expect(fakes.last().url).toBe("ws://h/ws/vms/my-vm/console?token=t&mode=watch");
    act(() => fakes.last().connect());
    act(() => typed.handler?.("b"));
    expect(fakes.last().frames).toEqual([]);
    fireEvent.click(screen.getByTestId("console-watch-only"));
    expect(fakes.last().url).toBe("ws://h/ws/vms/my-vm/console?token=t");
  });

  it("a token with only `watch` is watch-only (the toggle on and locked) and gets no recording", () => {
    const fakes = renderConsole();
    act(() => fakes.last().connect({ permissions: ["read", "watch"] }));
    const toggle = screen.getByTestId("console-watch-only") as HTMLInputElement;
    expect(toggle.checked).toBe(true);
    expect(toggle.disabled).toBe(true);
    expect((screen.getByTestId("console-download") as HTMLButtonElement).disabled).toBe(true);
    act(() => typed.handler?.("x"));
    expect(fakes.last().frames).toEqual([]);
  });

  it("downloads the recording with the token in a header, never in the URL", async () => {
    const fetchMock = vi.fn(async () => new Response('{"version": 2}\n', { status: 200 }));
    vi.stubGlobal("fetch", fetchMock);
    vi.stubGlobal("URL", Object.assign(Object.create(URL), {
      createObjectURL: () => "blob:rec",
      revokeObjectURL: () => undefined,
    }));
    const clicked: string[] = [];
    const click = vi.spyOn(HTMLAnchorElement.prototype, "click").mockImplementation(function (this: HTMLAnchorElement) {
      clicked.push(this.download);
    });
    renderConsole({ token: "secret-token" });
    fireEvent.click(screen.getByTestId("console-download"));
    await waitFor(() => expect(clicked).toEqual(["my-vm.cast"]));
    const [url, init] = fetchMock.mock.calls[0] as unknown as [string, RequestInit];
    expect(url).toBe("http://h/api/vms/my-vm/console.cast");
    expect((init.headers as Record<string, string>).Authorization).toBe("Bearer secret-token");
    click.mockRestore();
  });

  it("says why a download was refused", async () => {
    vi.stubGlobal("fetch", vi.fn(async () => new Response(
      JSON.stringify({ error: { code: "AUTH_ERROR", message: "token lacks the 'console' permission" } }), { status: 403 },
    )));
    renderConsole();
    fireEvent.click(screen.getByTestId("console-download"));
    await waitFor(() => expect(screen.getByTestId("console-download-error").textContent).toContain("lacks the 'console'"));
  });
});
