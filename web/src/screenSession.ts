// The state behind the Screen tab, framework-free: one VM's screen over
// /ws/vms/{name}/screen (binary, subprotocol `binary`, RFB) drawn by noVNC, with the
// console's rules for reconnecting (docs/web.md): a new single-use ticket for every
// attempt, bounded backoff with jitter after a lost link, and no retry when retrying
// cannot help (a refused token, no such VM, a VM that is not running, a VM without
// a screen).
//
// noVNC reports a disconnect but not the close code, and the code is what says why
// (4003, 4009, 1000 once the VM stopped); so this class opens the WebSocket itself,
// listens to its `close`, and hands the socket to noVNC (`attach`), which accepts
// an open or opening WebSocket in place of a URL.

import { CloseCode, type ErrorCode } from "./protocol";
import {
  backoffDelay,
  ConnectError,
  describeClose,
  FATAL_CLOSE,
  FATAL_CODES,
  MAX_BACKOFF_MS,
  RECONNECT_DELAY_MS,
  type Changes,
  type ConnectionState,
  type UrlProvider,
  type WireError,
} from "./socket";
import { keyStrokes, MAX_PASTE_CHARS, XK_SHIFT_L } from "./keysyms";

/** The part of a browser WebSocket this class touches. */
export interface ScreenSocketLike {
  addEventListener(type: "close", listener: (ev: { code: number; reason: string }) => void): void;
  close(code?: number, reason?: string): void;
}

/** The part of noVNC's RFB this class drives. */
export interface RfbLike {
  addEventListener(type: "connect" | "disconnect" | "securityfailure", listener: (ev: Event) => void): void;
  disconnect(): void;
  sendCtrlAltDel(): void;
  sendKey(keysym: number, code: string | null, down?: boolean): void;
}

export interface ScreenSessionOptions {
  url: string | UrlProvider;
  /** Opens the binary WebSocket (`new WebSocket(url, ["binary"])` in the browser). */
  createSocket(url: string): ScreenSocketLike;
  /** Hands the socket to noVNC: `new RFB(target, socket, …)`. */
  attach(socket: ScreenSocketLike): RfbLike;
  /** Joined with `?mode=watch`: nothing is sent (the gateway would drop it anyway). */
  watchOnly?: boolean;
  /** First wait after a lost link; doubles per failed attempt up to `maxBackoffMs`. */
  reconnectDelayMs?: number;
  maxBackoffMs?: number;
  random?: () => number;
}

export interface ScreenSnapshot {
  readonly connection: ConnectionState;
  /** Why the last connection ended, or why the next try waits. */
  readonly error: WireError | null;
  /** The VM stopped (or is not running): the screen is gone until it runs again. */
  readonly stopped: boolean;
}

// The console's refusals, and a VM without a screen (or one this node cannot open).
const FATAL: Readonly<Record<number, ErrorCode>> = { ...FATAL_CLOSE, [CloseCode.NO_SCREEN]: "UNKNOWN_ERROR" };

export class ScreenSession {
  private readonly stateListeners = new Set<() => void>();
  private snapshot: ScreenSnapshot = { connection: "connecting", error: null, stopped: false };
  private socket: ScreenSocketLike | null = null;
  private rfb: RfbLike | null = null;
  private timer: ReturnType<typeof setTimeout> | null = null;
  // Attempts that failed in a row: the exponent of the backoff (0 once connected).
  private failures = 0;
  // Bumped by every attempt and by stop(): late events of an old attempt are dropped.
  private attempt = 0;

  constructor(private readonly options: ScreenSessionOptions) {}

  // Store interface (useSyncExternalStore)

  subscribe = (listener: () => void): (() => void) => {
    this.stateListeners.add(listener);
    return () => this.stateListeners.delete(listener);
  };

  getSnapshot = (): ScreenSnapshot => this.snapshot;

  start(): void {
    this.clearTimer();
    this.failures = 0;
    this.connect();
  }

  stop(): void {
    this.attempt += 1;
    this.clearTimer();
    this.drop();
    this.update({ connection: "closed" });
  }

  // Input (nothing while not connected or watch-only)

  get canSend(): boolean {
    return this.snapshot.connection === "open" && this.rfb !== null && !this.options.watchOnly;
  }

  sendCtrlAltDel(): boolean {
    if (!this.canSend) return false;
    this.rfb?.sendCtrlAltDel();
    return true;
  }

  /** Types `text` as key presses; the number of characters typed (0 when nothing could be sent). */
  typeText(text: string): number {
    const rfb = this.rfb;
    if (!this.canSend || rfb === null) return 0;
    for (const { keysym, shift } of keyStrokes(text)) {
      if (shift) rfb.sendKey(XK_SHIFT_L, "ShiftLeft", true);
      rfb.sendKey(keysym, null);
      if (shift) rfb.sendKey(XK_SHIFT_L, "ShiftLeft", false);
    }
    return Math.min([...text.replace(/\r\n/g, "\n")].length, MAX_PASTE_CHARS);
  }

  // Lifecycle

  private connect(): void {
    this.drop();
    const attempt = ++this.attempt;
    this.update({ connection: "connecting" });
    const { url } = this.options;
    if (typeof url === "string") {
      this.open(url, attempt);
      return;
    }
    url().then(
      (resolved) => {
        if (attempt === this.attempt) this.open(resolved, attempt);
      },
      (err: unknown) => {
        if (attempt !== this.attempt) return;
        const error: WireError =
          err instanceof ConnectError ? err : { code: "UNKNOWN_ERROR", message: err instanceof Error ? err.message : String(err) };
        if (FATAL_CODES.has(error.code)) this.update({ connection: "failed", error });
        else this.retry(error, (err as { retryAfterMs?: number | null }).retryAfterMs ?? 0);
      },
    );
  }

  private open(url: string, attempt: number): void {
    let socket: ScreenSocketLike;
    let rfb: RfbLike;
    try {
      socket = this.options.createSocket(url);
      rfb = this.options.attach(socket);
    } catch (err) {
      this.update({ connection: "failed", error: { code: "UNKNOWN_ERROR", message: String(err) } });
      return;
    }
    this.socket = socket;
    this.rfb = rfb;
    socket.addEventListener("close", (ev) => {
      if (attempt === this.attempt) this.closed(ev.code, ev.reason);
    });
    rfb.addEventListener("connect", () => {
      if (attempt !== this.attempt) return;
      this.failures = 0;
      this.update({ connection: "open", error: null, stopped: false });
    });
    rfb.addEventListener("securityfailure", (ev) => {
      if (attempt !== this.attempt) return;
      // The gateway offers security type None; anything else is not for this page.
      const reason = (ev as CustomEvent<{ reason?: string }>).detail?.reason;
      this.attempt += 1;
      this.drop();
      this.update({ connection: "failed", error: { code: "AUTH_ERROR", message: reason || "the VNC security handshake failed" } });
    });
  }

  private closed(code: number, reason: string): void {
    this.socket = null;
    this.rfb = null;
    const fatal = FATAL[code];
    if (fatal !== undefined) {
      const message = reason || `refused (${code})`;
      this.update({ connection: "failed", error: { code: fatal, message }, stopped: code === CloseCode.VM_NOT_RUNNING });
      return;
    }
    if (code === CloseCode.NORMAL_CLOSURE) {
      // The gateway closes with 1000 after the last framebuffer update of a VM that stopped.
      this.update({ connection: "closed", error: null, stopped: true });
      return;
    }
    this.retry({ code: "UNKNOWN_ERROR", message: describeClose(code, reason) }, 0);
  }

  private retry(error: WireError, atLeastMs: number): void {
    const base = this.options.reconnectDelayMs ?? RECONNECT_DELAY_MS;
    const most = this.options.maxBackoffMs ?? MAX_BACKOFF_MS;
    const delay = Math.min(most, Math.max(atLeastMs, backoffDelay(this.failures, base, most, this.options.random)));
    this.failures += 1;
    this.update({ connection: "reconnecting", error });
    this.timer = setTimeout(() => {
      this.timer = null;
      this.connect();
    }, delay);
  }

  /** Lets go of the current connection (noVNC closes its socket). */
  private drop(): void {
    const rfb = this.rfb;
    const socket = this.socket;
    this.rfb = null;
    this.socket = null;
    try {
      if (rfb !== null) rfb.disconnect();
      else socket?.close(CloseCode.NORMAL_CLOSURE, "client closed");
    } catch {
      // Already closed: nothing to let go of.
    }
  }

  private clearTimer(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
  }

  private update(changes: Changes<ScreenSnapshot>): void {
    this.snapshot = { ...this.snapshot, ...changes };
    for (const listener of [...this.stateListeners]) listener();
  }
}
