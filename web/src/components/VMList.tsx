// The fleet: every VM from GET /api/vms with its status, refreshed every few seconds.

import { useEffect, useState } from "react";
import { ApiError, fetchVMs, type VMSummary } from "../api";
import { vmHref } from "../route";
import { StatusBadge } from "./Badges";

export const LIST_REFRESH_MS = 5_000;

export function VMList({ token, onAuthFailure }: { token: string; onAuthFailure(message: string): void }) {
  const [vms, setVMs] = useState<readonly VMSummary[] | null>(null);
  const [problem, setProblem] = useState<string | null>(null);

  useEffect(() => {
    const abort = new AbortController();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const load = async () => {
      try {
        setVMs(await fetchVMs(token, abort.signal));
        setProblem(null);
      } catch (err) {
        if (abort.signal.aborted) return;
        if (err instanceof ApiError && (err.status === 401 || err.status === 403)) {
          onAuthFailure(err.message);
          return; // a refused token will not get better by asking again
        }
        setProblem(err instanceof Error ? err.message : String(err));
      }
      if (!abort.signal.aborted) timer = setTimeout(load, LIST_REFRESH_MS);
    };
    void load();
    return () => {
      abort.abort();
      clearTimeout(timer);
    };
  }, [token, onAuthFailure]);

  return (
    <section className="vm-list" aria-label="Virtual machines">
      <h2>Virtual machines</h2>
      {problem && (
        <p className="error" role="alert">
          {problem}
        </p>
      )}
      {vms === null && !problem && <p className="note">Loading…</p>}
      {vms !== null && vms.length === 0 && <p className="note">No VMs are visible to this token.</p>}
      {vms !== null && vms.length > 0 && (
        <table>
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Status</th>
            </tr>
          </thead>
          <tbody>
            {vms.map((vm) => (
              <tr key={vm.name} data-testid="vm-row" data-vm={vm.name}>
                <td>
                  <a href={vmHref(vm.name)} data-testid="vm-link">
                    {vm.name}
                  </a>
                </td>
                <td>
                  <StatusBadge status={vm.status} />
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}
