// The audit page: a token without `audit` is told so (and nothing is asked of the
// server); events show newest first, as text; filters and refresh ask again; the
// server's refusal is shown as its message.

import { cleanup, fireEvent, render, screen, waitFor } from "@testing-library/react";
import { afterEach, describe, expect, it, vi } from "vitest";
import { AuditPage } from "../../src/components/AuditPage";
import { fakeJwt } from "../fakeJwt";

afterEach(() => {
  cleanup();
  vi.unstubAllGlobals();
});

const AUDITOR = fakeJwt({ sub: "auditor", permissions: ["audit"] });

function serve(...bodies: [number, unknown][]) {
  const fetchMock = vi.fn(async (_url: string, _init?: RequestInit) => {
    const [status, body] = bodies.length > 1 ? bodies.shift()! : bodies[0]!;
    return Response.json(body, { status });
  });
  vi.stubGlobal("fetch", fetchMock);
  return fetchMock;
}

describe("AuditPage", () => {
  it("says a token without audit cannot see the trail, without a request", () => {
    const fetchMock = serve([200, { events: [] }]);
    render(<AuditPage token={fakeJwt({ sub: "u", permissions: ["read", "console"] })} />);
    expect(screen.getByTestId("audit-forbidden").textContent).toMatch(/lacks the audit permission/);
    expect(fetchMock).not.toHaveBeenCalled();
  });

  it("lists events newest first, as text", async () => {
    serve([
      200,
      {
        events: [
          { time: "2026-01-01T00:00:01.000Z", kind: "command", node: "n", user: "alice", vm: "<img src=x>", action: "stop", outcome: "success" },
          { time: "2026-01-01T00:00:02.000Z", kind: "ticket_issued", node: "n", user: "alice", remote: "127.0.0.1" },
        ],
      },
    ]);
    const { container } = render(<AuditPage token={AUDITOR} />);
    await waitFor(() => expect(screen.getAllByTestId("audit-row")).toHaveLength(2));
    const rows = screen.getAllByTestId("audit-row");
    expect(rows.map((r) => r.dataset.kind)).toEqual(["ticket_issued", "command"]);
    expect(screen.getAllByTestId("audit-cell-vm")[1]!.textContent).toBe("<img src=x>");
    expect(container.querySelector("img")).toBeNull();
    expect(screen.getAllByTestId("audit-what")[1]!.textContent).toBe("stop: success");
  });

  it("sends the filters on Apply, asks again on Refresh, and shows the server's refusal", async () => {
    const fetchMock = serve(
      [200, { events: [] }],
      [400, { error: { code: "INVALID_COMMAND", message: "an RFC 3339 timestamp needs a zone: Z or ±HH:MM" } }],
      [200, { events: [] }],
    );
    render(<AuditPage token={AUDITOR} />);
    await waitFor(() => expect(screen.getByText("No events match.")).toBeTruthy());
    expect(fetchMock.mock.calls[0]![0]).toBe("/api/audit?limit=200");
    fireEvent.change(screen.getByTestId("audit-filter-vm"), { target: { value: "web-1" } });
    fireEvent.change(screen.getByTestId("audit-filter-since"), { target: { value: "2026-01-31T12:00:00" } });
    fireEvent.click(screen.getByTestId("audit-apply"));
    await waitFor(() => expect(screen.getByTestId("audit-error").textContent).toMatch(/needs a zone/));
    expect(fetchMock.mock.calls[1]![0]).toBe("/api/audit?vm=web-1&since=2026-01-31T12%3A00%3A00&limit=200");
    fireEvent.click(screen.getByTestId("audit-refresh"));
    await waitFor(() => expect(fetchMock).toHaveBeenCalledTimes(3));
    await waitFor(() => expect(screen.getByText("No events match.")).toBeTruthy());
  });
});
