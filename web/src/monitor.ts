// The state behind useVMWebSocket, framework-free: one VM's status, its metrics
// history, the connection, and commands matched to their responses by requestId.
//
// It is an external store (subscribe / getSnapshot) so React reads it through
// useSyncExternalStore and tests drive it with a fake socket and fake timers.

import { encode, type Action, type ConnectionData, type ServerMessage, type StatusData } from "./protocol";
import { MetricsHistory, sampleTime, type MetricsSample } from "./rates";
import { ManagedSocket, type Changes, type ConnectionState, type ManagedSocketOptions, type WireError } from "./socket";

export interface MonitorSnapshot {
  readonly connection: ConnectionState;
  /** The server's `connection` data (user, permissions, intervals) while open. */
  readonly info: ConnectionData | null;
  readonly status: StatusData | null;
  readonly history: MetricsHistory;
  readonly lastError: WireError | null;
  /** Round trip of our last heartbeat, ms. */
  readonly latencyMs: number | null;
}

export interface CommandOptions {
  /** `stop` only: power off at once instead of a graceful shutdown. */
  force?: boolean;
  /** Give up waiting for the response after this long (default 120 s). */
  timeoutMs?: number;
}

export interface CommandResult {
  readonly requestId: string;
  readonly message: string;
}

/** A command that failed, was refused, timed out, or lost its connection. */
export class CommandError extends Error implements WireError {
  constructor(
    readonly code: string,
    message: string,
    readonly requestId: string,
  ) {
    super(message);
    this.name = "CommandError";
  }
}

export interface MonitorOptions extends ManagedSocketOptions {
  /** Points kept for the charts (default 300: 10 minutes at the default 2 s). */
  historySize?: number;
  commandTimeoutMs?: number;
  /** The VM's recent samples (GET /api/vms/{name}/metrics), so charts open pre-filled. */
  loadHistory?: () => Promise<readonly MetricsSample[]>;
}

// Long enough for a graceful stop that the server forces after its own timeout.
export const COMMAND_TIMEOUT_MS = 120_000;
export const HISTORY_SIZE = 300;

interface Pending {
  resolve(result: CommandResult): void;
  reject(error: CommandError): void;
  timer: ReturnType<typeof setTimeout>;
}

let requestCounter = 0;

/** A requestId unique within this page (and very likely across pages). */
export function newRequestId(): string {
  requestCounter += 1;
  const random = Math.floor(Math.random() * 0x1000000).toString(36);
  return `ui-${Date.now().toString(36)}-${requestCounter}-${random}`;
}

export class VMMonitor {
  private readonly socket: ManagedSocket;
  private readonly listeners = new Set<() => void>();
  private readonly pending = new Map<string, Pending>();
  private readonly commandTimeoutMs: number;
  private loadHistory: (() => Promise<readonly MetricsSample[]>) | undefined;
  private snapshot: MonitorSnapshot;

  constructor(options: MonitorOptions) {
    this.commandTimeoutMs = options.commandTimeoutMs ?? COMMAND_TIMEOUT_MS;
    this.loadHistory = options.loadHistory;
    // A monitor exists to be started: until then it reads "connecting", so a page
    // rendered before the start effect runs does not flash "closed".
    this.snapshot = {
      connection: "connecting",
      info: null,
      status: null,
      history: MetricsHistory.empty(options.historySize ?? HISTORY_SIZE),
      lastError: null,
      latencyMs: null,
    };
    this.socket = new ManagedSocket(options, {
      onMessage: (m) => this.handleMessage(m),
      onState: (state, error) => this.handleState(state, error),
      onLatency: (ms) => this.update({ latencyMs: ms }),
    });
  }

  // Store interface

  subscribe = (listener: () => void): (() => void) => {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  };

  getSnapshot = (): MonitorSnapshot => this.snapshot;

  start(): void {
    this.socket.start();
    // Once per monitor: the history goes before whatever arrived live meanwhile.
    const load = this.loadHistory;
    this.loadHistory = undefined;
    if (load !== undefined) {
      void load().then(
        (samples) => this.update({ history: this.snapshot.history.prepend(samples) }),
        () => undefined,
      );
    }
  }

  /** Closes the connection; `start()` may open it again (React runs effects twice in StrictMode). */
  stop(): void {
    this.socket.stop();
    this.rejectAll("DISCONNECTED", "monitor closed");
  }

  dispose(): void {
    this.socket.dispose();
    this.rejectAll("DISCONNECTED", "monitor closed");
    this.listeners.clear();
  }

  /** Sends a command; settles with the `response` that echoes its requestId. */
  sendCommand(action: Action, options: CommandOptions = {}): Promise<CommandResult> {
    const requestId = newRequestId();
    return new Promise<CommandResult>((resolve, reject) => {
      const data = options.force === undefined ? { action, requestId } : { action, requestId, force: options.force };
      if (!this.socket.send(encode("command", data))) {
        reject(new CommandError("DISCONNECTED", "not connected", requestId));
        return;
      }
      const timeoutMs = options.timeoutMs ?? this.commandTimeoutMs;
      const timer = setTimeout(() => {
        this.pending.delete(requestId);
        reject(new CommandError("TIMEOUT", `no response to '${action}' after ${timeoutMs / 1000} s`, requestId));
      }, timeoutMs);
      this.pending.set(requestId, { resolve, reject, timer });
    });
  }

  // Incoming

  private handleMessage(message: ServerMessage): void {
    switch (message.type) {
      case "connection":
        this.update({ info: message.data, lastError: null });
        break;
      case "status":
        this.update({ status: message.data });
        break;
      case "metrics": {
        const time = sampleTime(message.timestamp, Date.now() / 1000);
        this.update({ history: this.snapshot.history.push({ time, data: message.data }) });
        break;
      }
      case "response": {
        const { requestId, success, message: text, code } = message.data;
        const pending = this.settle(requestId);
        if (pending === undefined) break;
        if (success) pending.resolve({ requestId, message: text ?? "" });
        else pending.reject(new CommandError(code ?? "UNKNOWN_ERROR", text ?? "command failed", requestId));
        break;
      }
      case "error": {
        const { code, message: text, requestId } = message.data;
        const pending = requestId === undefined ? undefined : this.settle(requestId);
        if (pending !== undefined && requestId !== undefined) {
          pending.reject(new CommandError(code, text ?? code, requestId));
        }
        this.update({ lastError: message.data });
        break;
      }
      default:
        break;
    }
  }

  private handleState(state: ConnectionState, error: WireError | null): void {
    if (state !== "open") {
      // A response can only come on the connection that carried the command.
      this.rejectAll("DISCONNECTED", "connection lost before the response");
    }
    const changes: Changes<MonitorSnapshot> = { connection: state };
    if (state !== "open") changes.info = null;
    if (error !== null) changes.lastError = error;
    if (state === "connecting") {
      // Counters go on across a reconnect, but a rate over the gap would smear it.
      changes.history = this.snapshot.history.rebase();
    }
    this.update(changes);
  }

  private settle(requestId: string): Pending | undefined {
    const pending = this.pending.get(requestId);
    if (pending === undefined) return undefined;
    this.pending.delete(requestId);
    clearTimeout(pending.timer);
    return pending;
  }

  private rejectAll(code: string, message: string): void {
    for (const [requestId, pending] of [...this.pending]) {
      this.settle(requestId);
      pending.reject(new CommandError(code, message, requestId));
    }
  }

  private update(changes: Changes<MonitorSnapshot>): void {
    this.snapshot = { ...this.snapshot, ...changes };
    for (const listener of [...this.listeners]) listener();
  }
}
