#!/usr/bin/env python3
"""Fuzz the client-message parser for a while (hypothesis, many more examples than CI).

    .venv/bin/python scripts/fuzz-protocol.py [--examples 200000]

Runs the properties of tests/vmws/test_protocol_properties.py: every text or binary
frame yields a typed message or INVALID_COMMAND, never another exception.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hypothesis import (  # noqa: E402
    HealthCheck,
    given,
    settings,
    strategies as st,  # noqa: E402
)

from tests.vmws.test_protocol_properties import check, plausible  # noqa: E402
from vmws.protocol import Endpoint  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=200_000)
    args = parser.parse_args()
    frames = st.text(max_size=400) | st.binary(max_size=400) | plausible.map(lambda m: __import__("json").dumps(m))
    started = time.monotonic()

    @settings(max_examples=args.examples, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(frames, st.sampled_from(list(Endpoint)))
    def fuzz(raw: str | bytes, endpoint: Endpoint) -> None:
        check(raw, endpoint)

    fuzz()
    print(f"fuzz: {args.examples} examples, no failure, {time.monotonic() - started:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
