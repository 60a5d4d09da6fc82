// useVMScreen: a VM's screen (ScreenSession) tied to a component's life like
// useVMConsole: created in render, started in an effect, a new session whenever the
// VM, the token, `enabled` or watch-only changes (watch-only is in the URL).

import { defaultSocketBase, ticketedSocketUrl, vmSocketUrl } from "../endpoints";
import { ScreenSession, type RfbLike, type ScreenSnapshot, type ScreenSocketLike } from "../screenSession";
import { useStore } from "./useStore";

export interface UseVMScreenOptions {
  /** `ws(s)://host[:port]`; default: this page's origin. */
  url?: string;
  /** JWT with `console` (or `watch`); no connection is made without one. */
  token: string | null;
  /** Connect only while true: while the VM runs or is paused (a stopped VM has no screen). */
  enabled?: boolean;
  /** Join with `?mode=watch`; input is then neither sent nor accepted. */
  watchOnly?: boolean;
  /** Trade the token for a single-use ticket per connection (default true). */
  tickets?: boolean;
  /** Hands an opening socket to noVNC (the component owns the element it draws in). */
  attach(socket: ScreenSocketLike, watchOnly: boolean): RfbLike;
  /** For tests: make sockets without a network. */
  createSocket?: (url: string) => ScreenSocketLike;
}

const IDLE: ScreenSnapshot = { connection: "closed", error: null, stopped: false };

const browserSocket = (url: string): ScreenSocketLike => new WebSocket(url, ["binary"]);

export function useVMScreen(name: string, options: UseVMScreenOptions): { session: ScreenSession | null } & ScreenSnapshot {
  const { token, enabled = true, attach, createSocket = browserSocket } = options;
  const watchOnly = options.watchOnly ?? false;
  const tickets = options.tickets ?? true;
  const base = options.url ?? defaultSocketBase();
  const { store, snapshot } = useStore(
    [base, name, token, enabled, watchOnly, tickets, createSocket],
    () => {
      if (!token || !enabled) return null;
      return new ScreenSession({
        url: tickets ? ticketedSocketUrl(base, name, token, "screen", watchOnly) : vmSocketUrl(base, name, token, "screen", watchOnly),
        createSocket,
        // `attach` is read when a connection opens, not when the session is made.
        attach: (socket) => attach(socket, watchOnly),
        watchOnly,
      });
    },
    IDLE,
  );
  return { session: store, ...snapshot };
}
