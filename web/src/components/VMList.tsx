// The fleet table: every VM the token may see, live from /ws/fleet (status, CPU and
// memory), with search by name, a status filter and sortable columns. Only the rows
// in view are rendered (fixed row height, spacers above and below), so 10,000 VMs
// scroll as smoothly as ten.

import { useEffect, useMemo, useState, type UIEvent } from "react";
import { formatBytes, formatPercent } from "../format";
import { useFleet } from "../hooks/useFleet";
import { VM_STATUSES, type VMStatus } from "../protocol";
import { vmHref } from "../route";
import { filterRows, sortRows, visibleWindow, type Sort, type SortKey } from "../fleetView";
import { ConnectionBadge, StatusBadge } from "./Badges";

export const ROW_HEIGHT = 36;
const VIEWPORT_HEIGHT = 560;

const COLUMNS: readonly { key: SortKey; label: string }[] = [
  { key: "name", label: "Name" },
  { key: "status", label: "Status" },
  { key: "cpu", label: "CPU" },
  { key: "memory", label: "Memory" },
];

export function VMList({ token, onAuthFailure }: { token: string; onAuthFailure(message: string): void }) {
  const fleet = useFleet({ token });
  const [query, setQuery] = useState("");
  const [status, setStatus] = useState<VMStatus | "all">("all");
  const [sort, setSort] = useState<Sort>({ key: "name", descending: false });
  const [scrollTop, setScrollTop] = useState(0);

  useEffect(() => {
    // A refused token will not get better by asking again: back to the token form.
    if (fleet.connection === "failed" && fleet.lastError?.code === "AUTH_ERROR") onAuthFailure(fleet.lastError.message);
  }, [fleet.connection, fleet.lastError, onAuthFailure]);

  const shown = useMemo(
    () => (fleet.rows === null ? null : sortRows(filterRows(fleet.rows, query, status), sort)),
    [fleet.rows, query, status, sort],
  );
  const { start, end } = visibleWindow(scrollTop, VIEWPORT_HEIGHT, ROW_HEIGHT, shown?.length ?? 0);

  const toggleSort = (key: SortKey) =>
    setSort((previous) => ({ key, descending: previous.key === key ? !previous.descending : key !== "name" }));

  return (
    <section className="vm-list" aria-label="Virtual machines">
      <header className="fleet-bar">
        <h2>Virtual machines</h2>
        <ConnectionBadge state={fleet.connection} testId="fleet-connection" />
        <input
          type="search"
          placeholder="Search by name"
          aria-label="Search by name"
          data-testid="fleet-search"
          value={query}
          onChange={(e) => setQuery(e.target.value)}
        />
        <select
          aria-label="Filter by status"
          data-testid="fleet-status-filter"
          value={status}
          onChange={(e) => setStatus(e.target.value as VMStatus | "all")}
        >
          <option value="all">all statuses</option>
          {VM_STATUSES.map((s) => (
            <option key={s} value={s}>
              {s}
            </option>
          ))}
        </select>
        {shown !== null && fleet.rows !== null && (
          <span className="note" data-testid="fleet-count">
            {shown.length === fleet.rows.length ? `${shown.length} VMs` : `${shown.length} of ${fleet.rows.length} VMs`}
          </span>
        )}
      </header>
      {fleet.lastError && fleet.connection !== "open" && (
        <p className="error" role="alert">
          {fleet.lastError.message}
        </p>
      )}
      {shown === null && <p className="note">Loading…</p>}
      {fleet.rows !== null && fleet.rows.length === 0 && <p className="note">No VMs are visible to this token.</p>}
      {shown !== null && shown.length > 0 && (
        <div
          className="fleet-scroll"
          data-testid="fleet-scroll"
          style={{ maxHeight: VIEWPORT_HEIGHT }}
          onScroll={(e: UIEvent<HTMLDivElement>) => setScrollTop(e.currentTarget.scrollTop)}
        >
          <table className="fleet-table">
            <thead>
              <tr>
                {COLUMNS.map(({ key, label }) => (
                  <th
                    key={key}
                    scope="col"
                    aria-sort={sort.key === key ? (sort.descending ? "descending" : "ascending") : "none"}
                  >
                    <button type="button" className="link" data-testid={`sort-${key}`} onClick={() => toggleSort(key)}>
                      {label}
                      {sort.key === key ? (sort.descending ? " ▾" : " ▴") : ""}
                    </button>
                  </th>
                ))}
              </tr>
            </thead>
            <tbody>
              {start > 0 && <tr aria-hidden="true" style={{ height: start * ROW_HEIGHT }} />}
              {shown.slice(start, end).map((vm) => (
                <tr key={vm.name} data-testid="vm-row" data-vm={vm.name} style={{ height: ROW_HEIGHT }}>
                  <td>
                    <a href={vmHref(vm.name)} data-testid="vm-link">
                      {vm.name}
                    </a>
                  </td>
                  <td>
                    <StatusBadge status={vm.status} />
                  </td>
                  <td data-testid="vm-cpu">{formatPercent(vm.cpu)}</td>
                  <td data-testid="vm-memory">
                    {vm.memoryUsed === null ? "–" : `${formatBytes(vm.memoryUsed)} / ${formatBytes(vm.memoryTotal)}`}
                  </td>
                </tr>
              ))}
              {end < shown.length && <tr aria-hidden="true" style={{ height: (shown.length - end) * ROW_HEIGHT }} />}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}
