// The REST side of vmws that the UI uses: a VM's metrics history, and single-use
// tickets that keep the long-lived token out of WebSocket URLs.

import type { MetricsData } from "./protocol";
import { sampleTime, type MetricsSample } from "./rates";
import { ConnectError, ServerBusyError } from "./socket";

/** A failed request; `status` is the HTTP status (0 for a network failure). */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
    this.name = "ApiError";
  }
}

/** Seconds of history the charts open with: as many points as they keep (300 at 2 s). */
export const HISTORY_SECONDS = 600;

/**
 * The VM's metrics history (`GET /api/vms/{name}/metrics?since=`), oldest first, as
 * samples the charts take; `[]` when this vmws keeps none or refuses (the charts then
 * start empty and fill live, as before).
 */
export async function fetchMetricsHistory(
  token: string,
  name: string,
  base = "",
  seconds = HISTORY_SECONDS,
): Promise<MetricsSample[]> {
  try {
    const response = await fetch(`${base}/api/vms/${encodeURIComponent(name)}/metrics?since=${seconds}`, {
      headers: { Authorization: `Bearer ${token}`, Accept: "application/json" },
      cache: "no-store",
    });
    if (!response.ok) return [];
    const body: unknown = await response.json();
    if (!Array.isArray(body)) return [];
    return body.filter(isSample).map(({ timestamp, ...data }) => ({ time: sampleTime(timestamp, NaN), data }))
      .filter((s) => Number.isFinite(s.time));
  } catch {
    return [];
  }
}

function isSample(v: unknown): v is MetricsData & { timestamp: string } {
  const s = v as Partial<MetricsData & { timestamp: unknown }> | null;
  const n = (x: unknown) => typeof x === "number" && Number.isFinite(x);
  return (
    typeof s?.timestamp === "string" &&
    n(s.cpu?.utilization) &&
    n(s.memory?.used) &&
    n(s.memory?.total) &&
    n(s.network?.rxBytes) &&
    n(s.network?.txBytes) &&
    n(s.disk?.readBytes) &&
    n(s.disk?.writeBytes)
  );
}

/**
 * The VM's console recording (asciinema v2) as a file, fetched with the token in a
 * header (never in a URL a proxy would log). The caller offers it as a download.
 */
export async function fetchRecording(url: string, token: string): Promise<Blob> {
  let response: Response;
  try {
    response = await fetch(url, { headers: { Authorization: `Bearer ${token}` }, cache: "no-store" });
  } catch {
    throw new ApiError(0, "vmws is not reachable");
  }
  if (!response.ok) {
    const body: unknown = await response.json().catch(() => null);
    const message = (body as { error?: { message?: unknown } } | null)?.error?.message;
    throw new ApiError(response.status, typeof message === "string" ? message : `recording: HTTP ${response.status}`);
  }
  return response.blob();
}

/**
 * A single-use ticket for one WebSocket connection (POST /api/tickets), or `null`
 * when this vmws has no ticket endpoint, in which case the token itself is used.
 */
export async function fetchTicket(token: string, base = ""): Promise<string | null> {
  let response: Response;
  try {
    response = await fetch(`${base}/api/tickets`, {
      method: "POST",
      headers: { Authorization: `Bearer ${token}`, Accept: "application/json" },
      cache: "no-store",
    });
  } catch {
    throw new ConnectError("UNKNOWN_ERROR", "vmws is not reachable");
  }
  if (response.status === 404 || response.status === 405) return null;
  const body: unknown = await response.json().catch(() => null);
  if (response.status === 401 || response.status === 403) {
    const message = (body as { error?: { message?: unknown } } | null)?.error?.message;
    throw new ConnectError("AUTH_ERROR", typeof message === "string" ? message : "the token was refused");
  }
  if (response.status === 429 || response.status === 503) {
    // Too many outstanding tickets, or vmws overloaded: the socket retries with backoff.
    throw new ServerBusyError(`POST /api/tickets answered ${response.status}; retrying`, retryAfterMs(response));
  }
  const ticket = (body as { ticket?: unknown } | null)?.ticket;
  if (!response.ok || typeof ticket !== "string") {
    throw new ConnectError("UNKNOWN_ERROR", `POST /api/tickets answered ${response.status}`);
  }
  return ticket;
}

/** Retry-After in ms when given as seconds (the HTTP-date form is not used by vmws). */
function retryAfterMs(response: Response): number | null {
  const value = response.headers.get("Retry-After");
  return value !== null && /^[0-9]{1,6}$/.test(value.trim()) ? Number(value.trim()) * 1000 : null;
}
