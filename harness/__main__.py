"""``python -m harness``: see ``harness.cli``."""

from __future__ import annotations

import sys

from harness.cli import main

sys.exit(main())
