// useVMConsole: a VM's serial console as a stream for a terminal (subscribe to
// output events), send(input), eof and error state, and reconnection (spec,
// "Frontend Integration"). The rules live in ConsoleSession and ManagedSocket; the
// session is created in render and started in an effect (useStore), so the first
// render already says "connecting" and VMConsole never flashes "Reconnect".

import { useCallback } from "react";
import { ConsoleSession, type ConsoleListener, type ConsoleSnapshot } from "../consoleSession";
import { defaultSocketBase, ticketedSocketUrl, vmSocketUrl } from "../endpoints";
import type { SocketFactory } from "../socket";
import { useStore } from "./useStore";

export interface UseVMConsoleOptions {
  /** `ws(s)://host[:port]`; default: this page's origin. */
  url?: string;
  /** JWT with `console` permission; no connection is made without one. */
  token: string | null;
  /** Connect only while true, e.g. while the VM runs (a stopped VM's console is refused). */
  enabled?: boolean;
  reconnectDelayMs?: number;
  staleTimeoutMs?: number;
  /** Join watch-only (`?mode=watch`): output only, nothing typed is sent. Changing it reconnects. */
  watchOnly?: boolean;
  /** Trade the token for a single-use ticket per connection (default true). */
  tickets?: boolean;
  /** For tests: make sockets without a network. */
  createSocket?: SocketFactory;
}

export interface VMConsoleHandle extends ConsoleSnapshot {
  /** Output events from now on (a `reset` comes first on each new connection). */
  subscribe(listener: ConsoleListener): () => void;
  /** Types into the guest; false when not connected or watch-only. */
  send(input: string): boolean;
  /** Whether this session is watch-only: asked for, or the token grants only `watch`. */
  watchOnly: boolean;
  /** Opens a new connection now (after eof or a refusal, say). */
  reconnect(): void;
}

const IDLE: ConsoleSnapshot = { connection: "closed", info: null, eof: false, error: null, viewers: [] };

export function useVMConsole(name: string, options: UseVMConsoleOptions): VMConsoleHandle {
  const { token, enabled = true, reconnectDelayMs, staleTimeoutMs, createSocket } = options;
  const askedWatch = options.watchOnly ?? false;
  const tickets = options.tickets ?? true;
  const base = options.url ?? defaultSocketBase();

  const { store: session, snapshot } = useStore(
    [base, name, token, enabled, tickets, reconnectDelayMs, staleTimeoutMs, createSocket, askedWatch],
    () => {
      if (!token || !enabled) return null;
      const url = tickets
        ? ticketedSocketUrl(base, name, token, "console", askedWatch)
        : vmSocketUrl(base, name, token, "console", askedWatch);
      return new ConsoleSession({ url, reconnectDelayMs, staleTimeoutMs, createSocket });
    },
    IDLE,
  );

  const subscribe = useCallback(
    (listener: ConsoleListener) => (session === null ? () => undefined : session.onOutput(listener)),
    [session],
  );
  // The server decides (a `watch` token is watch-only whatever the URL says); the UI
  // follows, so keys are not sent only to be refused one by one.
  const permissions = snapshot.info?.permissions ?? [];
  const watchOnly = askedWatch || (permissions.includes("watch") && !permissions.includes("console"));
  const send = useCallback(
    (input: string) => (watchOnly ? false : (session?.send(input) ?? false)),
    [session, watchOnly],
  );
  const reconnect = useCallback(() => session?.start(), [session]);

  return { ...snapshot, subscribe, send, reconnect, watchOnly };
}
