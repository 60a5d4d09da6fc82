// useVMWebSocket: one VM's live status, metrics history and connection, and
// sendCommand(action) settled by the matching `response` (spec, "Frontend
// Integration"). The rules live in VMMonitor; this hook only ties its lifetime to
// the component (useStore: created in render, started in an effect) and its state
// to React.

import { useCallback } from "react";
import { fetchMetricsHistory } from "../api";
import { defaultSocketBase, httpBase, ticketedSocketUrl, vmSocketUrl } from "../endpoints";
import { CommandError, VMMonitor, type CommandOptions, type CommandResult, type MonitorSnapshot } from "../monitor";
import type { Action, Permission } from "../protocol";
import { MetricsHistory, type MetricsPoint } from "../rates";
import type { SocketFactory } from "../socket";
import { useStore } from "./useStore";

export interface UseVMWebSocketOptions {
  /** `ws(s)://host[:port]`; default: this page's origin. */
  url?: string;
  /** JWT with `read` permission; no connection is made without one. */
  token: string | null;
  historySize?: number;
  reconnectDelayMs?: number;
  staleTimeoutMs?: number;
  commandTimeoutMs?: number;
  /** Trade the token for a single-use ticket per connection (default true). */
  tickets?: boolean;
  /** Open the charts with the server's history (GET /api/vms/{name}/metrics; default true). */
  prefill?: boolean;
  /** For tests: make sockets without a network. */
  createSocket?: SocketFactory;
}

export interface VMWebSocket extends MonitorSnapshot {
  readonly metrics: readonly MetricsPoint[];
  readonly permissions: readonly Permission[];
  sendCommand(action: Action, options?: CommandOptions): Promise<CommandResult>;
}

const IDLE: MonitorSnapshot = {
  connection: "closed",
  info: null,
  status: null,
  history: MetricsHistory.empty(1),
  lastError: null,
  latencyMs: null,
};

export function useVMWebSocket(name: string, options: UseVMWebSocketOptions): VMWebSocket {
  const { token, historySize, reconnectDelayMs, staleTimeoutMs, commandTimeoutMs, createSocket } = options;
  const tickets = options.tickets ?? true;
  const prefill = options.prefill ?? true;
  const base = options.url ?? defaultSocketBase();

  const { store: monitor, snapshot } = useStore(
    [base, name, token, tickets, prefill, historySize, reconnectDelayMs, staleTimeoutMs, commandTimeoutMs, createSocket],
    () => {
      if (!token) return null;
      const url = tickets ? ticketedSocketUrl(base, name, token, "monitor") : vmSocketUrl(base, name, token, "monitor");
      const loadHistory = prefill ? () => fetchMetricsHistory(token, name, httpBase(base)) : undefined;
      return new VMMonitor({
        url, historySize, reconnectDelayMs, staleTimeoutMs, commandTimeoutMs, createSocket, loadHistory,
      });
    },
    IDLE,
  );

  const sendCommand = useCallback(
    (action: Action, commandOptions?: CommandOptions): Promise<CommandResult> =>
      monitor === null
        ? Promise.reject(new CommandError("DISCONNECTED", "not connected", ""))
        : monitor.sendCommand(action, commandOptions),
    [monitor],
  );

  return {
    ...snapshot,
    metrics: snapshot.history.points,
    permissions: snapshot.info?.permissions ?? [],
    sendCommand,
  };
}
