// The dashboard's pages live in the URL hash (#/, #/vm/NAME and #/audit), so vmws
// serves one index.html at "/" and needs no server-side routes for the UI.

export type Route =
  | { readonly page: "list" }
  | { readonly page: "vm"; readonly name: string }
  | { readonly page: "audit" };

export const AUDIT_HREF = "#/audit";

export function parseRoute(hash: string): Route {
  if (hash === AUDIT_HREF) return { page: "audit" };
  const match = /^#\/vm\/(.+)$/.exec(hash);
  if (match?.[1]) {
    try {
      return { page: "vm", name: decodeURIComponent(match[1]) };
    } catch {
      // A malformed escape: fall back to the list rather than crash.
    }
  }
  return { page: "list" };
}

export function vmHref(name: string): string {
  return `#/vm/${encodeURIComponent(name)}`;
}
