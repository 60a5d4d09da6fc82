// The audit trail's client side: the URL of GET /api/audit, newest first, the
// server's refusals as messages, one line of text per event, and the permissions a
// token claims (which decide whether the UI offers the page at all).

import { afterEach, describe, expect, it, vi } from "vitest";
import { auditUrl, describeEvent, eventUser, fetchAudit, type AuditEvent } from "../src/audit";
import { parseRoute } from "../src/route";
import { tokenClaims, tokenPermissions } from "../src/tokenClaims";
import { fakeJwt } from "./fakeJwt";

afterEach(() => {
  vi.unstubAllGlobals();
});

describe("auditUrl", () => {
  it("sends only the filters given, percent-encoded", () => {
    expect(auditUrl("", {})).toBe("/api/audit");
    expect(auditUrl("http://h/", { vm: "a&b=c", user: "", since: "2026-01-31T12:00:00+01:00", limit: 5 })).toBe(
      "http://h/api/audit?vm=a%26b%3Dc&since=2026-01-31T12%3A00%3A00%2B01%3A00&limit=5",
    );
  });
});

describe("fetchAudit", () => {
  it("returns the events newest first, with the token in a header", async () => {
    const fetchMock = vi.fn(async (_url: string, _init?: RequestInit) =>
      Response.json({ events: [{ time: "t1", kind: "command" }, { time: "t2", kind: "ticket_issued" }, { bogus: 1 }] }),
    );
    vi.stubGlobal("fetch", fetchMock);
    const events = await fetchAudit("tok", { user: "alice" });
    expect(events.map((e) => e.time)).toEqual(["t2", "t1"]);
    const [url, init] = fetchMock.mock.calls[0]!;
    expect(url).toBe("/api/audit?user=alice");
    expect((init?.headers as Record<string, string>).Authorization).toBe("Bearer tok");
  });

  it("throws the server's message on a refusal", async () => {
    vi.stubGlobal(
      "fetch",
      vi.fn(async () =>
        Response.json({ error: { code: "INVALID_COMMAND", message: "an RFC 3339 timestamp needs a zone" } }, { status: 400 }),
      ),
    );
    await expect(fetchAudit("tok", { since: "2026-01-31T12:00:00" })).rejects.toMatchObject({
      status: 400,
      message: "an RFC 3339 timestamp needs a zone",
    });
  });
});

describe("describeEvent", () => {
  const event = (fields: Record<string, unknown>): AuditEvent => ({ time: "t", kind: "?", node: "n", ...fields });

  it("says what each kind of event was", () => {
    expect(describeEvent(event({ kind: "command", action: "stop", force: true, outcome: "success", durationMs: 12 }))).toBe(
      "stop (force): success in 12 ms",
    );
    expect(describeEvent(event({ kind: "console_session", state: "opened", mode: "watch", remote: "127.0.0.1" }))).toBe(
      "watch console opened from 127.0.0.1",
    );
    expect(
      describeEvent(event({ kind: "console_session", state: "closed", mode: "interactive", bytesIn: 5, bytesOut: 9, closeCode: 1000 })),
    ).toBe("interactive console closed: 5 B in, 9 B out, close code 1000");
    expect(describeEvent(event({ kind: "auth_refused", reason: "forbidden", where: "console", message: "no", sub: "eve" }))).toBe(
      "refused (forbidden) on console: no",
    );
    expect(describeEvent(event({ kind: "revocation", sub: "bob", expiresAt: "x", sessionsClosed: 2 }))).toBe(
      "revoked user bob until x; 2 sessions closed",
    );
    expect(describeEvent(event({ kind: "future_kind", a: "<b>", b: { c: 1 } }))).toBe('a=<b> b={"c":1}');
  });

  it("names the user, or the sub of a refused token", () => {
    expect(eventUser(event({ kind: "command", user: "alice" }))).toBe("alice");
    expect(eventUser(event({ kind: "auth_refused", sub: "eve" }))).toBe("eve");
    expect(eventUser(event({ kind: "auth_refused" }))).toBe("");
  });

  it("cuts a huge value", () => {
    expect(describeEvent(event({ kind: "ticket_issued", remote: "x".repeat(5000) })).length).toBeLessThan(340);
  });
});

describe("tokenPermissions", () => {
  it("reads the permissions claim of a JWT, even with non-ASCII claims", () => {
    const token = fakeJwt({ sub: "名前", permissions: ["read", "audit", 7] });
    expect(tokenPermissions(token)).toEqual(["read", "audit"]);
    expect(tokenClaims(token, "audit")).toBe(true);
    expect(tokenClaims(fakeJwt({ sub: "x", permissions: ["read"] }), "audit")).toBe(false);
    expect(tokenPermissions(fakeJwt({ sub: "x" }))).toEqual([]);
  });

  it("gives null for anything that is not a readable JWT", () => {
    for (const token of ["", "abc", "a.b", "a.!!!.c", "a.b.c.d", `a.${btoa("not json")}.c`]) {
      expect(tokenPermissions(token)).toBeNull();
    }
  });
});

describe("route", () => {
  it("has an audit page", () => {
    expect(parseRoute("#/audit")).toEqual({ page: "audit" });
    expect(parseRoute("#/auditx")).toEqual({ page: "list" });
  });
});
