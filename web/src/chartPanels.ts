// What VMMetricsChart plots, as plain data and functions (no uPlot import, so they
// run anywhere): the four panels, their series, and the axis ranges.

import type uPlot from "uplot";
import { formatBytes, formatPercent, formatRate } from "./format";
import type { MetricsPoint } from "./rates";

export interface Panel {
  readonly key: string;
  readonly title: string;
  readonly series: readonly { label: string; color: string; pick: (p: MetricsPoint) => number | null }[];
  readonly format: (value: number | null) => string;
  /** Fixed y range; otherwise from zero to a little above the highest value. */
  readonly range?: uPlot.Range.MinMax;
}

// Seconds the x axis spans at least, so the first few points do not fill the plot.
export const MIN_WINDOW_SECONDS = 60;

// Byte scales start at zero and show at least 1 KiB, so an idle VM's flat line is
// not stretched across the plot. (uPlot passes null bounds while there is no data.)
export const fromZero: uPlot.Range.Function = (_u, _min, max) => [0, Math.max(1024, (max ?? 0) * 1.15)];

export const recentWindow: uPlot.Range.Function = (_u, min, max) => {
  if (min === null || max === null || !Number.isFinite(min) || !Number.isFinite(max)) {
    const now = Date.now() / 1000;
    return [now - MIN_WINDOW_SECONDS, now];
  }
  return max - min < MIN_WINDOW_SECONDS ? [max - MIN_WINDOW_SECONDS, max] : [min, max];
};

export const PANELS: readonly Panel[] = [
  {
    key: "cpu",
    title: "CPU",
    series: [{ label: "utilisation", color: "#5e81ac", pick: (p) => p.cpu }],
    format: formatPercent,
    range: [0, 100],
  },
  {
    key: "memory",
    title: "Memory",
    series: [
      { label: "used", color: "#a3be8c", pick: (p) => p.memoryUsed },
      { label: "total", color: "#4c566a", pick: (p) => p.memoryTotal },
    ],
    format: formatBytes,
  },
  {
    key: "network",
    title: "Network",
    series: [
      { label: "rx", color: "#88c0d0", pick: (p) => p.rxRate },
      { label: "tx", color: "#d08770", pick: (p) => p.txRate },
    ],
    format: formatRate,
  },
  {
    key: "disk",
    title: "Disk",
    series: [
      { label: "read", color: "#b48ead", pick: (p) => p.readRate },
      { label: "write", color: "#ebcb8b", pick: (p) => p.writeRate },
    ],
    format: formatRate,
  },
];

/** uPlot's column layout: times, then one array per series (`null` = gap). */
export function toColumns(points: readonly MetricsPoint[], panel: Panel): uPlot.AlignedData {
  return [points.map((p) => p.time), ...panel.series.map((s) => points.map((p) => s.pick(p)))];
}
