// VMScreen: the VM's screen drawn by noVNC over /ws/vms/{name}/screen, scaled to the
// panel, with Ctrl-Alt-Del, "paste as keystrokes" (QEMU's VNC server has no
// clipboard) and a watch-only toggle (reconnects with ?mode=watch; noVNC's viewOnly).
//
// noVNC is bundled (this chunk loads when the Screen tab is first opened); it draws
// on a canvas and turns key and mouse events into RFB messages. Nothing the VM shows
// reaches the DOM as markup.

import RFB from "@novnc/novnc";
import { useCallback, useRef, useState, type FormEvent } from "react";
import { useVMScreen } from "../hooks/useVMScreen";
import { MAX_PASTE_CHARS } from "../keysyms";
import type { ScreenSocketLike } from "../screenSession";
import { ConnectionBadge } from "./Badges";
import { WatchToggle } from "./WatchToggle";

export interface VMScreenProps {
  name: string;
  token: string | null;
  url?: string;
  /** While the VM runs or is paused. */
  enabled: boolean;
  /** The token grants only `watch`: watch-only, and the toggle is locked on. */
  tokenWatchOnly?: boolean;
}

export default function VMScreen({ name, token, url, enabled, tokenWatchOnly = false }: VMScreenProps) {
  const [asked, setAsked] = useState(false);
  const watchOnly = asked || tokenWatchOnly;
  const hostRef = useRef<HTMLDivElement>(null);
  const [paste, setPaste] = useState("");
  const [typed, setTyped] = useState<string | null>(null);

  const attach = useCallback((socket: ScreenSocketLike, viewOnly: boolean) => {
    const host = hostRef.current;
    if (host === null) throw new Error("the screen panel is not on the page");
    const rfb = new RFB(host, socket as WebSocket, { shared: true });
    rfb.scaleViewport = true; // the whole screen, scaled to the panel
    rfb.viewOnly = viewOnly;
    rfb.background = "#101418";
    return rfb;
  }, []);

  const screen = useVMScreen(name, { token, url, enabled, watchOnly, attach });
  const { session, connection, error, stopped } = screen;
  const canSend = connection === "open" && !watchOnly;
  const sendHint = watchOnly ? "Watch-only: input is not sent" : connection !== "open" ? "Not connected" : undefined;

  const typeIt = (e: FormEvent) => {
    e.preventDefault();
    const count = session?.typeText(paste) ?? 0;
    setTyped(
      count === 0
        ? "Nothing was typed"
        : `Typed ${count} characters${[...paste].length > MAX_PASTE_CHARS ? ` (the first ${MAX_PASTE_CHARS})` : ""}`,
    );
    if (count > 0) setPaste("");
  };

  const ended = connection === "failed" || connection === "closed";
  return (
    <section className="screen" aria-label={`Screen of ${name}`}>
      <header className="console-bar">
        <span>Screen</span>
        <ConnectionBadge state={enabled ? connection : "closed"} testId="screen-connection" />
        <WatchToggle checked={watchOnly} locked={tokenWatchOnly} onChange={setAsked} testId="screen-watch-only" />
        <button
          type="button"
          data-testid="screen-ctrl-alt-del"
          disabled={!canSend}
          title={sendHint}
          onClick={() => session?.sendCtrlAltDel()}
        >
          Ctrl-Alt-Del
        </button>
        {ended && enabled && token && !stopped && (
          <button type="button" data-testid="screen-reconnect" onClick={() => session?.start()}>
            Reconnect
          </button>
        )}
      </header>
      <ScreenState enabled={enabled} connection={connection} stopped={stopped} error={error} />
      <div className="screen-host" ref={hostRef} data-testid="screen" />
      <form className="screen-paste" onSubmit={typeIt}>
        <label htmlFor="screen-paste-text">Paste as keystrokes</label>
        <textarea
          id="screen-paste-text"
          data-testid="screen-paste"
          rows={2}
          value={paste}
          placeholder="Text to type into the VM (Enter for each new line)"
          onChange={(e) => setPaste(e.target.value)}
        />
        <button type="submit" data-testid="screen-paste-send" disabled={!canSend || paste === ""} title={sendHint}>
          Type it
        </button>
        {typed && (
          <span className="note" data-testid="screen-typed">
            {typed}
          </span>
        )}
      </form>
    </section>
  );
}

/** One line saying what the screen is doing, when it is not simply showing the VM. */
function ScreenState({
  enabled,
  connection,
  stopped,
  error,
}: Pick<ReturnType<typeof useVMScreen>, "connection" | "stopped" | "error"> & { enabled: boolean }) {
  let text: string | null = null;
  let kind = "note";
  if (!enabled || stopped) text = "The VM is stopped: its screen shows while it runs.";
  else if (connection === "connecting") text = "Connecting…";
  else if (connection === "reconnecting") text = `Connection lost (${error?.message ?? "no reason given"}); reconnecting…`;
  else if (connection === "failed") {
    text = `Refused: ${error?.message ?? "no reason given"}`;
    kind = "error";
  }
  if (text === null) return null;
  return (
    <p className={`screen-state ${kind}`} data-testid="screen-state" data-state={stopped || !enabled ? "stopped" : connection}>
      {text}
    </p>
  );
}
