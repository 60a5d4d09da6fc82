// One self-healing WebSocket to a vmws endpoint, with no React in it.
//
// It owns the connection rules of docs/websocket-api.md and docs/web.md: wait 5 s
// after a lost connection before trying again; treat 60 s without any message (the server sends
// a JSON heartbeat every heartbeatInterval) as a dead link and reconnect; send our
// own JSON heartbeats (browsers cannot see protocol pings) and time their echo; and
// stop for good when the server says the token, the VM or its state will not change
// by retrying (close codes 4001/4003/4004/4009), instead of looping.

import { CloseCode, decode, encode, type ConnectionData, type ErrorCode, type ServerMessage } from "./protocol";

export type ConnectionState =
  /** Socket opening, or open and waiting for the server's `connection` message. */
  | "connecting"
  /** `connection` received: messages flow both ways. */
  | "open"
  /** Lost; a new attempt is scheduled. */
  | "reconnecting"
  /** Ended normally (console eof) or by `dispose()`; no retry. */
  | "closed"
  /** The server refused us for a reason retrying cannot fix; no retry. */
  | "failed";

/** The part of the browser WebSocket this module uses (a fake one in tests). */
export interface SocketLike {
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: { code: number; reason: string }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
}

/** A partial, writable update of a readonly snapshot type. */
export type Changes<T> = { -readonly [K in keyof T]?: T[K] };

export type SocketFactory = (url: string) => SocketLike;

export const defaultSocketFactory: SocketFactory = (url) => new WebSocket(url) as unknown as SocketLike;

/** An error the server reported, or one we inferred from how the socket closed. */
export interface WireError {
  readonly code: ErrorCode;
  readonly message: string;
  readonly requestId?: string;
}

/** Where to connect, found anew for every attempt (a single-use ticket, say). */
export type UrlProvider = () => Promise<string>;

/** A UrlProvider's refusal; AUTH_ERROR and VM_NOT_FOUND stop the retries. */
export class ConnectError extends Error implements WireError {
  constructor(
    readonly code: ErrorCode,
    message: string,
  ) {
    super(message);
    this.name = "ConnectError";
  }
}

/**
 * The server is refusing for now (a ticket request answered 429 or 503): retried
 * with exponential backoff and jitter, so that many pages refused together do not
 * come back together. `retryAfterMs` is the server's Retry-After, when it sent one.
 */
export class ServerBusyError extends ConnectError {
  constructor(
    message: string,
    readonly retryAfterMs: number | null = null,
  ) {
    super("UNKNOWN_ERROR", message);
    this.name = "ServerBusyError";
  }
}

/** Longest wait between two tries after ServerBusyError refusals. */
export const MAX_BACKOFF_MS = 60_000;

/**
 * The wait before the next try after `failures` refusals in a row: "equal jitter"
 * backoff, a random point in [ceiling / 2, ceiling] with ceiling = base * 2^failures,
 * never above `maxMs`.
 */
export function backoffDelay(failures: number, baseMs: number, maxMs: number, random: () => number = Math.random): number {
  const ceiling = Math.min(maxMs, baseMs * 2 ** Math.min(failures, 30));
  return Math.round(ceiling / 2 + (random() * ceiling) / 2);
}

export interface ManagedSocketOptions {
  url: string | UrlProvider;
  createSocket?: SocketFactory;
  /** Wait after a lost connection before the next try (spec: 5 s). */
  reconnectDelayMs?: number;
  /** Silence after which the link counts as dead (spec: 60 s); at least 2 heartbeats. */
  staleTimeoutMs?: number;
  /** Retry after a normal (1000) close; consoles close normally after eof and should not. */
  reconnectOnNormalClose?: boolean;
  /** Clock for heartbeat round trips, in ms. */
  now?: () => number;
  /** Cap of the backoff after the server refuses for now (ServerBusyError); default 60 s. */
  maxBackoffMs?: number;
  /** Jitter source in [0, 1) (tests fix it). */
  random?: () => number;
}

export interface ManagedSocketEvents {
  onMessage?(message: ServerMessage): void;
  onState?(state: ConnectionState, error: WireError | null): void;
  onLatency?(ms: number): void;
}

export const RECONNECT_DELAY_MS = 5_000;
export const STALE_TIMEOUT_MS = 60_000;

/** Close codes that retrying cannot change, and the error each one means. */
export const FATAL_CLOSE: Readonly<Record<number, ErrorCode>> = {
  [CloseCode.UNAUTHENTICATED]: "AUTH_ERROR",
  [CloseCode.FORBIDDEN]: "AUTH_ERROR",
  [CloseCode.VM_NOT_FOUND]: "VM_NOT_FOUND",
  [CloseCode.VM_NOT_RUNNING]: "VM_NOT_RUNNING",
  // The backend has no consoles at all: retrying cannot help.
  [CloseCode.NO_CONSOLE]: "UNKNOWN_ERROR",
};
/** Errors (from a close or a refused ticket) that stop the retries. */
export const FATAL_CODES: ReadonlySet<ErrorCode> = new Set(["AUTH_ERROR", "VM_NOT_FOUND", "VM_NOT_RUNNING"]);

// Our heartbeats carry this key so their echo is told apart from the server's own.
const HEARTBEAT_KEY = "vmwsClientHeartbeat";

export class ManagedSocket {
  private readonly opts: Required<ManagedSocketOptions>;
  private socket: SocketLike | null = null;
  private state: ConnectionState = "closed";
  private info: ConnectionData | null = null;
  // An `error` the server sent before `connection`: why it is about to close.
  private handshakeError: WireError | null = null;
  private reconnectTimer: ReturnType<typeof setTimeout> | null = null;
  private staleTimer: ReturnType<typeof setTimeout> | null = null;
  private heartbeatTimer: ReturnType<typeof setInterval> | null = null;
  private heartbeatSeq = 0;
  // ServerBusyError refusals in a row: the exponent of the backoff.
  private busyRefusals = 0;
  // Bumped by every connect and by dispose: a URL that resolves late for an
  // attempt that is no longer current is dropped.
  private attempt = 0;
  private disposed = false;

  constructor(
    options: ManagedSocketOptions,
    private readonly events: ManagedSocketEvents = {},
  ) {
    // `??`, not a spread: hooks pass their options through, unset ones as undefined.
    this.opts = {
      url: options.url,
      createSocket: options.createSocket ?? defaultSocketFactory,
      reconnectDelayMs: options.reconnectDelayMs ?? RECONNECT_DELAY_MS,
      staleTimeoutMs: options.staleTimeoutMs ?? STALE_TIMEOUT_MS,
      reconnectOnNormalClose: options.reconnectOnNormalClose ?? true,
      now: options.now ?? (() => Date.now()),
      maxBackoffMs: options.maxBackoffMs ?? MAX_BACKOFF_MS,
      random: options.random ?? Math.random,
    };
  }

  get connectionState(): ConnectionState {
    return this.state;
  }

  /** The server's `connection` data while open. */
  get connection(): ConnectionData | null {
    return this.info;
  }

  /** Opens the socket (again, after `closed` or `failed`). */
  start(): void {
    if (this.disposed) return;
    this.clearTimers();
    this.connect();
  }

  /** Sends one frame; false (and nothing sent) unless the connection is open. */
  send(frame: string): boolean {
    if (this.state !== "open" || this.socket === null) return false;
    this.socket.send(frame);
    return true;
  }

  /** Closes without retrying; `start()` may open it again. */
  stop(): void {
    if (this.disposed) return;
    this.attempt += 1;
    this.busyRefusals = 0;
    this.clearTimers();
    this.drop(CloseCode.NORMAL_CLOSURE, "client closed");
    this.setState("closed", null);
  }

  /** Closes for good: no retry; a last `closed` state event, then silence. */
  dispose(): void {
    if (this.disposed) return;
    this.stop();
    this.disposed = true;
  }

  // Lifecycle

  private connect(): void {
    this.drop(CloseCode.NORMAL_CLOSURE, "reconnecting");
    this.info = null;
    this.handshakeError = null;
    const attempt = ++this.attempt;
    // Armed before the URL is found, so a provider that hangs is retried too.
    this.armStaleTimer();
    this.setState("connecting", null);
    const url = this.opts.url;
    if (typeof url === "string") {
      this.open(url);
      return;
    }
    url().then(
      (resolved) => {
        if (attempt !== this.attempt) return;
        this.busyRefusals = 0;
        this.open(resolved);
      },
      (err: unknown) => {
        if (attempt !== this.attempt) return;
        this.clearStaleTimer();
        const error: WireError =
          err instanceof ConnectError ? err : { code: "UNKNOWN_ERROR", message: err instanceof Error ? err.message : String(err) };
        if (err instanceof ServerBusyError) this.scheduleReconnect(this.busyDelay(err), error);
        else if (FATAL_CODES.has(error.code)) this.setState("failed", error);
        else this.scheduleReconnect(this.opts.reconnectDelayMs, error);
      },
    );
  }

  private open(url: string): void {
    let socket: SocketLike;
    try {
      socket = this.opts.createSocket(url);
    } catch (err) {
      // A malformed URL throws synchronously; retrying the same URL would not help.
      this.clearStaleTimer();
      this.setState("failed", { code: "UNKNOWN_ERROR", message: String(err) });
      return;
    }
    this.socket = socket;
    socket.onmessage = (ev) => this.handleFrame(ev.data);
    socket.onclose = (ev) => this.handleClose(ev.code, ev.reason);
    // Browsers fire `error` then `close`; the close handler does the work.
    socket.onerror = () => undefined;
    socket.onopen = () => undefined;
  }

  private handleFrame(raw: unknown): void {
    this.armStaleTimer();
    const message = decode(raw);
    if (message === null) return;
    switch (message.type) {
      case "connection":
        this.info = message.data;
        this.startHeartbeats(message.data.heartbeatInterval);
        this.setState("open", null);
        break;
      case "error":
        if (this.state === "connecting") this.handshakeError = message.data;
        break;
      case "heartbeat": {
        const data = message.data;
        const sentAt = typeof data === "object" && data !== null ? (data as Record<string, unknown>)[HEARTBEAT_KEY] : undefined;
        if (typeof sentAt === "number") {
          this.events.onLatency?.(Math.max(0, this.opts.now() - sentAt));
          return; // our own echo: nothing for the owner
        }
        break;
      }
    }
    this.events.onMessage?.(message);
  }

  private handleClose(code: number, reason: string): void {
    this.socket = null;
    this.info = null;
    this.stopHeartbeats();
    this.clearStaleTimer();
    const fatal = FATAL_CLOSE[code];
    const told = this.handshakeError;
    if (fatal !== undefined || (told !== null && FATAL_CODES.has(told.code))) {
      this.setState("failed", told ?? { code: fatal ?? "UNKNOWN_ERROR", message: reason || `closed (${code})` });
      return;
    }
    if (code === CloseCode.NORMAL_CLOSURE && !this.opts.reconnectOnNormalClose) {
      this.setState("closed", null);
      return;
    }
    const error: WireError | null =
      code === CloseCode.NORMAL_CLOSURE ? null : told ?? { code: "UNKNOWN_ERROR", message: describeClose(code, reason) };
    this.scheduleReconnect(this.opts.reconnectDelayMs, error);
  }

  /** The wait after a ServerBusyError: backoff, or the server's Retry-After if longer (both capped). */
  private busyDelay(err: ServerBusyError): number {
    const backoff = backoffDelay(this.busyRefusals, this.opts.reconnectDelayMs, this.opts.maxBackoffMs, this.opts.random);
    this.busyRefusals += 1;
    return Math.min(this.opts.maxBackoffMs, Math.max(backoff, err.retryAfterMs ?? 0));
  }

  private scheduleReconnect(delayMs: number, error: WireError | null): void {
    this.setState("reconnecting", error);
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = null;
      this.connect();
    }, delayMs);
  }

  /** Detaches the current socket, so its late events cannot touch the next one, and closes it. */
  private drop(code: number, reason: string): void {
    const socket = this.socket;
    if (socket === null) return;
    this.socket = null;
    socket.onopen = socket.onmessage = socket.onclose = socket.onerror = null;
    this.stopHeartbeats();
    this.clearStaleTimer();
    try {
      socket.close(code, reason);
    } catch {
      // Closing a socket that never opened can throw in some browsers; it is gone anyway.
    }
  }

  // Heartbeats and liveness

  private staleTimeout(): number {
    const interval = this.info?.heartbeatInterval ?? 0;
    return Math.max(this.opts.staleTimeoutMs, 2 * interval * 1000);
  }

  private armStaleTimer(): void {
    this.clearStaleTimer();
    this.staleTimer = setTimeout(() => {
      this.staleTimer = null;
      // The link is silent: the spec says reconnect now (the wait already happened).
      this.drop(CloseCode.CLIENT_STALE, "no heartbeat");
      this.connect();
    }, this.staleTimeout());
  }

  private startHeartbeats(intervalSeconds: number): void {
    this.stopHeartbeats();
    if (!(intervalSeconds > 0)) return;
    this.armStaleTimer(); // the interval may have widened the timeout
    this.heartbeatTimer = setInterval(() => {
      this.heartbeatSeq += 1;
      this.send(encode("heartbeat", { [HEARTBEAT_KEY]: this.opts.now(), seq: this.heartbeatSeq }));
    }, intervalSeconds * 1000);
  }

  private stopHeartbeats(): void {
    if (this.heartbeatTimer !== null) clearInterval(this.heartbeatTimer);
    this.heartbeatTimer = null;
  }

  private clearStaleTimer(): void {
    if (this.staleTimer !== null) clearTimeout(this.staleTimer);
    this.staleTimer = null;
  }

  private clearTimers(): void {
    if (this.reconnectTimer !== null) clearTimeout(this.reconnectTimer);
    this.reconnectTimer = null;
    this.clearStaleTimer();
    this.stopHeartbeats();
  }

  private setState(state: ConnectionState, error: WireError | null): void {
    this.state = state;
    this.events.onState?.(state, error);
  }
}

/** A close the client did not ask for, in words. */
export function describeClose(code: number, reason: string): string {
  if (code === CloseCode.GOING_AWAY) return reason || "server going away";
  if (code === CloseCode.ABNORMAL_CLOSURE) return "connection lost";
  return reason ? `${reason} (${code})` : `connection closed (${code})`;
}
