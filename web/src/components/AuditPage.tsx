// The audit page (#/audit): recent events from GET /api/audit, newest first, with
// the server's filters (vm, user, since, limit) and a refresh button. Only tokens
// with the `audit` permission get the nav link; any other token that comes here
// is told why there is nothing to show, without asking the server.
//
// Every value is rendered as text by React; nothing from the server becomes markup.

import { useCallback, useEffect, useState, type FormEvent } from "react";
import { ApiError } from "../api";
import { DEFAULT_AUDIT_LIMIT, describeEvent, eventUser, fetchAudit, fieldText, type AuditEvent, type AuditFilters } from "../audit";
import { tokenPermissions } from "../tokenClaims";

type Load =
  | { readonly state: "loading" }
  | { readonly state: "done"; readonly events: readonly AuditEvent[]; readonly at: Date }
  | { readonly state: "failed"; readonly message: string };

export function AuditPage({ token, base = "" }: { token: string; base?: string }) {
  // A token that can be read and lacks `audit` is refused without a request (which
  // the server would only answer 403, and audit as a refusal).
  const claimed = tokenPermissions(token);
  const allowed = claimed === null || claimed.includes("audit");
  const [draft, setDraft] = useState({ vm: "", user: "", since: "", limit: String(DEFAULT_AUDIT_LIMIT) });
  const [filters, setFilters] = useState<AuditFilters>({ limit: DEFAULT_AUDIT_LIMIT });
  const [load, setLoad] = useState<Load>({ state: "loading" });
  const [generation, setGeneration] = useState(0);

  useEffect(() => {
    if (!allowed) return;
    let current = true;
    setLoad({ state: "loading" });
    fetchAudit(token, filters, base).then(
      (events) => current && setLoad({ state: "done", events, at: new Date() }),
      (err: unknown) =>
        current && setLoad({ state: "failed", message: err instanceof ApiError ? err.message : String(err) }),
    );
    return () => {
      current = false;
    };
  }, [allowed, token, filters, base, generation]);

  const refresh = useCallback(() => setGeneration((n) => n + 1), []);

  const apply = (e: FormEvent) => {
    e.preventDefault();
    // Sent as typed: the server's 400 names what is wrong with a bad `since` or `limit`.
    setFilters({ vm: draft.vm, user: draft.user, since: draft.since.trim(), limit: draft.limit.trim() || DEFAULT_AUDIT_LIMIT });
    refresh();
  };

  if (!allowed) {
    return (
      <section className="audit" aria-label="Audit">
        <h2>Audit</h2>
        <p className="note" data-testid="audit-forbidden">
          This token lacks the audit permission: the audit trail is not shown.
        </p>
      </section>
    );
  }

  const field = (key: keyof typeof draft, label: string, placeholder: string) => (
    <label>
      {label}
      <input
        data-testid={`audit-filter-${key}`}
        value={draft[key]}
        placeholder={placeholder}
        onChange={(e) => setDraft({ ...draft, [key]: e.target.value })}
      />
    </label>
  );

  return (
    <section className="audit" aria-label="Audit">
      <header className="fleet-bar">
        <h2>Audit</h2>
        <button type="button" data-testid="audit-refresh" onClick={refresh} disabled={load.state === "loading"}>
          Refresh
        </button>
        {load.state === "done" && (
          <span className="note" data-testid="audit-count">
            {load.events.length} events, newest first (as of {load.at.toLocaleTimeString()})
          </span>
        )}
      </header>
      <form className="audit-filters" onSubmit={apply}>
        {field("vm", "VM", "exact name")}
        {field("user", "User", "sub")}
        {field("since", "Since", "2026-01-31T12:00:00Z")}
        {field("limit", "Limit", String(DEFAULT_AUDIT_LIMIT))}
        <button type="submit" data-testid="audit-apply">
          Apply
        </button>
      </form>
      {load.state === "loading" && <p className="note">Loading…</p>}
      {load.state === "failed" && (
        <p className="error" role="alert" data-testid="audit-error">
          {load.message}
        </p>
      )}
      {load.state === "done" && load.events.length === 0 && <p className="note">No events match.</p>}
      {load.state === "done" && load.events.length > 0 && (
        <table className="audit-table" data-testid="audit-table">
          <thead>
            <tr>
              <th scope="col">Time</th>
              <th scope="col">Kind</th>
              <th scope="col">User</th>
              <th scope="col">VM</th>
              <th scope="col">What</th>
              <th scope="col">Node</th>
            </tr>
          </thead>
          <tbody>
            {load.events.map((event, i) => (
              <tr key={i} data-testid="audit-row" data-kind={event.kind}>
                <td className="nowrap">{fieldText(event, "time")}</td>
                <td>{fieldText(event, "kind")}</td>
                <td data-testid="audit-user">{eventUser(event)}</td>
                <td data-testid="audit-cell-vm">{fieldText(event, "vm")}</td>
                <td data-testid="audit-what">{describeEvent(event)}</td>
                <td className="note">{fieldText(event, "node")}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}
