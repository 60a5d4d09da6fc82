import type uPlot from "uplot";
import { afterEach, describe, expect, it, vi } from "vitest";
import { MIN_WINDOW_SECONDS, PANELS, fromZero, recentWindow, toColumns } from "../src/chartPanels";
import { MetricsHistory } from "../src/rates";
import { metricsData } from "./fakeSocket";

const plot = {} as uPlot;
const panel = (key: string) => PANELS.find((p) => p.key === key)!;

afterEach(() => {
  vi.useRealTimers();
});

describe("toColumns", () => {
  it("gives uPlot aligned columns: times, then each series, null where no rate yet", () => {
    let history = MetricsHistory.empty(10);
    history = history.push({ time: 10, data: metricsData(0, 0, 0, 0, 5) });
    history = history.push({ time: 12, data: metricsData(2048, 512, 0, 0, 7) });
    expect(toColumns(history.points, panel("network"))).toEqual([
      [10, 12],
      [null, 1024],
      [null, 256],
    ]);
    expect(toColumns(history.points, panel("cpu"))).toEqual([
      [10, 12],
      [5, 7],
    ]);
  });
});

describe("axis ranges", () => {
  it("shows at least the last minute, ending at the newest point", () => {
    expect(recentWindow(plot, 100, 110, "x")).toEqual([110 - MIN_WINDOW_SECONDS, 110]);
    expect(recentWindow(plot, 100, 400, "x")).toEqual([100, 400]);
  });

  it("shows the minute up to now while there is no data", () => {
    vi.useFakeTimers();
    vi.setSystemTime(1_000_000);
    expect(recentWindow(plot, null as unknown as number, null as unknown as number, "x")).toEqual([940, 1000]);
  });

  it("starts byte scales at zero with headroom, and at least 1 KiB", () => {
    expect(fromZero(plot, 5_000, 10_000, "y")).toEqual([0, 11_500]);
    expect(fromZero(plot, 0, 0, "y")).toEqual([0, 1024]);
    expect(fromZero(plot, null as unknown as number, null as unknown as number, "y")).toEqual([0, 1024]);
  });

  it("keeps CPU on a fixed 0–100 % scale", () => {
    expect(panel("cpu").range).toEqual([0, 100]);
  });
});
