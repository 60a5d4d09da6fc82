// VMMetricsChart: CPU, memory, network and disk over time, from the points that
// useVMWebSocket derives from the server's cumulative counters.
//
// uPlot draws on canvas and takes new data with one setData call, which is what a
// chart fed every two seconds wants; at ~50 KB it is a fraction of the bundle that
// React and xterm already cost (see web/README.md for the comparison).

import { useEffect, useRef } from "react";
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import { PANELS, fromZero, recentWindow, toColumns, type Panel } from "../chartPanels";
import type { MetricsPoint } from "../rates";

export interface VMMetricsChartProps {
  metrics: readonly MetricsPoint[];
  /** Height of each panel's plot, px. */
  height?: number;
}

export function VMMetricsChart({ metrics, height = 140 }: VMMetricsChartProps) {
  const latest = metrics.length > 0 ? metrics[metrics.length - 1] : undefined;
  return (
    <section className="metrics" data-testid="metrics-chart" data-points={metrics.length} aria-label="Metrics">
      {PANELS.map((panel) => (
        <figure key={panel.key} className="metrics-panel" data-testid={`chart-${panel.key}`}>
          <figcaption>
            <strong>{panel.title}</strong>
            {panel.series.map((s) => (
              <span key={s.label} className="legend-item">
                <i style={{ background: s.color }} aria-hidden="true" />
                {s.label} <output>{panel.format(latest === undefined ? null : s.pick(latest))}</output>
              </span>
            ))}
          </figcaption>
          <Plot panel={panel} metrics={metrics} height={height} />
        </figure>
      ))}
    </section>
  );
}

function Plot({ panel, metrics, height }: { panel: Panel; metrics: readonly MetricsPoint[]; height: number }) {
  const hostRef = useRef<HTMLDivElement>(null);
  const plotRef = useRef<uPlot | null>(null);
  const metricsRef = useRef(metrics);
  metricsRef.current = metrics;

  useEffect(() => {
    const host = hostRef.current;
    if (host === null) return;
    const options: uPlot.Options = {
      width: Math.max(host.clientWidth, 200),
      height,
      legend: { show: false },
      cursor: { drag: { x: false, y: false } },
      scales: { x: { time: true, range: recentWindow }, y: { range: panel.range ?? fromZero } },
      axes: [
        { stroke: "#8a94a6", grid: { stroke: "#2a313c" }, ticks: { stroke: "#2a313c" } },
        {
          stroke: "#8a94a6",
          grid: { stroke: "#2a313c" },
          ticks: { stroke: "#2a313c" },
          size: 88,
          values: (_u, splits) => splits.map((v) => panel.format(v)),
        },
      ],
      series: [
        {},
        ...panel.series.map((s) => ({ label: s.label, stroke: s.color, width: 2, points: { show: false } })),
      ],
    };
    const plot = new uPlot(options, toColumns(metricsRef.current, panel), host);
    plotRef.current = plot;
    const observer = new ResizeObserver(() => {
      const width = host.clientWidth;
      if (width > 0 && width !== plot.width) plot.setSize({ width, height });
    });
    observer.observe(host);
    return () => {
      observer.disconnect();
      plotRef.current = null;
      plot.destroy();
    };
  }, [panel, height]);

  useEffect(() => {
    plotRef.current?.setData(toColumns(metrics, panel));
  }, [metrics, panel]);

  return <div className="plot" ref={hostRef} />;
}
