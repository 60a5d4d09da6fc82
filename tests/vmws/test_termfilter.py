"""The terminal filter against a reference terminal parser: no control string gets through,
and nothing a terminal would act on is lost (``tests/vmws/vt_reference.py``, plus pyte)."""

from __future__ import annotations

import pyte
import pytest
from hypothesis import given, settings, strategies as st

from tests.vmws.vt_reference import Event, Reference, parse
from vmws.termfilter import MAX_SEQUENCE, TerminalFilter, bench

OSC52 = "]52;c;aGk=\x07"  # base64 "hi": what an OSC 52 clipboard write carries
ATTACKS = {
    # (a) ESC, then a string the filter removes, then "]...": must not join into an OSC 52.
    "esc-then-osc": "\x1b\x1b]0;x\x07" + OSC52,
    "esc-then-osc-title": "\x1b\x1b]0;x\x07]2;TITLE\x07",
    "esc-then-osc-st": "\x1b\x1b]0;x\x1b\\" + OSC52,
    "esc-then-c1-osc": "\x1b\x9d0;x\x07" + OSC52,
    "esc-then-osc-c1-st": "\x1b\x1b]0;x\x9c" + OSC52,
    "esc-then-c1-dcs": "\x1b\x90q\x9c" + OSC52,
    "esc-then-dcs": "\x1b\x1bPq#0;2;0;0;0\x1b\\" + OSC52,
    "esc-then-apc": "\x1b\x1b_G\x1b\\" + OSC52,
    "esc-then-pm-sos": "\x1b\x1b^x\x1b\\\x1b\x1bXy\x1b\\" + OSC52,
    "c1-csi-then-osc": "\x9b\x1b]0;x\x07" + OSC52,
    # (b) C0 inside the escape: terminals execute it and carry on with the sequence.
    "esc-nul-osc": "\x1b\x00]2;TITLE\x07",
    "esc-bel-cr-osc": "\x1b\x07\r]2;TITLE\x07",
    "esc-nul-dcs": "\x1b\x00P$qm\x1b\\",
    "csi-then-esc-osc": "\x1b[1;\x1b]2;TITLE\x07",
    "esc-intermediate-then-esc-osc": "\x1b(\x1b]2;TITLE\x07",
}


def run(chunks: list[str]) -> str:
    """What one filter writes for these reads, concatenated."""
    f = TerminalFilter()
    return "".join(f.feed(c) for c in chunks)


def shown(events: list[Event]) -> list[Event]:
    """What a terminal does with a stream, less what only control strings and ST do."""
    return [
        e
        for e in events
        if not (e[0] == "esc" and e[3] == "\x1b\\") and not (e[0] in ("esc", "csi") and len(e[3]) > MAX_SEQUENCE)
    ]


class TitleWatcher(pyte.Screen):  # type: ignore[misc]
    def __init__(self) -> None:
        super().__init__(80, 24)
        self.titles: list[str] = []

    def set_title(self, param: str) -> None:
        self.titles.append(param)

    def set_icon_name(self, param: str) -> None:
        self.titles.append(param)


def pyte_titles(text: str) -> list[str]:
    screen = TitleWatcher()
    pyte.Stream(screen).feed(text)
    return screen.titles


@pytest.mark.parametrize("name", ATTACKS)
def test_attack_yields_no_control_string_at_any_split(name: str) -> None:
    attack = ATTACKS[name]
    assert parse(attack).strings, "the attack itself starts a string in a terminal"
    whole = run([attack])
    for cut in range(len(attack) + 1):
        for cut2 in range(cut, len(attack) + 1):
            out = run([attack[:cut], attack[cut:cut2], attack[cut2:]])
            assert out == whole, (cut, cut2)
    ref = parse(whole)
    assert ref.strings == [] and ref.state == "ground"
    assert shown(ref.events) == shown(parse(attack).events)
    assert "\x1b]" not in whole and "\x9d" not in whole


def test_literal_outputs() -> None:
    assert run([ATTACKS["esc-then-osc"]]) == OSC52  # shown as text, as a terminal shows it
    assert run([ATTACKS["esc-nul-osc"]]) == "\x00"  # the NUL is executed; no title
    assert run(["\x1b", "\x1b]0;x\x07", OSC52]) == OSC52  # ESC at the end of a read
    assert run(["\x1b\x1b", "]0;x\x07]52", ";c;aGk=\x07"]) == OSC52


def test_pyte_sees_the_title_in_the_attack_and_none_after_the_filter() -> None:
    # pyte reports OSC 0/1/2 (titles) only, and reads ESC ESC as two escapes, so it is a
    # second opinion on titles, not the reference; it does see them:
    assert pyte_titles("\x1b]2;TITLE\x07") == ["TITLE"]
    assert pyte_titles("\x9d2;TITLE\x9c") == ["TITLE"]
    for attack in ATTACKS.values():
        assert pyte_titles(run([attack])) == []


@pytest.mark.parametrize(
    ("chunks", "expected"),
    [
        # (c) CAN and SUB abort a string (and any sequence): what follows is shown.
        (["\x1b]0;x\x18visible"], "\x18visible"),
        (["\x1b]0;x", "\x1a]visible"], "\x1a]visible"),
        (["\x1bPq\x18shown"], "\x18shown"),
        (["\x9d0;x\x18shown"], "\x18shown"),
        (["\x1b[1;3\x18m"], "\x18m"),
        # (c) ESC inside a string ends it; the sequence it starts is a terminal's to run.
        (["\x1b]0;x\x1b[1mbold"], "\x1b[1mbold"),
        (["\x1b_apc\x1b", "[2Jcleared"], "\x1b[2Jcleared"),
        (["\x1bPq\x1bcx"], "\x1bcx"),
        # Ordinary output passes unchanged, also split anywhere.
        (["plain \x1b[31mred\x1b[0m"], "plain \x1b[31mred\x1b[0m"),
        (["x\x1b", "[1", "mbold"], "x\x1b[1mbold"),
        (["\x9b1;31mred"], "\x9b1;31mred"),
        (["\x1b(0qqq\x1b(B"], "\x1b(0qqq\x1b(B"),
        (["a\x1b]0;pwned title\x07b"], "ab"),
        (["a\x1b]52;c;ZXZpbA==\x1b\\b"], "ab"),
        (["a\x9d0;title\x9cb"], "ab"),
        (["a\x1b]0;x\x1b", "\\b"], "ab"),
        # C0 inside a sequence is executed where it stands; the sequence goes on.
        (["a\x1b[1;\n2mb"], "a\n\x1b[1;2mb"),
        (["\x1b\x00M"], "\x00\x1bM"),
        # An aborted sequence is dropped, as the terminal drops it.
        (["\x1b[12\x1b[1mz"], "\x1b[1mz"),
        (["\x1b[12\x85z"], "\x85z"),
    ],
)
def test_filter_behaves_as_a_terminal_reads(chunks: list[str], expected: str) -> None:
    out = run(chunks)
    assert out == expected
    whole = "".join(chunks)
    assert shown(parse(out).events) == shown(parse(whole).events)


def test_overlong_sequences_are_dropped_and_the_filter_recovers() -> None:
    long_csi = "\x1b[" + "1;" * MAX_SEQUENCE + "m"
    out = run(["a", long_csi[:100], long_csi[100:], "b\x1b[1mc"])
    assert out == "ab\x1b[1mc"
    fits = "\x1b[" + "1" * (MAX_SEQUENCE - 3) + "m"
    assert run([fits]) == fits and run([fits[:5], fits[5:]]) == fits


# Characters that matter to the parser, heavily weighted, plus any code point now and then.
INTERESTING = list("\x1b\x1b\x1b]]PX^_[[\\\x07\x18\x1a\x00\x05\r\n;;0123m?:( #\x7fé\U0001f600")
INTERESTING += [chr(c) for c in range(0x80, 0xA0)]
streams = st.text(alphabet=st.one_of(st.sampled_from(INTERESTING), st.characters()), max_size=120)


@settings(max_examples=600, deadline=None)
@given(text=streams, cuts=st.lists(st.integers(min_value=0, max_value=120), max_size=6))
def test_random_streams_split_anywhere_never_start_a_string(text: str, cuts: list[int]) -> None:
    points = sorted({min(c, len(text)) for c in cuts})
    chunks = [text[a:b] for a, b in zip([0, *points], [*points, len(text)], strict=True)]
    f = TerminalFilter()
    terminal = Reference()
    for chunk in chunks:
        terminal.feed(f.feed(chunk))
        assert terminal.state == "ground"  # what was written never leaves a sequence open
    assert terminal.strings == []
    out = run(chunks)
    assert out == run([text])  # where reads are split changes nothing
    # Nothing a terminal would print, execute or dispatch is lost or added.
    assert shown(parse(out).events) == shown(parse(text).events)
    assert pyte_titles(out) == []


MODE_DEFAULTS = {
    "?1": "l",
    "?7": "h",
    "?25": "h",
    "?47": "l",
    "?1047": "l",
    "?1049": "l",
    "?1000": "l",
    "?1002": "l",
    "?1003": "l",
    "?1006": "l",
    "?2004": "l",
    "4": "l",
}
mode_streams = st.lists(
    st.sampled_from(
        [f"\x1b[{m}{v}" for m in MODE_DEFAULTS for v in "hl"]
        + [
            "\x1b[1;31m",
            "\x1b[0m",
            "\x1b[m",
            "\x1b=",
            "\x1b>",
            "\x1b(0",
            "\x1b(B",
            "\x0e",
            "\x0f",
            "text",
            "\x1b]0;\x1b[?25l",
            "\x1bP\x18",
            "\x1b",
            "\x9b?2004h",
            "\x1b[?1000;1006h",
            "\x1bc",
        ]
    ),
    max_size=30,
)


@settings(max_examples=300, deadline=None)
@given(parts=mode_streams)
def test_after_the_reset_every_tracked_mode_is_back_to_default(parts: list[str]) -> None:
    f = TerminalFilter()
    out = "".join(f.feed(p) for p in parts)
    reset = f.reset_sequence()
    ref = parse(out + reset)
    assert ref.strings == [] and {e[0] for e in parse(reset).events} <= {"csi", "esc", "execute"}
    modes: dict[str, str] = {}
    sgr, keypad, g0, shifted = "", False, "B", False
    for event in ref.events:
        if event[0] == "csi" and event[2] in "hl":
            private = event[1].startswith("?")
            for number in event[1].lstrip("?").split(";"):
                mode = ("?" if private else "") + number
                # 47, 1047 and 1049 are one screen: any of them, reset, leaves it.
                for alt in ["?47", "?1047", "?1049"] if mode in ("?47", "?1047", "?1049") else [mode]:
                    modes[alt] = event[2]
        elif event[0] == "csi" and event[2] == "m":
            sgr = event[1]
        elif event[0] == "esc" and event[3] in ("\x1b=", "\x1b>"):
            keypad = event[3] == "\x1b="
        elif event[0] == "esc" and event[3].startswith("\x1b("):
            g0 = event[2]
        elif event[0] == "esc" and event[3] == "\x1bc":
            modes, sgr, keypad, g0, shifted = {}, "", False, "B", False
        elif event[0] == "execute" and event[1] in "\x0e\x0f":
            shifted = event[1] == "\x0e"
    assert all(modes.get(m, d) == d for m, d in MODE_DEFAULTS.items()), (modes, reset)
    assert sgr in ("", "0") and not keypad and g0 == "B" and not shifted


def test_reset_undoes_what_the_guest_switched_on_with_csi_and_esc_only() -> None:
    f = TerminalFilter()
    f.feed("\x1b[?1049h\x1b[?25l\x1b[?1000;1006h\x1b[?2004h\x1b[?1h\x1b=\x1b[1;31m\x1b(0\x0e\x1b[4h\x1b[5;20r\x1b[?7l")
    reset = f.reset_sequence()
    for part in (
        "\x1b[?1049l",
        "\x1b[?25h",
        "\x1b[?1000l",
        "\x1b[?1006l",
        "\x1b[?2004l",
        "\x1b[?1l",
        "\x1b>",
        "\x1b[0m",
        "\x1b(B",
        "\x0f",
        "\x1b[4l",
        "\x1b[r",
        "\x1b[?7h",
    ):
        assert part in reset, part
    assert reset.startswith("\x1b[?1049l")  # the rest applies to the normal screen
    ref = parse(reset)
    assert ref.strings == [] and ref.state == "ground"
    assert {e[0] for e in ref.events} <= {"csi", "esc", "execute"}


def test_no_reset_when_the_guest_changed_nothing_or_changed_it_back() -> None:
    f = TerminalFilter()
    f.feed("login: \x1b[1mbold\x1b[0m \x1b[?25l\x1b[?25h\x1b[?1049h\x1b[?1049l\x1b]0;t\x07\r\n")
    assert f.reset_sequence() == ""
    f.feed("\x1b[?2004h\x1bc")  # RIS: the terminal resets itself
    assert f.reset_sequence() == ""


def test_modes_in_dropped_strings_are_not_reset_and_split_ones_are() -> None:
    f = TerminalFilter()
    f.feed("\x1b]0;\x1b[?1049h")  # the ESC ends the OSC: the terminal does switch screens
    f.feed("\x1bP\x1b[?2004")
    f.feed("h")
    assert f.reset_sequence() == "\x1b[?1049l\x1b[?2004l"


def test_bench_reports_a_rate() -> None:
    rates = bench(0.05)
    assert set(rates) == {"plain", "coloured", "hostile"} and all(r > 0 for r in rates.values())
