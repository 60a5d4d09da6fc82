"""Console recordings in asciinema's v2 format (``.cast``), safe to play back.

A recording is a header line (JSON: ``version`` 2, ``width``, ``height``, ``timestamp``)
then one ``[seconds, "o", text]`` line per output event, seconds counted from the
header's moment. Only output (``"o"``) events are written. Every event's text went
through the same ``TerminalFilter`` as ``vmws console``, so a recording cannot carry
control strings (OSC, DCS, SOS/PM/APC) to the terminal of whoever plays it; it ends with
the filter's reset of the modes the guest switched on, so playback leaves the terminal
as it found it.

Two producers: ``GET /api/vms/{name}/console.cast`` (the held scrollback with the time
each chunk arrived) and ``vmws console NAME --record FILE`` (a live session).
"""

from __future__ import annotations

import codecs
from collections.abc import Iterable

import orjson

from vmws.termfilter import TerminalFilter

__all__ = ["CastRecorder", "scrollback_cast", "DEFAULT_WIDTH", "DEFAULT_HEIGHT", "MEDIA_TYPE"]

DEFAULT_WIDTH = 80
DEFAULT_HEIGHT = 24
MEDIA_TYPE = "application/x-asciicast"


class CastRecorder:
    """Builds a recording's lines: ``header()`` once, ``output()`` per chunk, ``end()``."""

    def __init__(self, started_at: float, width: int = DEFAULT_WIDTH, height: int = DEFAULT_HEIGHT) -> None:
        self.started_at = started_at
        self.width = width
        self.height = height
        self._filter = TerminalFilter()
        self._last = 0.0

    def header(self) -> str:
        return (
            orjson.dumps(
                {
                    "version": 2,
                    "width": self.width,
                    "height": self.height,
                    "timestamp": int(self.started_at),
                    "env": {"TERM": "xterm-256color"},
                }
            ).decode()
            + "\n"
        )

    def output(self, at: float, text: str) -> str:
        """The event line for guest output ``text`` shown at wall-clock ``at``, once
        filtered ("" when nothing survives the filter)."""
        return self.filtered(at, self._filter.feed(text))

    def end(self, at: float) -> str:
        """A last event switching off what the guest switched on ("" when nothing)."""
        return self.filtered(at, self._filter.reset_sequence())

    def filtered(self, at: float, text: str) -> str:
        """The event line for ``text`` that already went through a ``TerminalFilter`` (the
        one ``vmws console`` shows on screen). Times never go backwards, whatever the clock
        did."""
        if not text:
            return ""
        self._last = max(self._last, round(at - self.started_at, 6))
        return orjson.dumps([self._last, "o", text]).decode() + "\n"


def scrollback_cast(
    chunks: Iterable[tuple[float, bytes]], now: float, width: int = DEFAULT_WIDTH, height: int = DEFAULT_HEIGHT
) -> str:
    """A recording of held console output, given as ``(arrival time, bytes)`` in order.

    Bytes are decoded as UTF-8 incrementally, as the console endpoint does (invalid ones
    become U+FFFD). A recording with no output starts at ``now``.
    """
    chunks = list(chunks)
    recorder = CastRecorder(chunks[0][0] if chunks else now, width, height)
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    lines = [recorder.header()]
    last = recorder.started_at
    for at, data in chunks:
        last = at
        lines.append(recorder.output(at, decoder.decode(data)))
    lines.append(recorder.output(last, decoder.decode(b"", final=True)))
    lines.append(recorder.end(last))
    return "".join(lines)
