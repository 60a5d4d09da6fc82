// The state behind useVMConsole, framework-free: a console socket whose output is
// a stream of events for a terminal, plus input, eof and error state.
//
// Output is not kept here (the terminal keeps its own scrollback); it is pushed to
// subscribers as it arrives. Until the first subscriber comes (React subscribes in
// an effect, which may run after the first frames), events wait in a bounded
// backlog so the login prompt of the replayed scrollback is never lost. Every new connection starts with a `reset` event,
// because the server replays its recent scrollback to each new viewer, and a
// terminal that kept the old screen would show that text twice.

import { encode, type ConnectionData, type ServerMessage, type Viewer } from "./protocol";
import { ManagedSocket, type Changes, type ConnectionState, type ManagedSocketOptions, type WireError } from "./socket";

export type ConsoleEvent =
  | { readonly kind: "reset" }
  | { readonly kind: "data"; readonly content: string }
  | { readonly kind: "eof" };

// The server's scrollback is 64 KiB by default; keep a few times that.
export const BACKLOG_CHARS = 256 * 1024;

export type ConsoleListener = (event: ConsoleEvent) => void;

export interface ConsoleSnapshot {
  readonly connection: ConnectionState;
  readonly info: ConnectionData | null;
  /** The VM stopped: the server sent eof and closes; no automatic reconnect. */
  readonly eof: boolean;
  readonly error: WireError | null;
  /** Who is on this console (this page included), in join order; empty while not connected. */
  readonly viewers: readonly Viewer[];
}

export class ConsoleSession {
  private readonly socket: ManagedSocket;
  private readonly stateListeners = new Set<() => void>();
  private readonly outputListeners = new Set<ConsoleListener>();
  // A session exists to be started: until then it reads "connecting" (see VMMonitor).
  private snapshot: ConsoleSnapshot = { connection: "connecting", info: null, eof: false, error: null, viewers: [] };
  private backlog: ConsoleEvent[] = [];
  private backlogChars = 0;

  constructor(options: ManagedSocketOptions) {
    this.socket = new ManagedSocket(
      // After eof the server closes normally; retrying would only hit 4009.
      { ...options, reconnectOnNormalClose: false },
      {
        onMessage: (m) => this.handleMessage(m),
        onState: (state, error) => this.handleState(state, error),
      },
    );
  }

  // Store interface (for useSyncExternalStore)

  subscribe = (listener: () => void): (() => void) => {
    this.stateListeners.add(listener);
    return () => this.stateListeners.delete(listener);
  };

  getSnapshot = (): ConsoleSnapshot => this.snapshot;

  /** Output events, in order, from now on. */
  onOutput = (listener: ConsoleListener): (() => void) => {
    this.outputListeners.add(listener);
    const waiting = this.backlog;
    this.backlog = [];
    this.backlogChars = 0;
    for (const event of waiting) listener(event);
    return () => this.outputListeners.delete(listener);
  };

  start(): void {
    this.socket.start();
  }

  /** Closes the connection; `start()` may open it again. */
  stop(): void {
    this.socket.stop();
  }

  dispose(): void {
    this.socket.dispose();
    this.stateListeners.clear();
    this.outputListeners.clear();
  }

  /** Types `input` into the guest; false when not connected (the input is dropped). */
  send = (input: string): boolean => {
    if (input === "") return true;
    return this.socket.send(encode("console_input", { content: input }));
  };

  // Incoming

  private handleMessage(message: ServerMessage): void {
    switch (message.type) {
      case "connection":
        this.update({ info: message.data, eof: false, error: null });
        this.emit({ kind: "reset" });
        break;
      case "console":
        if (message.data.content !== "") this.emit({ kind: "data", content: message.data.content });
        if (message.data.eof) {
          this.update({ eof: true });
          this.emit({ kind: "eof" });
        }
        break;
      case "error":
        this.update({ error: message.data });
        break;
      case "viewers":
        this.update({ viewers: message.data.viewers });
        break;
      default:
        break;
    }
  }

  private handleState(state: ConnectionState, error: WireError | null): void {
    const changes: Changes<ConsoleSnapshot> = { connection: state };
    if (state !== "open") {
      changes.info = null;
      changes.viewers = [];
    }
    if (error !== null) changes.error = error;
    this.update(changes);
  }

  private emit(event: ConsoleEvent): void {
    if (this.outputListeners.size === 0) {
      this.keep(event);
      return;
    }
    for (const listener of [...this.outputListeners]) listener(event);
  }

  private keep(event: ConsoleEvent): void {
    if (event.kind === "reset") {
      // What came before a reset would be cleared by it anyway.
      this.backlog = [event];
      this.backlogChars = 0;
      return;
    }
    this.backlog.push(event);
    if (event.kind !== "data") return;
    this.backlogChars += event.content.length;
    while (this.backlogChars > BACKLOG_CHARS && this.backlog.length > 1) {
      const dropped = this.backlog.splice(this.backlog[0]?.kind === "reset" ? 1 : 0, 1)[0];
      if (dropped?.kind === "data") this.backlogChars -= dropped.content.length;
    }
  }

  private update(changes: Changes<ConsoleSnapshot>): void {
    this.snapshot = { ...this.snapshot, ...changes };
    for (const listener of [...this.stateListeners]) listener();
  }
}
