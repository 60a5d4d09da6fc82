// Where the UI finds vmws: WebSocket URLs per VM and the REST list, built from the
// page's own origin unless told otherwise. VM names are percent-encoded as one path
// segment, so a name with HTML or URL characters still reaches the right VM.

/** `ws(s)://host` of the page that loaded us. */
export function defaultSocketBase(location: Pick<Location, "protocol" | "host"> = window.location): string {
  return `${location.protocol === "https:" ? "wss:" : "ws:"}//${location.host}`;
}

/** `/ws/vms/{name}` (or `/console`) with the token as the spec's `?token=`. */
export function vmSocketUrl(base: string, name: string, token: string, endpoint: "monitor" | "console"): string {
  const path = `/ws/vms/${encodeURIComponent(name)}${endpoint === "console" ? "/console" : ""}`;
  return `${base.replace(/\/+$/, "")}${path}?token=${encodeURIComponent(token)}`;
}
