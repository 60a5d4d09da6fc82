// The vmws wire protocol as the browser sees it: message shapes, codes, and the
// pure functions that build and parse frames. No sockets, no React: everything else
// in the UI goes through these types. The contract is docs/websocket-api.md; the
// types and close codes come from protocol.generated.ts, generated from the published
// schema (docs/schema/), so they cannot drift from it.

import type {
  ConsoleClientMessage,
  ConsoleServerMessage,
  ErrorCode as KnownErrorCode,
  FleetServerMessage,
  MonitorClientMessage,
  MonitorServerMessage,
} from "./protocol.generated";

export { ACTIONS, CloseCode, CONSOLE_MODES, ERROR_CODES, PERMISSIONS, VM_STATUSES } from "./protocol.generated";
export type {
  Action,
  ClientHeartbeatMessage,
  CommandData,
  CommandMessage,
  ConnectionData,
  ConnectionMessage,
  ConsoleClientMessage,
  ConsoleData,
  ConsoleInputData,
  ConsoleInputMessage,
  ConsoleMessage,
  ConsoleMode,
  ConsoleServerMessage,
  ErrorData,
  ErrorMessage,
  FleetServerMessage,
  FleetSummaryVM,
  FleetVM,
  HeartbeatData,
  HeartbeatTick,
  MetricsData,
  MetricsMessage,
  MonitorClientMessage,
  MonitorServerMessage,
  Permission,
  ResponseData,
  ResponseMessage,
  ServerHeartbeatMessage,
  StatusData,
  StatusMessage,
  VMStatus,
  Viewer,
  ViewersData,
  ViewersMessage,
} from "./protocol.generated";
import { VM_STATUSES, type VMStatus } from "./protocol.generated";

/** Wire error codes; the server may add more, so any string is accepted too. */
export type ErrorCode = KnownErrorCode | (string & {});

export type ServerMessage = MonitorServerMessage | ConsoleServerMessage | FleetServerMessage;
export type ClientMessage = MonitorClientMessage | ConsoleClientMessage;

type ClientData<T extends ClientMessage["type"]> = Extract<ClientMessage, { type: T }>["data"];

/** One client frame, stamped with the current time (ISO 8601, as the spec shows). */
export function encode<T extends ClientMessage["type"]>(
  type: T,
  data: ClientData<T>,
  now: Date = new Date(),
): string {
  return JSON.stringify({ type, timestamp: now.toISOString(), data });
}

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v);

const isNumber = (v: unknown): v is number => typeof v === "number" && Number.isFinite(v);

// Per type, the least a frame must carry for the UI to use it. A frame that fails
// is dropped (and counted by the caller) rather than crashing a render.
const validators: Record<ServerMessage["type"], (d: Record<string, unknown>) => boolean> = {
  connection: (d) =>
    typeof d.sessionId === "string" && Array.isArray(d.permissions) && isNumber(d.heartbeatInterval),
  status: (d) => typeof d.status === "string" && (VM_STATUSES as readonly string[]).includes(d.status),
  metrics: (d) =>
    isObject(d.cpu) &&
    isNumber(d.cpu.utilization) &&
    isObject(d.memory) &&
    isNumber(d.memory.used) &&
    isNumber(d.memory.total) &&
    isObject(d.network) &&
    isNumber(d.network.rxBytes) &&
    isNumber(d.network.txBytes) &&
    isObject(d.disk) &&
    isNumber(d.disk.readBytes) &&
    isNumber(d.disk.writeBytes),
  response: (d) => typeof d.requestId === "string" && typeof d.success === "boolean",
  console: (d) => typeof d.content === "string",
  error: (d) => typeof d.code === "string",
  heartbeat: () => true,
  viewers: (d) =>
    Array.isArray(d.viewers) &&
    d.viewers.every(
      (v: unknown) =>
        isObject(v) && typeof v.user === "string" && typeof v.mode === "string" && typeof v.joinedAt === "string",
    ),
  fleet_snapshot: (d) => Array.isArray(d.vms) && typeof d.complete === "boolean",
  fleet_summary: (d) => Array.isArray(d.vms) && typeof d.complete === "boolean",
  fleet_status: (d) => isVM(d),
  fleet_added: (d) => isVM(d),
  fleet_removed: (d) => typeof d.name === "string",
};

/** A fleet entry the UI can show: a name and a known status (metrics are optional). */
export function isVM(v: unknown): v is { name: string; status: VMStatus } {
  return isObject(v) && typeof v.name === "string" && (VM_STATUSES as readonly string[]).includes(v.status as string);
}

/** Parses one text frame; `null` for anything that is not a known, well-formed message. */
export function decode(raw: unknown): ServerMessage | null {
  if (typeof raw !== "string") return null;
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch {
    return null;
  }
  if (!isObject(value) || typeof value.type !== "string") return null;
  const check = validators[value.type as ServerMessage["type"]];
  const data = isObject(value.data) ? value.data : {};
  if (check === undefined || !check(data)) return null;
  return {
    type: value.type,
    timestamp: typeof value.timestamp === "string" ? value.timestamp : "",
    data,
  } as ServerMessage;
}
