import { describe, expect, it } from "vitest";
import { MetricsHistory, counterRate, sampleTime, toPoint } from "../src/rates";
import { metricsData } from "./fakeSocket";

describe("counterRate", () => {
  it("divides the counter's growth by the elapsed seconds", () => {
    expect(counterRate(1000, 5000, 2)).toBe(2000);
    expect(counterRate(7, 7, 2)).toBe(0);
  });

  it("gives no rate when the counter went down (guest rebooted) or no time passed", () => {
    expect(counterRate(5000, 100, 2)).toBeNull();
    expect(counterRate(1, 2, 0)).toBeNull();
    expect(counterRate(1, 2, -1)).toBeNull();
    expect(counterRate(1, 2, Number.NaN)).toBeNull();
  });
});

describe("toPoint", () => {
  it("has no rates for the first sample, and rates for each counter after", () => {
    const a = { time: 100, data: metricsData(1000, 2000, 3000, 4000, 25) };
    const b = { time: 102, data: metricsData(3000, 2500, 3000, 8000, 30) };
    expect(toPoint(null, a)).toMatchObject({ time: 100, cpu: 25, rxRate: null, writeRate: null });
    expect(toPoint(a, b)).toEqual({
      time: 102,
      cpu: 30,
      memoryUsed: 1024,
      memoryTotal: 4096,
      rxRate: 1000,
      txRate: 250,
      readRate: 0,
      writeRate: 2000,
    });
  });
});

describe("MetricsHistory", () => {
  it("keeps only the newest `capacity` points", () => {
    let h = MetricsHistory.empty(3);
    for (let i = 0; i < 5; i++) h = h.push({ time: i, data: metricsData(i * 10, 0, 0, 0) });
    expect(h.points.map((p) => p.time)).toEqual([2, 3, 4]);
    expect(h.points.map((p) => p.rxRate)).toEqual([10, 10, 10]);
  });

  it("is immutable: an old snapshot does not change when a point is pushed", () => {
    const h1 = MetricsHistory.empty(10).push({ time: 1, data: metricsData(0, 0, 0, 0) });
    const h2 = h1.push({ time: 2, data: metricsData(10, 0, 0, 0) });
    expect(h1.points).toHaveLength(1);
    expect(h2.points).toHaveLength(2);
  });

  it("leaves a gap, not a spike, when a counter restarts from zero", () => {
    let h = MetricsHistory.empty(10);
    h = h.push({ time: 0, data: metricsData(5_000_000, 0, 0, 0) });
    h = h.push({ time: 2, data: metricsData(100, 0, 0, 0) });
    h = h.push({ time: 4, data: metricsData(300, 0, 0, 0) });
    expect(h.points.map((p) => p.rxRate)).toEqual([null, null, 100]);
  });

  it("starts fresh rates after rebase (a reconnect) and after a sample from the past", () => {
    let h = MetricsHistory.empty(10).push({ time: 0, data: metricsData(0, 0, 0, 0) });
    h = h.rebase().push({ time: 60, data: metricsData(6000, 0, 0, 0) });
    expect(h.points[1]?.rxRate).toBeNull();
    h = h.push({ time: 50, data: metricsData(7000, 0, 0, 0) });
    expect(h.points[2]?.rxRate).toBeNull();
    h = h.push({ time: 52, data: metricsData(7200, 0, 0, 0) });
    expect(h.points[3]?.rxRate).toBe(100);
  });

  it("refuses a capacity below one", () => {
    expect(() => MetricsHistory.empty(0)).toThrow(RangeError);
  });
});

describe("sampleTime", () => {
  it("reads the message timestamp in seconds, with fractions", () => {
    expect(sampleTime("2023-05-23T12:34:56.500Z", 0)).toBe(Date.UTC(2023, 4, 23, 12, 34, 56, 500) / 1000);
  });

  it("falls back when the timestamp is unusable", () => {
    expect(sampleTime("", 42)).toBe(42);
    expect(sampleTime("yesterday-ish", 42)).toBe(42);
  });
});

describe("MetricsHistory.prepend", () => {
  const at = (time: number, rx: number) => ({ time, data: metricsData(rx, 0, 0, 0) });

  it("places older samples first, keeps the newest within the capacity", () => {
    const live = MetricsHistory.empty(4).push(at(100, 500)).push(at(102, 700));
    const filled = live.prepend([at(90, 0), at(94, 100), at(98, 300), at(100, 999)]);
    expect(filled.points.map((p) => p.time)).toEqual([94, 98, 100, 102]);
    // the first live point gets its rate from the loaded sample before it (300 → 500 in 2 s)
    expect(filled.points.map((p) => p.rxRate)).toEqual([25, 50, 100, 100]);
    // the baseline stays the live one: the next sample's rate is against t=102
    expect(filled.push(at(104, 900)).points.at(-1)!.rxRate).toBe(100);
  });

  it("gives the first live point no rate when the loaded samples do not reach back before it", () => {
    const live = MetricsHistory.empty(10).push(at(100, 500));
    expect(live.prepend([at(100, 400), at(101, 450)])).toBe(live);
  });

  it("leaves a live point alone once it is no longer the first one pushed", () => {
    const live = MetricsHistory.empty(2).push(at(100, 500)).push(at(102, 700)).push(at(104, 900));
    const filled = live.prepend([at(98, 300), at(101, 0)]);
    expect(filled.points.map((p) => [p.time, p.rxRate])).toEqual([
      [102, 100],
      [104, 100],
    ]);
  });

  it("on an empty history takes the loaded samples as they are", () => {
    const filled = MetricsHistory.empty(10).prepend([at(1, 0), at(2, 10)]);
    expect(filled.points.map((p) => p.rxRate)).toEqual([null, 10]);
    expect(filled.push(at(3, 30)).points.at(-1)!.rxRate).toBe(20);
    expect(MetricsHistory.empty(3).prepend([])).toEqual(MetricsHistory.empty(3));
  });
});
