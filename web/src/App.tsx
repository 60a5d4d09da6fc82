// The dashboard: the token, then either the VM list or one VM's page.

import { Suspense, lazy, useCallback, useEffect, useState } from "react";
import { TokenForm } from "./components/TokenForm";
import { VMList } from "./components/VMList";
import { parseRoute, type Route } from "./route";
import { loadToken, saveToken } from "./session";

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

  return (
    <div className="app">
      <header className="app-bar">
        <h1>
          <a href="#/">vmws</a>
        </h1>
        {token && (
          <button type="button" className="link" onClick={() => acceptToken(null)} data-testid="sign-out">
            Forget token
          </button>
        )}
      </header>
      <main>
        {token === null ? (
          <TokenForm onToken={acceptToken} problem={problem} />
        ) : route.page === "vm" ? (
          <Suspense fallback={<p className="note">Loading…</p>}>
            <VMPage key={route.name} name={route.name} token={token} />
          </Suspense>
        ) : (
          <VMList token={token} onAuthFailure={onAuthFailure} />
        )}
      </main>
    </div>
  );
}
