// What a token says about itself, read without verifying it: only to decide what
// the UI offers (the Audit link). The server checks every request on its own, so a
// token that lies here gets a link and then a refusal, nothing more.

/** The token's `permissions` claim, or null when it is not a JWT this page can read. */
export function tokenPermissions(token: string): readonly string[] | null {
  const payload = token.split(".")[1];
  if (token.split(".").length !== 3 || !payload || payload.length > 16_384) return null;
  try {
    const base64 = payload.replace(/-/g, "+").replace(/_/g, "/");
    const binary = atob(base64 + "=".repeat((4 - (base64.length % 4)) % 4));
    const json = new TextDecoder().decode(Uint8Array.from(binary, (c) => c.charCodeAt(0)));
    const claims: unknown = JSON.parse(json);
    const permissions = (claims as { permissions?: unknown } | null)?.permissions;
    if (!Array.isArray(permissions)) return [];
    return permissions.filter((p): p is string => typeof p === "string");
  } catch {
    return null;
  }
}

/** Whether the token claims `permission` (false when it cannot be read). */
export function tokenClaims(token: string, permission: string): boolean {
  return tokenPermissions(token)?.includes(permission) ?? false;
}
