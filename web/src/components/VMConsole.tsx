// VMConsole: an xterm.js terminal wired to useVMConsole with the protocol's JSON
// framing (xterm's attach addon speaks raw frames, so it does not fit here).
//
// Guest output goes to term.write as terminal data: escape sequences move the
// cursor and colour text, but nothing the guest prints is ever parsed as HTML.

import { FitAddon } from "@xterm/addon-fit";
import { Terminal } from "@xterm/xterm";
import "@xterm/xterm/css/xterm.css";
import { useEffect, useRef } from "react";
import { useVMConsole, type UseVMConsoleOptions } from "../hooks/useVMConsole";
import { ConnectionBadge } from "./Badges";

export interface VMConsoleProps extends UseVMConsoleOptions {
  name: string;
  fontSize?: number;
  /** Terminal scrollback, lines. */
  scrollback?: number;
}

export function VMConsole({ name, fontSize = 14, scrollback = 5000, ...options }: VMConsoleProps) {
  const consoleHandle = useVMConsole(name, options);
  const { subscribe, send, connection, eof, error, reconnect } = consoleHandle;
  const hostRef = useRef<HTMLDivElement>(null);
  const termRef = useRef<Terminal | null>(null);

  // One terminal for the component's life; output of later connections goes into it.
  useEffect(() => {
    const host = hostRef.current;
    if (host === null) return;
    const term = new Terminal({
      fontSize,
      scrollback,
      // The simulator and many guests print bare "\n"; real serial lines send "\r\n".
      convertEol: true,
      cursorBlink: true,
      fontFamily: "ui-monospace, 'DejaVu Sans Mono', Menlo, Consolas, monospace",
      theme: { background: "#101418", foreground: "#d8dee9" },
    });
    const fit = new FitAddon();
    term.loadAddon(fit);
    term.open(host);
    const refit = () => {
      try {
        fit.fit();
      } catch {
        // fit() throws while the host has no size (hidden tab); the next resize retries.
      }
    };
    refit();
    const observer = new ResizeObserver(refit);
    observer.observe(host);
    termRef.current = term;
    return () => {
      observer.disconnect();
      termRef.current = null;
      term.dispose();
    };
  }, [fontSize, scrollback]);

  useEffect(
    () =>
      subscribe((event) => {
        const term = termRef.current;
        if (term === null) return;
        if (event.kind === "reset") term.reset();
        else if (event.kind === "data") term.write(event.content);
        else term.write("\r\n\x1b[2m[console closed: the VM stopped]\x1b[0m\r\n");
      }),
    [subscribe],
  );

  useEffect(() => {
    const term = termRef.current;
    if (term === null) return;
    const disposable = term.onData((data) => {
      send(data);
    });
    return () => disposable.dispose();
  }, [send]);

  const ended = connection === "failed" || connection === "closed";
  return (
    <section className="console" aria-label={`Console of ${name}`}>
      <header className="console-bar">
        <span>Console</span>
        <ConnectionBadge state={connection} testId="console-connection" />
        {eof && <span className="note">VM stopped</span>}
        {error && (
          <span className="note error" data-testid="console-error">
            {error.code}: {error.message}
          </span>
        )}
        {ended && options.enabled !== false && options.token && (
          <button type="button" onClick={reconnect}>
            Reconnect
          </button>
        )}
      </header>
      <div className="terminal-host" ref={hostRef} data-testid="terminal" onClick={() => termRef.current?.focus()} />
    </section>
  );
}
