"""A second, independent DEC/ANSI parser: the reference the terminal filter is checked against.

Written as the transition table of vt100.net's "A parser for DEC's ANSI-compatible video
terminals" (every state, every range, in the page's order), so it shares no code and
no shape with ``vmws.termfilter``. Two documented choices for a UTF-8 terminal, the
same ones the filter makes: BEL also ends an OSC string (xterm, VTE, vte), and code
points above U+009F inside a sequence are ignored (vte skips UTF-8 bytes there).

``Reference.feed(text)`` records what a terminal would do: ``print``/``execute``
events, ``esc``/``csi`` dispatches (with the raw sequence), and every control string
it starts (``strings``).
"""

from __future__ import annotations

from collections.abc import Callable

Event = tuple[str, ...]

GROUND, ESCAPE, ESCAPE_INTERMEDIATE = "ground", "escape", "escape_intermediate"
CSI_ENTRY, CSI_PARAM, CSI_INTERMEDIATE, CSI_IGNORE = "csi_entry", "csi_param", "csi_intermediate", "csi_ignore"
DCS_ENTRY, DCS_PARAM, DCS_INTERMEDIATE = "dcs_entry", "dcs_param", "dcs_intermediate"
DCS_PASSTHROUGH, DCS_IGNORE = "dcs_passthrough", "dcs_ignore"
OSC_STRING, SOS_PM_APC_STRING = "osc_string", "sos_pm_apc_string"

STRING_STATES = frozenset(
    {DCS_ENTRY, DCS_PARAM, DCS_INTERMEDIATE, DCS_PASSTHROUGH, DCS_IGNORE, OSC_STRING, SOS_PM_APC_STRING}
)

# (first, last, action, next state or None to stay)
Row = tuple[int, int, str, "str | None"]
C0: list[Row] = [(0x00, 0x17, "execute", None), (0x19, 0x19, "execute", None), (0x1C, 0x1F, "execute", None)]
C0_IGNORED: list[Row] = [(0x00, 0x17, "ignore", None), (0x19, 0x19, "ignore", None), (0x1C, 0x1F, "ignore", None)]

ANYWHERE: list[Row] = [
    (0x18, 0x18, "execute", GROUND),
    (0x1A, 0x1A, "execute", GROUND),
    (0x80, 0x8F, "execute", GROUND),
    (0x91, 0x97, "execute", GROUND),
    (0x99, 0x99, "execute", GROUND),
    (0x9A, 0x9A, "execute", GROUND),
    (0x9C, 0x9C, "none", GROUND),
    (0x1B, 0x1B, "none", ESCAPE),
    (0x98, 0x98, "none", SOS_PM_APC_STRING),
    (0x9E, 0x9F, "none", SOS_PM_APC_STRING),
    (0x90, 0x90, "none", DCS_ENTRY),
    (0x9D, 0x9D, "none", OSC_STRING),
    (0x9B, 0x9B, "none", CSI_ENTRY),
]

TABLE: dict[str, list[Row]] = {
    GROUND: [*C0, (0x20, 0x7F, "print", None)],
    ESCAPE: [
        *C0,
        (0x7F, 0x7F, "ignore", None),
        (0x20, 0x2F, "collect", ESCAPE_INTERMEDIATE),
        (0x30, 0x4F, "esc_dispatch", GROUND),
        (0x51, 0x57, "esc_dispatch", GROUND),
        (0x59, 0x59, "esc_dispatch", GROUND),
        (0x5A, 0x5A, "esc_dispatch", GROUND),
        (0x5C, 0x5C, "esc_dispatch", GROUND),
        (0x60, 0x7E, "esc_dispatch", GROUND),
        (0x5B, 0x5B, "collect", CSI_ENTRY),
        (0x5D, 0x5D, "none", OSC_STRING),
        (0x50, 0x50, "none", DCS_ENTRY),
        (0x58, 0x58, "none", SOS_PM_APC_STRING),
        (0x5E, 0x5F, "none", SOS_PM_APC_STRING),
    ],
    ESCAPE_INTERMEDIATE: [
        *C0,
        (0x20, 0x2F, "collect", None),
        (0x7F, 0x7F, "ignore", None),
        (0x30, 0x7E, "esc_dispatch", GROUND),
    ],
    CSI_ENTRY: [
        *C0,
        (0x7F, 0x7F, "ignore", None),
        (0x20, 0x2F, "collect", CSI_INTERMEDIATE),
        (0x3A, 0x3A, "collect", CSI_IGNORE),
        (0x30, 0x39, "param", CSI_PARAM),
        (0x3B, 0x3B, "param", CSI_PARAM),
        (0x3C, 0x3F, "collect", CSI_PARAM),
        (0x40, 0x7E, "csi_dispatch", GROUND),
    ],
    CSI_PARAM: [
        *C0,
        (0x30, 0x39, "param", None),
        (0x3B, 0x3B, "param", None),
        (0x7F, 0x7F, "ignore", None),
        (0x3A, 0x3A, "collect", CSI_IGNORE),
        (0x3C, 0x3F, "collect", CSI_IGNORE),
        (0x20, 0x2F, "collect", CSI_INTERMEDIATE),
        (0x40, 0x7E, "csi_dispatch", GROUND),
    ],
    CSI_INTERMEDIATE: [
        *C0,
        (0x20, 0x2F, "collect", None),
        (0x7F, 0x7F, "ignore", None),
        (0x30, 0x3F, "collect", CSI_IGNORE),
        (0x40, 0x7E, "csi_dispatch", GROUND),
    ],
    CSI_IGNORE: [*C0, (0x20, 0x3F, "collect", None), (0x7F, 0x7F, "ignore", None), (0x40, 0x7E, "none", GROUND)],
    DCS_ENTRY: [
        *C0_IGNORED,
        (0x7F, 0x7F, "ignore", None),
        (0x20, 0x2F, "ignore", DCS_INTERMEDIATE),
        (0x3A, 0x3A, "ignore", DCS_IGNORE),
        (0x30, 0x39, "ignore", DCS_PARAM),
        (0x3B, 0x3B, "ignore", DCS_PARAM),
        (0x3C, 0x3F, "ignore", DCS_PARAM),
        (0x40, 0x7E, "ignore", DCS_PASSTHROUGH),
    ],
    DCS_PARAM: [
        *C0_IGNORED,
        (0x30, 0x39, "ignore", None),
        (0x3B, 0x3B, "ignore", None),
        (0x7F, 0x7F, "ignore", None),
        (0x3A, 0x3A, "ignore", DCS_IGNORE),
        (0x3C, 0x3F, "ignore", DCS_IGNORE),
        (0x20, 0x2F, "ignore", DCS_INTERMEDIATE),
        (0x40, 0x7E, "ignore", DCS_PASSTHROUGH),
    ],
    DCS_INTERMEDIATE: [
        *C0_IGNORED,
        (0x20, 0x2F, "ignore", None),
        (0x7F, 0x7F, "ignore", None),
        (0x30, 0x3F, "ignore", DCS_IGNORE),
        (0x40, 0x7E, "ignore", DCS_PASSTHROUGH),
    ],
    DCS_PASSTHROUGH: [*C0_IGNORED, (0x20, 0x7E, "ignore", None), (0x7F, 0x7F, "ignore", None)],
    DCS_IGNORE: [*C0_IGNORED, (0x20, 0x7F, "ignore", None)],
    OSC_STRING: [(0x07, 0x07, "none", GROUND), *C0_IGNORED, (0x20, 0x7F, "ignore", None)],
    SOS_PM_APC_STRING: [*C0_IGNORED, (0x20, 0x7F, "ignore", None)],
}


def _lookup(rows: list[Row], code: int) -> Row | None:
    for row in rows:
        if row[0] <= code <= row[1]:
            return row
    return None


class Reference:
    def __init__(self) -> None:
        self.state = GROUND
        self.events: list[Event] = []
        self.strings: list[str] = []  # every control string started: its state's name
        self._raw = ""  # the sequence so far, introducer included, C0 and ignored characters not

    def feed(self, text: str) -> None:
        for ch in text:
            code = ord(ch)
            row = _lookup(ANYWHERE, code)
            if row is None:
                if code > 0x9F:  # non-ASCII: printed in ground, ignored inside a sequence
                    row = (code, code, "print" if self.state == GROUND else "ignore", None)
                else:
                    row = _lookup(TABLE[self.state], code)
                    assert row is not None, (self.state, hex(code))
            self._act(row[2], ch)
            if row[3] is not None:
                self._enter(row[3], ch)

    def _enter(self, state: str, ch: str) -> None:
        if state in (ESCAPE, CSI_ENTRY) and not (state == CSI_ENTRY and ch == "["):
            self._raw = ch  # a new sequence (ESC, or C1 CSI) starts here
        if ch in "\x90\x98\x9d\x9e\x9f" or (self.state == ESCAPE and ch in "]PX^_"):
            self.strings.append(state)  # an introducer: a new control string starts
        self.state = state

    def _act(self, action: str, ch: str) -> None:
        handlers: dict[str, Callable[[], None]] = {
            "print": lambda: self.events.append(("print", ch)),
            "execute": lambda: self.events.append(("execute", ch)),
            "collect": lambda: self._collect(ch),
            "param": lambda: self._collect(ch),
            "esc_dispatch": lambda: self._dispatch("esc", ch),
            "csi_dispatch": lambda: self._dispatch("csi", ch),
            "ignore": lambda: None,
            "none": lambda: None,
        }
        handlers[action]()

    def _collect(self, ch: str) -> None:
        self._raw += ch

    def _dispatch(self, kind: str, final: str) -> None:
        raw = self._raw + final
        body = raw[2:-1] if raw.startswith("\x1b[") else raw[1:-1]
        self.events.append((kind, body, final, raw))


def parse(text: str) -> Reference:
    ref = Reference()
    ref.feed(text)
    return ref
