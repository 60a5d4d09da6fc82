// The dashboard's two pages live in the URL hash (#/ and #/vm/NAME), so vmws
// serves one index.html at "/" and needs no server-side routes for the UI.

export type Route = { readonly page: "list" } | { readonly page: "vm"; readonly name: string };

export function parseRoute(hash: string): Route {
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
