// Where the UI finds vmws: WebSocket URLs per VM, built from the page's own origin
// unless told otherwise. VM names are percent-encoded as one path segment, so a
// name with HTML or URL characters still reaches the right VM.

import { fetchTicket } from "./api";
import type { UrlProvider } from "./socket";

/** `ws(s)://host` of the page that loaded us. */
export function defaultSocketBase(location: Pick<Location, "protocol" | "host"> = window.location): string {
  return `${location.protocol === "https:" ? "wss:" : "ws:"}//${location.host}`;
}

/** The per-VM WebSocket endpoints: the JSON monitor, the serial console, the screen (RFB). */
export type VMEndpoint = "monitor" | "console" | "screen";

/**
 * `/ws/vms/{name}` (or `/console`, `/screen`) with the token as the spec's `?token=`;
 * `watch` joins a console or a screen watch-only (`?mode=watch`, an extension).
 */
export function vmSocketUrl(base: string, name: string, token: string, endpoint: VMEndpoint, watch = false): string {
  const path = `/ws/vms/${encodeURIComponent(name)}${endpoint === "monitor" ? "" : `/${endpoint}`}`;
  const mode = watch && endpoint !== "monitor" ? "&mode=watch" : "";
  return `${base.replace(/\/+$/, "")}${path}?token=${encodeURIComponent(token)}${mode}`;
}

/** `GET /api/vms/{name}/console.cast`: the VM's held console output as an asciinema recording. */
export function recordingUrl(httpOrigin: string, name: string): string {
  return `${httpOrigin.replace(/\/+$/, "")}/api/vms/${encodeURIComponent(name)}/console.cast`;
}

/** The HTTP origin that serves a `ws(s)://` base. */
export function httpBase(socketBase: string): string {
  return socketBase.replace(/^ws(s?):/, "http$1:").replace(/\/+$/, "");
}

/**
 * A URL provider for ManagedSocket: each attempt trades the token for a fresh
 * single-use ticket, so the token itself never appears in a WebSocket URL (nor in
 * any proxy's log of one). A vmws without tickets gets the token, as the spec has it.
 */
export function ticketedSocketUrl(
  base: string,
  name: string,
  token: string,
  endpoint: VMEndpoint,
  watch = false,
): UrlProvider {
  return async () => vmSocketUrl(base, name, (await fetchTicket(token, httpBase(base))) ?? token, endpoint, watch);
}

/** `/ws/fleet` with the token as `?token=` (every VM the token may see). */
export function fleetSocketUrl(base: string, token: string): string {
  return `${base.replace(/\/+$/, "")}/ws/fleet?token=${encodeURIComponent(token)}`;
}

/** As `ticketedSocketUrl`, for `/ws/fleet`. */
export function ticketedFleetUrl(base: string, token: string): UrlProvider {
  return async () => fleetSocketUrl(base, (await fetchTicket(token, httpBase(base))) ?? token);
}
