// Text → X11 keysyms, for "paste as keystrokes": QEMU's VNC server has no clipboard,
// so pasted text is typed into the guest one key press at a time.
//
// The rule is X11's (keysymdef.h): Latin-1 characters are their own keysym, other
// Unicode characters 0x01000000 + code point; newline and tab are the Return and Tab
// keys. QEMU maps a keysym to a scancode through its keymap and does not add Shift
// for "A" or "!" by itself, so characters typed with Shift on a US keyboard are sent
// between Shift press and release (harmless for servers that read the keysym).

export const XK_RETURN = 0xff0d;
export const XK_TAB = 0xff09;
export const XK_SHIFT_L = 0xffe1;

/** Most characters one paste types (a larger paste is cut, and the page says so). */
export const MAX_PASTE_CHARS = 4096;

export interface KeyStroke {
  readonly keysym: number;
  /** Hold Shift around it (US layout). */
  readonly shift: boolean;
}

const US_SHIFTED = new Set('~!@#$%^&*()_+{}|:"<>?');

/** The keysym of one character, or null for one that cannot be typed (other control characters). */
export function keysymFor(char: string): number | null {
  const code = char.codePointAt(0);
  if (code === undefined) return null;
  if (char === "\n" || char === "\r") return XK_RETURN;
  if (char === "\t") return XK_TAB;
  if (code < 0x20 || (code >= 0x7f && code < 0xa0)) return null;
  if (code <= 0xff) return code;
  return 0x01000000 + code;
}

/**
 * The key strokes that type `text` ("\r\n" is one Return), at most MAX_PASTE_CHARS
 * characters; characters that cannot be typed are skipped.
 */
export function keyStrokes(text: string): KeyStroke[] {
  const strokes: KeyStroke[] = [];
  let count = 0;
  for (const char of text.replace(/\r\n/g, "\n")) {
    if (++count > MAX_PASTE_CHARS) break;
    const keysym = keysymFor(char);
    if (keysym === null) continue;
    strokes.push({ keysym, shift: (char >= "A" && char <= "Z") || US_SHIFTED.has(char) });
  }
  return strokes;
}
