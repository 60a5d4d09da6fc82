// useVMConsole: a VM's serial console as a stream for a terminal (subscribe to
// output events), send(input), eof and error state, and reconnection (spec,
// "Frontend Integration"). The rules live in ConsoleSession and ManagedSocket.

import { useCallback, useEffect, useState, useSyncExternalStore } from "react";
import { ConsoleSession, type ConsoleListener, type ConsoleSnapshot } from "../consoleSession";
import { defaultSocketBase, ticketedSocketUrl, vmSocketUrl } from "../endpoints";
import type { SocketFactory } from "../socket";

export interface UseVMConsoleOptions {
  /** `ws(s)://host[:port]`; default: this page's origin. */
  url?: string;
  /** JWT with `console` permission; no connection is made without one. */
  token: string | null;
  /** Connect only while true, e.g. while the VM runs (a stopped VM's console is refused). */
  enabled?: boolean;
  reconnectDelayMs?: number;
  staleTimeoutMs?: number;
  /** Trade the token for a single-use ticket per connection (default true). */
  tickets?: boolean;
  /** For tests: make sockets without a network. */
  createSocket?: SocketFactory;
}

export interface VMConsoleHandle extends ConsoleSnapshot {
  /** Output events from now on (a `reset` comes first on each new connection). */
  subscribe(listener: ConsoleListener): () => void;
  /** Types into the guest; false when not connected. */
  send(input: string): boolean;
  /** Opens a new connection now (after eof or a refusal, say). */
  reconnect(): void;
}

const IDLE: ConsoleSnapshot = { connection: "closed", info: null, eof: false, error: null };
const idleSubscribe = (): (() => void) => () => undefined;
const idleSnapshot = (): ConsoleSnapshot => IDLE;

export function useVMConsole(name: string, options: UseVMConsoleOptions): VMConsoleHandle {
  const { token, enabled = true, reconnectDelayMs, staleTimeoutMs, createSocket } = options;
  const tickets = options.tickets ?? true;
  const base = options.url ?? defaultSocketBase();
  const [session, setSession] = useState<ConsoleSession | null>(null);

  useEffect(() => {
    if (!token || !enabled) {
      setSession(null);
      return;
    }
    const url = tickets ? ticketedSocketUrl(base, name, token, "console") : vmSocketUrl(base, name, token, "console");
    const s = new ConsoleSession({ url, reconnectDelayMs, staleTimeoutMs, createSocket });
    s.start();
    setSession(s);
    return () => s.dispose();
  }, [base, name, token, enabled, tickets, reconnectDelayMs, staleTimeoutMs, createSocket]);

  const snapshot = useSyncExternalStore(
    session?.subscribe ?? idleSubscribe,
    session?.getSnapshot ?? idleSnapshot,
  );

  const subscribe = useCallback(
    (listener: ConsoleListener) => (session === null ? () => undefined : session.onOutput(listener)),
    [session],
  );
  const send = useCallback((input: string) => session?.send(input) ?? false, [session]);
  const reconnect = useCallback(() => session?.start(), [session]);

  return { ...snapshot, subscribe, send, reconnect };
}
