import { describe, expect, it } from "vitest";
import { FleetStore, type FleetRow } from "../src/fleet";
import { filterRows, sortRows, visibleWindow } from "../src/fleetView";
import { fakeSockets } from "./fakeSocket";

const vm = (name: string, status = "running", cpu?: number, used?: number) => ({
  name,
  status,
  lastStateChange: "2023-05-23T12:00:00.000Z",
  uptime: 5,
  ...(cpu === undefined ? {} : { cpu: { utilization: cpu }, memory: { used, total: 1000 } }),
});

function connected() {
  const fakes = fakeSockets();
  const store = new FleetStore({ url: "ws://h/ws/fleet?token=t", createSocket: fakes.factory });
  store.start();
  const ws = fakes.last();
  ws.connect({ vm: "*", fleetInterval: 5, filter: null });
  return { store, ws };
}

describe("FleetStore", () => {
  it("shows the snapshot once whole, then follows changes, additions, removals and summaries", () => {
    const { store, ws } = connected();
    ws.receive("fleet_snapshot", { vms: [vm("b", "running", 10, 100)], complete: false });
    expect(store.getSnapshot().rows).toBeNull();
    ws.receive("fleet_snapshot", { vms: [vm("a", "stopped"), { name: "bad", status: "weird" }], complete: true });
    expect(store.getSnapshot().rows!.map((r) => [r.name, r.status, r.cpu])).toEqual([
      ["a", "stopped", null],
      ["b", "running", 10],
    ]);
    ws.receive("fleet_status", vm("b", "paused"));
    ws.receive("fleet_added", vm("c", "running"));
    ws.receive("fleet_removed", { name: "a", status: "stopped" });
    // a status change keeps the last known CPU and memory
    expect(store.getSnapshot().rows!.map((r) => [r.name, r.status, r.cpu])).toEqual([
      ["b", "paused", 10],
      ["c", "running", null],
    ]);
    ws.receive("fleet_summary", { vms: [{ name: "c", status: "running", cpu: { utilization: 50 }, memory: { used: 1, total: 2 } }], complete: false });
    expect(store.getSnapshot().rows!.find((r) => r.name === "c")!.cpu).toBeNull(); // applied at `complete`
    ws.receive("fleet_summary", { vms: [], complete: true });
    expect(store.getSnapshot().rows!.find((r) => r.name === "c")).toMatchObject({ cpu: 50, memoryUsed: 1, memoryTotal: 2 });
    store.dispose();
  });
});

const row = (name: string, status: FleetRow["status"], cpu: number | null, used: number | null = null): FleetRow => ({
  name,
  status,
  cpu,
  memoryUsed: used,
  memoryTotal: used === null ? null : 100,
});

describe("fleet table view", () => {
  const rows = [row("web-1", "running", 30, 50), row("web-2", "paused", 5, 90), row("db-1", "stopped", null), row("Web-3", "running", 80, 10)];

  it("searches names (any case) and filters by status", () => {
    expect(filterRows(rows, "WEB", "all").map((r) => r.name)).toEqual(["web-1", "web-2", "Web-3"]);
    expect(filterRows(rows, "web", "running").map((r) => r.name)).toEqual(["web-1", "Web-3"]);
    expect(filterRows(rows, " ", "all")).toBe(rows);
  });

  it("sorts by each column, unknown values last", () => {
    const names = (key: "name" | "status" | "cpu" | "memory", descending: boolean) =>
      sortRows(rows, { key, descending }).map((r) => r.name);
    expect(names("cpu", true)).toEqual(["Web-3", "web-1", "web-2", "db-1"]);
    expect(names("cpu", false)).toEqual(["web-2", "web-1", "Web-3", "db-1"]);
    expect(names("memory", true)).toEqual(["web-2", "web-1", "Web-3", "db-1"]);
    expect(names("status", false)).toEqual(["web-2", "Web-3", "web-1", "db-1"]);
    expect(names("name", false)).toEqual(["Web-3", "db-1", "web-1", "web-2"]);
  });

  it("renders only the rows in view", () => {
    expect(visibleWindow(0, 560, 36, 10_000)).toEqual({ start: 0, end: 26 });
    expect(visibleWindow(36 * 5000, 560, 36, 10_000)).toEqual({ start: 4990, end: 5026 });
    expect(visibleWindow(10 ** 9, 560, 36, 10_000)).toEqual({ start: 9984 - 10, end: 10_000 });
    expect(visibleWindow(0, 560, 36, 3)).toEqual({ start: 0, end: 3 });
  });
});
