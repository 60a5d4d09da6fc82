// The dashboard: the token, then either the VM list or one VM's page.

import { Suspense, lazy, useCallback, useEffect, useState } from "react";
import { AuditPage } from "./components/AuditPage";
import { TokenForm } from "./components/TokenForm";
import { VMList } from "./components/VMList";
import { AUDIT_HREF, parseRoute, type Route } from "./route";
import { loadToken, saveToken } from "./session";
import { tokenPermissions } from "./tokenClaims";

// The VM page brings xterm.js and uPlot, most of the bundle: the list loads without them.
const VMPage = lazy(() => import("./components/VMPage").then((m) => ({ default: m.VMPage })));

export function App() {
  const [token, setToken] = useState<string | null>(() => loadToken());
  const [problem, setProblem] = useState<string | null>(null);
  const [route, setRoute] = useState<Route>(() => parseRoute(window.location.hash));

  useEffect(() => {
    const onHash = () => setRoute(parseRoute(window.location.hash));
    window.addEventListener("hashchange", onHash);
    return () => window.removeEventListener("hashchange", onHash);
  }, []);

  const acceptToken = useCallback((value: string | null) => {
    saveToken(value);
    setToken(value);
    setProblem(null);
  }, []);

  const onAuthFailure = useCallback((message: string) => {
    saveToken(null);
    setToken(null);
    setProblem(message);
  }, []);

  // What the token claims decides what the UI offers; the server still checks each request.
  const claimed = token === null ? null : tokenPermissions(token);
  const canAudit = claimed?.includes("audit") ?? false;
  // An auditor's token may lack `read`: its list would only be refused (4003).
  const cannotList = claimed !== null && !claimed.includes("read");

  return (
    <div className="app">
      <header className="app-bar">
        <h1>
          <a href="#/">vmws</a>
        </h1>
        {token && (
          <nav className="app-nav">
            {canAudit && (
              <a href={AUDIT_HREF} data-testid="nav-audit" aria-current={route.page === "audit" ? "page" : undefined}>
                Audit
              </a>
            )}
            <button type="button" className="link" onClick={() => acceptToken(null)} data-testid="sign-out">
              Forget token
            </button>
          </nav>
        )}
      </header>
      <main>
        {token === null ? (
          <TokenForm onToken={acceptToken} problem={problem} />
        ) : route.page === "vm" ? (
          <Suspense fallback={<p className="note">Loading…</p>}>
            <VMPage key={route.name} name={route.name} token={token} />
          </Suspense>
        ) : route.page === "audit" ? (
          <AuditPage token={token} />
        ) : cannotList ? (
          <p className="note" data-testid="list-forbidden">
            This token lacks the read permission, so it cannot list VMs.
            {canAudit && (
              <>
                {" "}
                It may read the <a href={AUDIT_HREF}>audit trail</a>.
              </>
            )}
          </p>
        ) : (
          <VMList token={token} onAuthFailure={onAuthFailure} />
        )}
      </main>
    </div>
  );
}
