// The vmws wire protocol as the browser sees it: message shapes, codes, and the
// pure functions that build and parse frames. No sockets, no React: everything else
// in the UI goes through these types (spec: shared/spec/websocket-api.md).

export const VM_STATUSES = ["running", "stopped", "paused", "suspended", "error"] as const;
export type VMStatus = (typeof VM_STATUSES)[number];

export const ACTIONS = ["start", "stop", "restart", "suspend", "resume"] as const;
export type Action = (typeof ACTIONS)[number];

export type Permission = "read" | "control" | "console";

/** Wire error codes; the server may add more, so any string is accepted too. */
export type ErrorCode =
  | "AUTH_ERROR"
  | "VM_NOT_FOUND"
  | "VM_NOT_RUNNING"
  | "INVALID_COMMAND"
  | "UNKNOWN_ERROR"
  | (string & {});

/** WebSocket close codes the server uses (DESIGN.md, "Connection"). */
export const CloseCode = {
  NORMAL: 1000,
  GOING_AWAY: 1001,
  BAD_TOKEN: 4001,
  FORBIDDEN: 4003,
  VM_NOT_FOUND: 4004,
  VM_NOT_RUNNING: 4009,
} as const;

export interface ConnectionData {
  status: "connected";
  vm: string;
  sessionId: string;
  user: string;
  permissions: Permission[];
  /** Seconds between the server's heartbeats. */
  heartbeatInterval: number;
  /** Seconds between metrics messages. */
  metricsInterval: number;
}

export interface StatusData {
  status: VMStatus;
  lastStateChange: string;
  uptime: number;
}

export interface MetricsData {
  cpu: { utilization: number };
  memory: { used: number; total: number };
  network: { rxBytes: number; txBytes: number };
  disk: { readBytes: number; writeBytes: number };
}

export interface ResponseData {
  requestId: string;
  success: boolean;
  message: string;
  code?: ErrorCode;
}

export interface ConsoleData {
  content: string;
  eof: boolean;
}

export interface ErrorData {
  code: ErrorCode;
  message: string;
  requestId?: string;
}

export type HeartbeatData = Record<string, unknown>;

interface Envelope<T extends string, D> {
  type: T;
  timestamp: string;
  data: D;
}

export type ServerMessage =
  | Envelope<"connection", ConnectionData>
  | Envelope<"status", StatusData>
  | Envelope<"metrics", MetricsData>
  | Envelope<"response", ResponseData>
  | Envelope<"console", ConsoleData>
  | Envelope<"error", ErrorData>
  | Envelope<"heartbeat", HeartbeatData>;

export type ClientMessage =
  | Envelope<"command", { action: Action; requestId: string; force?: boolean }>
  | Envelope<"console_input", { content: string }>
  | Envelope<"heartbeat", HeartbeatData>;

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
};

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
