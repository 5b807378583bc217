"""Benchmarks, run by `make bench` (`python -m dev.bench`).

Each module here is one benchmark: it exposes `run() -> dict[str, float]`, prints its
own table, and returns its figures under names unique across all benchmarks (they are
merged into one JSON object when `BENCH_JSON=<file>` is set).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

__all__ = ["ROOT", "print_table"]

ROOT = Path(__file__).resolve().parents[2]


def print_table(
    title: str,
    columns: Sequence[str],
    rows: Sequence[Sequence[object]],
    out: TextIO = sys.stdout,
) -> None:
    """A plain-text table: first column left-aligned, the others right-aligned."""
    cells = [[str(c) for c in columns], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]

    def line(row: Sequence[str]) -> str:
        first = row[0].ljust(widths[0])
        rest = [cell.rjust(width) for cell, width in zip(row[1:], widths[1:], strict=True)]
        return "  ".join([first, *rest]).rstrip()

    out.write(f"\n{title}\n{'=' * len(title)}\n")
    out.write(line(cells[0]) + "\n")
    out.write("  ".join("-" * w for w in widths) + "\n")
    for row in cells[1:]:
        out.write(line(row) + "\n")
    out.flush()
