// xterm.js draws on canvas, which jsdom lacks: a stand-in with the calls VMConsole
// makes, for `vi.mock("@xterm/xterm", () => import("./xtermStub"))` (and addon-fit).
// `typed.handler` is what VMConsole registered for keys, so a test can type.

export const typed: { handler: ((data: string) => void) | null } = { handler: null };

export class Terminal {
  loadAddon() {}
  open() {}
  reset() {}
  write() {}
  focus() {}
  dispose() {}
  onData(handler: (data: string) => void) {
    typed.handler = handler;
    return { dispose() {} };
  }
}

export class FitAddon {
  fit() {}
}
