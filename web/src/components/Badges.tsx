// Small badges: a VM's status and a socket's connection state, each with a
// data-testid and the raw value in data-state so tests read state, not colour.

import type { VMStatus } from "../protocol";
import type { ConnectionState } from "../socket";

const CONNECTION_LABEL: Record<ConnectionState, string> = {
  connecting: "connecting…",
  open: "live",
  reconnecting: "reconnecting…",
  closed: "closed",
  failed: "refused",
};

export function ConnectionBadge({ state, testId }: { state: ConnectionState; testId?: string }) {
  return (
    <span className={`badge conn-${state}`} data-testid={testId} data-state={state}>
      {CONNECTION_LABEL[state]}
    </span>
  );
}

export function StatusBadge({ status, testId }: { status: VMStatus | null; testId?: string }) {
  const value = status ?? "unknown";
  return (
    <span className={`badge status-${value}`} data-testid={testId} data-state={value}>
      {value}
    </span>
  );
}
