// The state behind the fleet table, framework-free: every VM the token may see, from
// /ws/fleet (docs/protocol.md, Fleet): the snapshot (in slices, whole at `complete`),
// then status changes, VMs added and removed, and a CPU/memory summary per interval.
// An external store like VMMonitor; rows are rebuilt at most once per message.

import { isVM, type ConnectionData, type ServerMessage, type VMStatus } from "./protocol";
import { ManagedSocket, type ConnectionState, type ManagedSocketOptions, type WireError } from "./socket";

export interface FleetRow {
  readonly name: string;
  readonly status: VMStatus;
  /** Percent of the VM's vCPUs; null until sampled. */
  readonly cpu: number | null;
  readonly memoryUsed: number | null;
  readonly memoryTotal: number | null;
}

export interface FleetSnapshot {
  readonly connection: ConnectionState;
  readonly info: ConnectionData | null;
  /** Every VM, sorted by name; null until the first snapshot is whole. */
  readonly rows: readonly FleetRow[] | null;
  readonly lastError: WireError | null;
}

type Entry = { name: string; status: VMStatus; cpu?: { utilization?: unknown }; memory?: { used?: unknown; total?: unknown } };

const num = (v: unknown): number | null => (typeof v === "number" && Number.isFinite(v) ? v : null);

function toRow(entry: Entry, previous?: FleetRow): FleetRow {
  return {
    name: entry.name,
    status: entry.status,
    cpu: num(entry.cpu?.utilization) ?? previous?.cpu ?? null,
    memoryUsed: num(entry.memory?.used) ?? previous?.memoryUsed ?? null,
    memoryTotal: num(entry.memory?.total) ?? previous?.memoryTotal ?? null,
  };
}

export class FleetStore {
  private readonly socket: ManagedSocket;
  private readonly listeners = new Set<() => void>();
  private rows = new Map<string, FleetRow>();
  // The snapshot being received (slices until `complete`).
  private incoming: Map<string, FleetRow> | null = null;
  private snapshot: FleetSnapshot = { connection: "connecting", info: null, rows: null, lastError: null };

  constructor(options: ManagedSocketOptions) {
    this.socket = new ManagedSocket(options, {
      onMessage: (m) => this.handle(m),
      onState: (state, error) => {
        if (state !== "open") this.incoming = null;
        this.update({
          connection: state,
          info: state === "open" ? this.snapshot.info : null,
          lastError: error ?? this.snapshot.lastError,
        });
      },
    });
  }

  subscribe = (listener: () => void): (() => void) => {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  };

  getSnapshot = (): FleetSnapshot => this.snapshot;

  start(): void {
    this.socket.start();
  }

  stop(): void {
    this.socket.stop();
  }

  dispose(): void {
    this.socket.dispose();
    this.listeners.clear();
  }

  private handle(message: ServerMessage): void {
    switch (message.type) {
      case "connection":
        this.incoming = new Map();
        this.update({ info: message.data as ConnectionData, lastError: null });
        return;
      case "fleet_snapshot": {
        const target = this.incoming ?? (this.incoming = new Map());
        for (const entry of message.data.vms) if (isVM(entry)) target.set(entry.name, toRow(entry as Entry));
        if (message.data.complete) {
          this.rows = target;
          this.incoming = null;
          this.publish();
        }
        return;
      }
      case "fleet_summary": {
        for (const entry of message.data.vms) {
          if (!isVM(entry)) continue;
          this.rows.set(entry.name, toRow(entry as Entry, this.rows.get(entry.name)));
        }
        if (message.data.complete) this.publish(); // one re-render per summary, not per slice
        return;
      }
      case "fleet_status":
      case "fleet_added":
        this.rows.set(message.data.name, toRow(message.data as Entry, this.rows.get(message.data.name)));
        this.publish();
        return;
      case "fleet_removed":
        this.rows.delete(message.data.name);
        this.publish();
        return;
      case "error":
        this.update({ lastError: message.data });
        return;
      default:
        return;
    }
  }

  private publish(): void {
    if (this.incoming !== null && this.snapshot.rows === null) return; // first snapshot not whole yet
    const rows = [...this.rows.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    this.update({ rows });
  }

  private update(changes: Partial<FleetSnapshot>): void {
    this.snapshot = { ...this.snapshot, ...changes };
    for (const listener of [...this.listeners]) listener();
  }
}
