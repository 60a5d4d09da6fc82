// Tokens for tests of what the UI offers: JWT-shaped, unsigned (the page never verifies).

/** An unsigned JWT-shaped token with these claims (the page never verifies). */
export function fakeJwt(claims: unknown): string {
  const part = (value: unknown) =>
    btoa(String.fromCharCode(...new TextEncoder().encode(JSON.stringify(value))))
      .replace(/\+/g, "-")
      .replace(/\//g, "_")
      .replace(/=+$/, "");
  return `${part({ alg: "HS256", typ: "JWT" })}.${part(claims)}.c2ln`;
}
