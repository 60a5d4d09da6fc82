// The VM page's own logic: buttons follow the token's permissions and the
// connection, commands report their outcome. The chart and the terminal draw on
// canvas, which jsdom lacks; they are exercised in the browser tests instead.

import { act, cleanup, fireEvent, render, screen, waitFor } from "@testing-library/react";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { VMPage } from "../../src/components/VMPage";
import { FakeSocket } from "../fakeSocket";

vi.mock("../../src/components/VMMetricsChart", () => ({
  VMMetricsChart: ({ metrics }: { metrics: unknown[] }) => <div data-testid="metrics-chart" data-points={metrics.length} />,
}));
vi.mock("../../src/components/VMScreen", () => ({
  default: ({ enabled, tokenWatchOnly }: { enabled: boolean; tokenWatchOnly: boolean }) => (
    <div data-testid="screen" data-enabled={String(enabled)} data-watch={String(tokenWatchOnly)} />
  ),
}));
vi.mock("../../src/components/VMConsole", () => ({
  VMConsole: ({ enabled }: { enabled: boolean }) => <div data-testid="console" data-enabled={String(enabled)} />,
}));

let sockets: FakeSocket[] = [];

beforeEach(() => {
  sockets = [];
  // This vmws has no ticket endpoint: the page connects with the token.
  vi.stubGlobal("fetch", vi.fn(async () => new Response("", { status: 404 })));
  vi.stubGlobal(
    "WebSocket",
    class extends FakeSocket {
      constructor(url: string) {
        super(url);
        sockets.push(this);
      }
    },
  );
});
afterEach(() => {
  cleanup();
  vi.unstubAllGlobals();
});

/** Renders the page and waits for its monitor socket. */
async function renderPage(name = "my-vm") {
  const view = render(<VMPage name={name} token="t" />);
  await waitFor(() => expect(sockets).toHaveLength(1));
  return view;
}

const button = (name: string) => screen.getByRole("button", { name }) as HTMLButtonElement;

describe("VMPage", () => {
  it("disables every action until connected, and for a token without control", async () => {
    await renderPage();
    expect(button("Stop").disabled).toBe(true);
    act(() => {
      sockets[0]!.connect({ permissions: ["read"] });
      sockets[0]!.receive("status", { status: "running", lastStateChange: "", uptime: 1 });
    });
    for (const name of ["Start", "Stop", "Force off", "Restart", "Suspend", "Pause", "Resume"]) {
      expect(button(name).disabled).toBe(true);
      expect(button(name).title).toMatch(/control permission/);
    }
    expect(screen.queryByTestId("console")).toBeNull();
    expect(screen.getByText(/lacks the console permission/)).toBeTruthy();
  });

  it("sends a command and shows the server's answer", async () => {
    await renderPage();
    act(() => {
      sockets[0]!.connect();
      sockets[0]!.receive("status", { status: "running", lastStateChange: "", uptime: 1 });
    });
    expect(button("Stop").disabled).toBe(false);
    fireEvent.click(button("Force off"));
    const command = sockets[0]!.frames.find((f) => f.type === "command")!;
    expect(command.data).toMatchObject({ action: "stop", force: true });
    expect(button("Pause").disabled).toBe(true); // one command at a time from this page
    await act(async () => {
      sockets[0]!.receive("response", {
        requestId: command.data.requestId,
        success: false,
        message: "VM is busy",
        code: "UNKNOWN_ERROR",
      });
    });
    expect(screen.getByTestId("outcomes").textContent).toContain("Force off failed: UNKNOWN_ERROR: VM is busy");
    expect(button("Pause").disabled).toBe(false);
  });

  it("enables only the actions that change the VM in its current status", async () => {
    await renderPage();
    act(() => sockets[0]!.connect());
    expect(button("Stop").disabled).toBe(true); // no status yet
    const enabled = () =>
      ["Start", "Stop", "Force off", "Restart", "Suspend", "Pause", "Resume"].filter((n) => !button(n).disabled);
    const expected: Record<string, string[]> = {
      running: ["Stop", "Force off", "Restart", "Suspend", "Pause"],
      stopped: ["Start"],
      paused: ["Start", "Stop", "Force off", "Suspend", "Resume"],
      suspended: ["Start", "Stop", "Force off", "Resume"],
      error: ["Start", "Stop", "Force off"],
    };
    for (const [status, names] of Object.entries(expected)) {
      act(() => sockets[0]!.receive("status", { status, lastStateChange: "", uptime: 0 }));
      expect(enabled()).toEqual(names);
    }
    expect(button("Resume").title).toBe("Not possible while the VM is error");
  });

  it("opens the console for a token holding only `watch` (watch-only)", async () => {
    await renderPage();
    act(() => {
      sockets[0]!.connect({ permissions: ["read", "watch"] });
      sockets[0]!.receive("status", { status: "running", lastStateChange: "", uptime: 1 });
    });
    expect(screen.getByTestId("console").dataset.enabled).toBe("true");
    expect(screen.queryByText(/lacks the console permission/)).toBeNull();
  });

  it("enables the console only while the VM runs", async () => {
    await renderPage();
    act(() => {
      sockets[0]!.connect();
      sockets[0]!.receive("status", { status: "stopped", lastStateChange: "", uptime: 0 });
    });
    expect(screen.getByTestId("console").dataset.enabled).toBe("false");
    act(() => sockets[0]!.receive("status", { status: "running", lastStateChange: "", uptime: 0 }));
    expect(screen.getByTestId("console").dataset.enabled).toBe("true");
  });

  it("has a Screen tab beside the console, shown while the VM runs or is paused", async () => {
    await renderPage();
    act(() => {
      sockets[0]!.connect({ permissions: ["read", "watch"] });
      sockets[0]!.receive("status", { status: "paused", lastStateChange: "", uptime: 1 });
    });
    expect(screen.getByTestId("tab-console").getAttribute("aria-selected")).toBe("true");
    fireEvent.click(screen.getByTestId("tab-screen"));
    const shown = await screen.findByTestId("screen");
    expect(screen.queryByTestId("console")).toBeNull();
    expect(shown.dataset).toMatchObject({ enabled: "true", watch: "true" });
    act(() => sockets[0]!.receive("status", { status: "stopped", lastStateChange: "", uptime: 0 }));
    expect(screen.getByTestId("screen").dataset.enabled).toBe("false");
    fireEvent.click(screen.getByTestId("tab-console"));
    expect(screen.getByTestId("console")).toBeTruthy();
  });

  it("keeps the console and the screen while the monitor socket reconnects", async () => {
    await renderPage();
    act(() => {
      sockets[0]!.connect({ permissions: ["read", "console"] });
      sockets[0]!.receive("status", { status: "running", lastStateChange: "", uptime: 1 });
    });
    fireEvent.click(screen.getByTestId("tab-screen"));
    const shown = await screen.findByTestId("screen");
    act(() => sockets[0]!.serverClose(1001, "server shutting down"));
    expect(screen.getByTestId("screen")).toBe(shown); // the same element: not remounted
    expect(shown.dataset).toMatchObject({ enabled: "true", watch: "false" });
  });

  it("has no tabs for a token without console or watch", async () => {
    await renderPage();
    act(() => sockets[0]!.connect({ permissions: ["read"] }));
    expect(screen.queryByTestId("tab-screen")).toBeNull();
  });

  it("shows a VM name with HTML characters as text", async () => {
    const name = `<img src=x onerror="alert(1)">&amp;`;
    const { container } = await renderPage(name);
    expect(sockets[0]!.url).toContain("/ws/vms/%3Cimg%20src%3Dx%20onerror%3D%22alert(1)%22%3E%26amp%3B?");
    expect(screen.getByTestId("vm-name").textContent).toBe(name);
    expect(container.querySelector("img")).toBeNull();
  });
});
