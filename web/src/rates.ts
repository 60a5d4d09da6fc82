// Counter-to-rate maths and the bounded metrics history.
//
// The server sends network and disk values as cumulative byte counters (docs/protocol.md,
// "Monitoring"); charts want bytes per second. A rate needs two samples, so the
// first sample after a (re)connect has none, and a counter that went down (the
// guest rebooted and its counters restarted) gives a gap rather than a fake spike.

import type { MetricsData } from "./protocol";

/** One point on the charts. Rates are bytes/second, `null` where unknown. */
export interface MetricsPoint {
  /** Seconds since the Unix epoch. */
  readonly time: number;
  readonly cpu: number;
  readonly memoryUsed: number;
  readonly memoryTotal: number;
  readonly rxRate: number | null;
  readonly txRate: number | null;
  readonly readRate: number | null;
  readonly writeRate: number | null;
}

/** A raw sample: the counters and the time they were read. */
export interface MetricsSample {
  readonly time: number;
  readonly data: MetricsData;
}

/** Bytes/second between two readings of one counter; `null` across a reset or no time. */
export function counterRate(previous: number, current: number, seconds: number): number | null {
  if (!(seconds > 0) || current < previous) return null;
  return (current - previous) / seconds;
}

/** The chart point for `current`, given the sample before it (if any). */
export function toPoint(previous: MetricsSample | null, current: MetricsSample): MetricsPoint {
  const d = current.data;
  const rate = (pick: (m: MetricsData) => number): number | null =>
    previous === null ? null : counterRate(pick(previous.data), pick(d), current.time - previous.time);
  return {
    time: current.time,
    cpu: d.cpu.utilization,
    memoryUsed: d.memory.used,
    memoryTotal: d.memory.total,
    rxRate: rate((m) => m.network.rxBytes),
    txRate: rate((m) => m.network.txBytes),
    readRate: rate((m) => m.disk.readBytes),
    writeRate: rate((m) => m.disk.writeBytes),
  };
}

/** Seconds since the epoch from the message's timestamp, or `fallback` if unusable. */
export function sampleTime(timestamp: string, fallback: number): number {
  const ms = Date.parse(timestamp);
  return Number.isFinite(ms) ? ms / 1000 : fallback;
}

/**
 * The last `capacity` points, immutable: each `push` returns a new history so React
 * sees a new value, and old snapshots stay valid for whoever still holds them.
 */
export class MetricsHistory {
  private constructor(
    readonly capacity: number,
    readonly points: readonly MetricsPoint[],
    private readonly last: MetricsSample | null,
    // The sample behind points[0] while that point is the first one pushed: the history
    // loaded later may hold the sample before it, and so give it its rates.
    private readonly head: MetricsSample | null = null,
  ) {}

  static empty(capacity: number): MetricsHistory {
    if (!(capacity >= 1)) throw new RangeError(`capacity must be >= 1, got ${capacity}`);
    return new MetricsHistory(Math.floor(capacity), [], null);
  }

  push(sample: MetricsSample): MetricsHistory {
    // A sample that does not move time forward (a duplicate, or a clock step back)
    // cannot give a rate; start a new baseline from it.
    const previous = this.last !== null && sample.time > this.last.time ? this.last : null;
    const points = [...this.points, toPoint(previous, sample)];
    const head = this.points.length === 0 ? sample : this.head;
    if (points.length > this.capacity) {
      points.splice(0, points.length - this.capacity);
      return new MetricsHistory(this.capacity, points, sample);
    }
    return new MetricsHistory(this.capacity, points, sample, head);
  }

  /**
   * `samples` (older ones, from the server's history, oldest first) placed before the
   * points held; samples not older than the first held point are left out, and the
   * capacity keeps the newest.
   */
  prepend(samples: readonly MetricsSample[]): MetricsHistory {
    const first = this.points[0]?.time ?? Infinity;
    let older = MetricsHistory.empty(this.capacity);
    for (const sample of samples) if (sample.time < first) older = older.push(sample);
    if (older.points.length === 0 || older.last === null) return this;
    // The first live point had no sample before it (the live socket beat the history
    // request); now it has one: its rates show at once, not a sample later.
    const held = this.head === null ? this.points : [toPoint(older.last, this.head), ...this.points.slice(1)];
    const points = [...older.points, ...held];
    if (points.length > this.capacity) points.splice(0, points.length - this.capacity);
    return new MetricsHistory(this.capacity, points, this.points.length > 0 ? this.last : older.last);
  }

  /** Keeps the points but forgets the baseline: the next sample starts fresh rates. */
  rebase(): MetricsHistory {
    return new MetricsHistory(this.capacity, this.points, null);
  }
}
