// What the fleet table shows of the fleet's rows: search, status filter, sort, and
// the window of rows a scroll position needs (only those are rendered, so 10,000
// VMs cost as much to draw as a screenful). Pure functions, tested without a DOM.

import type { FleetRow } from "./fleet";
import type { VMStatus } from "./protocol";

export type SortKey = "name" | "status" | "cpu" | "memory";
export interface Sort {
  readonly key: SortKey;
  readonly descending: boolean;
}

/** Rows whose name contains `query` (case-insensitive) and, unless "all", of `status`. */
export function filterRows(rows: readonly FleetRow[], query: string, status: VMStatus | "all"): readonly FleetRow[] {
  const needle = query.trim().toLowerCase();
  if (needle === "" && status === "all") return rows;
  return rows.filter(
    (row) => (status === "all" || row.status === status) && (needle === "" || row.name.toLowerCase().includes(needle)),
  );
}

const memoryShare = (row: FleetRow): number | null =>
  row.memoryUsed === null || !row.memoryTotal ? null : row.memoryUsed / row.memoryTotal;

const byName = (a: FleetRow, b: FleetRow) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);

/** Sorted by `sort.key` (ties and unknown values by name, unknown values last either way). */
export function sortRows(rows: readonly FleetRow[], sort: Sort): readonly FleetRow[] {
  const value = (row: FleetRow): string | number | null =>
    sort.key === "status" ? row.status : sort.key === "cpu" ? row.cpu : sort.key === "memory" ? memoryShare(row) : null;
  const sign = sort.descending ? -1 : 1;
  return [...rows].sort((a, b) => {
    if (sort.key === "name") return sign * byName(a, b);
    const x = value(a);
    const y = value(b);
    if (x === null || y === null) return x === y ? byName(a, b) : x === null ? 1 : -1;
    return x < y ? -sign : x > y ? sign : byName(a, b);
  });
}

/** The rows to render, [start, end), for a scroll position, with `overscan` rows either side. */
export function visibleWindow(
  scrollTop: number,
  viewportHeight: number,
  rowHeight: number,
  count: number,
  overscan = 10,
): { start: number; end: number } {
  // A scroll position past the end (the list just got shorter) still shows its last rows.
  const visible = Math.ceil(viewportHeight / rowHeight);
  const first = Math.min(Math.floor(Math.max(0, scrollTop) / rowHeight), Math.max(0, count - visible));
  const start = Math.max(0, first - overscan);
  const end = Math.min(count, first + visible + overscan);
  return { start, end: Math.max(start, end) };
}
