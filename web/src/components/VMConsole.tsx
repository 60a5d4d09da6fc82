// VMConsole: an xterm.js terminal wired to useVMConsole with the protocol's JSON
// framing (xterm's attach addon speaks raw frames, so it does not fit here).
//
// Guest output goes to term.write as terminal data: escape sequences move the
// cursor and colour text, but nothing the guest prints is ever parsed as HTML.
//
// The bar shows who else is on the console (the server's `viewers` list), a
// watch-only toggle (reconnects with ?mode=watch) and a button that downloads the
// held console output as an asciinema recording.

import { FitAddon } from "@xterm/addon-fit";
import { Terminal } from "@xterm/xterm";
import "@xterm/xterm/css/xterm.css";
import { useEffect, useRef, useState } from "react";
import { fetchRecording } from "../api";
import { defaultSocketBase, httpBase, recordingUrl } from "../endpoints";
import { useVMConsole, type UseVMConsoleOptions } from "../hooks/useVMConsole";
import type { Viewer } from "../protocol";
import { ConnectionBadge } from "./Badges";
import { WatchToggle } from "./WatchToggle";

export interface VMConsoleProps extends UseVMConsoleOptions {
  name: string;
  fontSize?: number;
  /** Terminal scrollback, lines. */
  scrollback?: number;
}

export function VMConsole({ name, fontSize = 14, scrollback = 5000, ...options }: VMConsoleProps) {
  const [watch, setWatch] = useState(options.watchOnly ?? false);
  const consoleHandle = useVMConsole(name, { ...options, watchOnly: watch });
  const { subscribe, send, connection, eof, error, reconnect, viewers, watchOnly, info } = consoleHandle;
  // A token holding `watch` but not `console` cannot type, whatever the toggle says.
  const tokenWatchOnly = info !== null && !info.permissions.includes("console");
  const [downloadError, setDownloadError] = useState<string | null>(null);

  const download = async () => {
    setDownloadError(null);
    try {
      const url = recordingUrl(httpBase(options.url ?? defaultSocketBase()), name);
      saveFile(await fetchRecording(url, options.token ?? ""), `${name}.cast`);
    } catch (err) {
      setDownloadError(err instanceof Error ? err.message : String(err));
    }
  };
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
        <WatchToggle checked={watchOnly} locked={tokenWatchOnly} onChange={setWatch} testId="console-watch-only" />
        <button
          type="button"
          data-testid="console-download"
          disabled={!options.token || tokenWatchOnly}
          title={tokenWatchOnly ? "Recordings need the console permission" : undefined}
          onClick={() => void download()}
        >
          Download recording
        </button>
        {eof && <span className="note">VM stopped</span>}
        {error && (
          <span className="note error" data-testid="console-error">
            {error.code}: {error.message}
          </span>
        )}
        {downloadError && (
          <span className="note error" data-testid="console-download-error">
            {downloadError}
          </span>
        )}
        {ended && options.enabled !== false && options.token && (
          <button type="button" onClick={reconnect}>
            Reconnect
          </button>
        )}
      </header>
      <Viewers viewers={viewers} />
      <div className="terminal-host" ref={hostRef} data-testid="terminal" onClick={() => termRef.current?.focus()} />
    </section>
  );
}

/** Who is on the console, in join order; user names are shown as text, never markup. */
export function Viewers({ viewers }: { viewers: readonly Viewer[] }) {
  if (viewers.length === 0) return null;
  return (
    <p className="console-viewers" data-testid="console-viewers">
      On this console:{" "}
      {viewers.map((v, i) => (
        <span key={`${i}-${v.user}-${v.joinedAt}`} className={`viewer ${v.mode}`} title={`since ${v.joinedAt}`}>
          {i > 0 && ", "}
          {v.user} ({v.mode === "watch" ? "watching" : "typing"})
        </span>
      ))}
    </p>
  );
}

/** Offers `blob` as a file download (an object URL, released once clicked). */
function saveFile(blob: Blob, filename: string): void {
  const href = URL.createObjectURL(blob);
  const link = document.createElement("a");
  link.href = href;
  link.download = filename;
  document.body.appendChild(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(href), 0);
}
