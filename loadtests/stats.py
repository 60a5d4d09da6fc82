"""Reading Locust's ``*_stats.csv``: one row per request name, the figures we judge by."""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass

__all__ = ["RequestStats", "read_stats"]


@dataclass(frozen=True, slots=True)
class RequestStats:
    name: str
    count: int
    failures: int
    median_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    avg_size: float
    rps: float

    @property
    def bytes_per_second(self) -> float:
        return self.avg_size * self.rps

    @property
    def failure_rate(self) -> float:
        return self.failures / self.count if self.count else 0.0


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:  # "N/A" when there were no requests
        return 0.0


def read_stats(csv_prefix: str | os.PathLike[str]) -> dict[str, RequestStats]:
    """Rows of ``{csv_prefix}_stats.csv`` by request name (``Aggregated`` included)."""
    rows: dict[str, RequestStats] = {}
    with open(f"{os.fspath(csv_prefix)}_stats.csv", newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            name = row["Name"]
            rows[name] = RequestStats(
                name=name,
                count=int(row["Request Count"]),
                failures=int(row["Failure Count"]),
                median_ms=_number(row["Median Response Time"]),
                p95_ms=_number(row["95%"]),
                p99_ms=_number(row["99%"]),
                max_ms=_number(row["Max Response Time"]),
                avg_size=_number(row["Average Content Size"]),
                rps=_number(row["Requests/s"]),
            )
    return rows
