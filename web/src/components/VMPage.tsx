// One VM: its status, controls, metrics chart, and its console and screen as tabs.

import { Suspense, lazy, useState } from "react";
import { actionValid } from "../actions";
import { formatDuration } from "../format";
import { useVMWebSocket } from "../hooks/useVMWebSocket";
import { CommandError } from "../monitor";
import type { Action } from "../protocol";
import { ConnectionBadge, StatusBadge } from "./Badges";
import { VMConsole } from "./VMConsole";
import { VMMetricsChart } from "./VMMetricsChart";

// noVNC comes with the Screen tab: a page that never opens it never loads it.
const VMScreen = lazy(() => import("./VMScreen"));

type Tab = "console" | "screen";

const BUTTONS: readonly { action: Action; label: string; force?: boolean }[] = [
  { action: "start", label: "Start" },
  { action: "stop", label: "Stop" },
  { action: "stop", label: "Force off", force: true },
  { action: "restart", label: "Restart" },
  { action: "suspend", label: "Suspend" },
  { action: "pause", label: "Pause" },
  { action: "resume", label: "Resume" },
];

interface Outcome {
  readonly id: number;
  readonly ok: boolean;
  readonly text: string;
}

let outcomeSeq = 0;

export function VMPage({ name, token }: { name: string; token: string }) {
  const vm = useVMWebSocket(name, { token });
  const [busy, setBusy] = useState<string | null>(null);
  const [outcomes, setOutcomes] = useState<readonly Outcome[]>([]);
  const [tab, setTab] = useState<Tab>("console");
  const canControl = vm.permissions.includes("control");
  // The token's permissions as the server last said them: while the monitor socket
  // reconnects they are unknown, and the console and screen stay (and reconnect on
  // their own) rather than vanish and come back.
  const [granted, setGranted] = useState(vm.permissions);
  if (vm.info !== null && vm.permissions !== granted) setGranted(vm.permissions);
  // `watch` opens the console too, watch-only (the server refuses its input).
  const canConsole = granted.includes("console") || granted.includes("watch");
  const open = vm.connection === "open";
  const status = vm.status?.status ?? null;

  const run = async (action: Action, label: string, force?: boolean) => {
    setBusy(label);
    let outcome: Outcome;
    try {
      const result = await vm.sendCommand(action, force ? { force } : {});
      outcome = { id: ++outcomeSeq, ok: true, text: result.message || `${label}: done` };
    } catch (err) {
      const text = err instanceof CommandError ? `${label} failed: ${err.code}: ${err.message}` : String(err);
      outcome = { id: ++outcomeSeq, ok: false, text };
    } finally {
      setBusy(null);
    }
    setOutcomes((previous) => [outcome, ...previous].slice(0, 5));
  };

  const controlHint = !canControl
    ? "This token lacks the control permission"
    : !open
      ? "Not connected"
      : busy !== null
        ? `Waiting for ${busy}`
        : undefined;

  return (
    <article className="vm-page" aria-label={`VM ${name}`}>
      <header className="vm-header">
        <a href="#/" className="back">
          ← all VMs
        </a>
        <h2 data-testid="vm-name">{name}</h2>
        <StatusBadge status={status} testId="vm-status" />
        {vm.status && status === "running" && (
          <span className="note" data-testid="vm-uptime">
            up {formatDuration(vm.status.uptime)}
          </span>
        )}
        <ConnectionBadge state={vm.connection} testId="vm-connection" />
        {vm.latencyMs !== null && open && (
          <span className="note" data-testid="latency" title="Heartbeat round trip">
            {Math.round(vm.latencyMs)} ms
          </span>
        )}
      </header>

      {vm.lastError && (
        <p className="error" role="alert" data-testid="vm-error">
          {vm.lastError.code}: {vm.lastError.message}
        </p>
      )}

      <div className="actions" role="group" aria-label="Actions">
        {BUTTONS.map(({ action, label, force }) => {
          // Only what changes the VM in its current status (no Start on a running VM).
          const hint =
            controlHint ??
            (status === null
              ? "Status not known yet"
              : actionValid(action, status)
                ? undefined
                : `Not possible while the VM is ${status}`);
          return (
            <button
              key={label}
              type="button"
              data-testid={`action-${label.toLowerCase().replace(/\s+/g, "-")}`}
              disabled={hint !== undefined}
              title={hint}
              onClick={() => void run(action, label, force)}
            >
              {label}
            </button>
          );
        })}
      </div>
      {outcomes.length > 0 && (
        <ul className="outcomes" data-testid="outcomes">
          {outcomes.map((o) => (
            <li key={o.id} className={o.ok ? "ok" : "error"}>
              {o.text}
            </li>
          ))}
        </ul>
      )}

      <VMMetricsChart metrics={vm.metrics} />

      {vm.info !== null && !canConsole && <p className="note">This token lacks the console permission.</p>}
      {canConsole && (
        <div className="tabs" role="tablist" aria-label="Console and screen">
          {(["console", "screen"] as const).map((t) => (
            <button
              key={t}
              type="button"
              role="tab"
              data-testid={`tab-${t}`}
              aria-selected={tab === t}
              onClick={() => setTab(t)}
            >
              {t === "console" ? "Console" : "Screen"}
            </button>
          ))}
        </div>
      )}
      {canConsole && tab === "console" && <VMConsole name={name} token={token} enabled={status === "running"} />}
      {canConsole && tab === "console" && status !== null && status !== "running" && (
        <p className="note" data-testid="console-hint">
          The console opens while the VM is running.
        </p>
      )}
      {canConsole && tab === "screen" && (
        <Suspense fallback={<p className="note">Loading the screen…</p>}>
          <VMScreen
            name={name}
            token={token}
            // A paused VM's screen is shown, frozen; a stopped one has none.
            enabled={status === "running" || status === "paused"}
            tokenWatchOnly={canConsole && !granted.includes("console")}
          />
        </Suspense>
      )}
    </article>
  );
}
