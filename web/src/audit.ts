// The audit trail as the UI reads it: `GET /api/audit` (docs/operations.md, Audit)
// and one line of text per event. Every field came from a client, a guest or the
// server and is shown as text only; nothing here builds markup.

import { ApiError } from "./api";

/** One audit event: `time`, `kind`, `node` and the kind's own fields. */
export type AuditEvent = Readonly<Record<string, unknown>> & { readonly time: string; readonly kind: string };

export interface AuditFilters {
  readonly vm?: string;
  readonly user?: string;
  /** RFC 3339 with a zone; the server says what is wrong with a bad one. */
  readonly since?: string;
  /** As typed: the server names the problem with anything but 1 … its ring size. */
  readonly limit?: number | string;
}

/** Events the page asks for unless told otherwise (the server's own default is 1,000). */
export const DEFAULT_AUDIT_LIMIT = 200;

/** `/api/audit` with the filters given (empty ones left out). */
export function auditUrl(base: string, filters: AuditFilters): string {
  const query = new URLSearchParams();
  for (const key of ["vm", "user", "since"] as const) {
    const value = filters[key];
    if (value !== undefined && value !== "") query.set(key, value);
  }
  if (filters.limit !== undefined && filters.limit !== "") query.set("limit", String(filters.limit));
  const text = query.toString();
  return `${base.replace(/\/+$/, "")}/api/audit${text ? `?${text}` : ""}`;
}

/**
 * The events matching `filters`, newest first (the server sends them oldest first).
 * The token goes in `Authorization`, never in the URL. Throws ApiError with the
 * server's message (a bad `since`, a token without `audit`, a cluster without Redis).
 */
export async function fetchAudit(token: string, filters: AuditFilters, base = ""): Promise<AuditEvent[]> {
  let response: Response;
  try {
    response = await fetch(auditUrl(base, filters), {
      headers: { Authorization: `Bearer ${token}`, Accept: "application/json" },
      cache: "no-store",
    });
  } catch {
    throw new ApiError(0, "vmws is not reachable");
  }
  const body: unknown = await response.json().catch(() => null);
  if (!response.ok) {
    const message = (body as { error?: { message?: unknown } } | null)?.error?.message;
    throw new ApiError(response.status, typeof message === "string" ? message : `GET /api/audit answered ${response.status}`);
  }
  const events = (body as { events?: unknown } | null)?.events;
  if (!Array.isArray(events)) throw new ApiError(response.status, "GET /api/audit answered without an event list");
  return events.filter(isEvent).reverse();
}

function isEvent(value: unknown): value is AuditEvent {
  const event = value as { time?: unknown; kind?: unknown } | null;
  return typeof event === "object" && event !== null && typeof event.time === "string" && typeof event.kind === "string";
}

// Longest a single value may be on screen (the server already cuts strings to 256).
const MAX_VALUE_CHARS = 300;

/** A field as short plain text ("" when absent). */
export function fieldText(event: AuditEvent, key: string): string {
  const value = event[key];
  if (value === undefined || value === null) return "";
  const text = typeof value === "string" ? value : JSON.stringify(value);
  return text.length > MAX_VALUE_CHARS ? `${text.slice(0, MAX_VALUE_CHARS)}…` : text;
}

/** Who the event is about: the acting user, or the `sub` a refused token named. */
export function eventUser(event: AuditEvent): string {
  return fieldText(event, "user") || fieldText(event, "sub");
}

const SHOWN_APART = new Set(["time", "kind", "node", "user", "vm"]);

/** What happened, in one line of text, per kind (docs/operations.md lists the fields). */
export function describeEvent(event: AuditEvent): string {
  const f = (key: string) => fieldText(event, key);
  switch (event.kind) {
    case "command": {
      const ms = event.durationMs;
      const duration = typeof ms === "number" && Number.isFinite(ms) ? ` in ${Math.round(ms * 10) / 10} ms` : "";
      return `${f("action")}${event.force === true ? " (force)" : ""}: ${f("outcome")}${duration}`;
    }
    case "console_session": {
      const what = `${f("mode")} console ${f("state")}`;
      if (event.state === "closed") return `${what}: ${f("bytesIn")} B in, ${f("bytesOut")} B out, close code ${f("closeCode")}`;
      return f("remote") ? `${what} from ${f("remote")}` : what;
    }
    case "auth_refused":
      return `refused (${f("reason")}) on ${f("where")}: ${f("message")}${f("remote") ? ` from ${f("remote")}` : ""}`;
    case "ticket_issued":
      return f("remote") ? `ticket issued to ${f("remote")}` : "ticket issued";
    case "revocation": {
      const target = f("sub") ? `user ${f("sub")}` : `token ${f("jti")}`;
      return `revoked ${target} until ${f("expiresAt")}; ${f("sessionsClosed") || "0"} sessions closed`;
    }
    default:
      // A kind this page does not know yet: its fields as key=value.
      return Object.keys(event)
        .filter((key) => !SHOWN_APART.has(key))
        .map((key) => `${key}=${f(key)}`)
        .join(" ");
  }
}
