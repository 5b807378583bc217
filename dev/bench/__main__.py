"""`make bench`: run every benchmark in dev/bench/ (or the ones named on the command line).

With `BENCH_JSON=<file>`, every figure from every benchmark is also written to that file
as one JSON object, name -> number, for CI to compare across commits. The machine's
one-minute load average before and after each benchmark is recorded with its figures
(`load_1m_<name>_start` / `_end`): on a shared machine it explains absolute figures that
moved while the ratios held.
"""

from __future__ import annotations

import importlib
import json
import os
import pkgutil
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import cast

import dev.bench

__all__ = ["benchmark_names", "main"]


def benchmark_names() -> list[str]:
    """Every benchmark module in this package, in name order."""
    found = pkgutil.iter_modules(dev.bench.__path__)
    return sorted(m.name for m in found if not m.name.startswith("_") and not m.ispkg)


def main(argv: Sequence[str] | None = None) -> int:
    selected = list(sys.argv[1:] if argv is None else argv) or benchmark_names()
    unknown = sorted(set(selected) - set(benchmark_names()))
    if unknown:
        sys.stderr.write(
            f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(benchmark_names())}\n"
        )
        return 2
    figures: dict[str, float] = {}
    for name in selected:
        module = importlib.import_module(f"dev.bench.{name}")
        run = cast(Callable[[], dict[str, float]], module.run)
        load_start = os.getloadavg()[0]
        results = run()
        load_end = os.getloadavg()[0]
        print(f"load average (1 min) during {name}: {load_start:.2f} -> {load_end:.2f}")
        results[f"load_1m_{name}_start"] = round(load_start, 2)
        results[f"load_1m_{name}_end"] = round(load_end, 2)
        clash = figures.keys() & results.keys()
        if clash:
            raise RuntimeError(f"benchmark {name} reuses figure names: {sorted(clash)}")
        figures.update(results)
    target = os.environ.get("BENCH_JSON", "").strip()
    if target:
        Path(target).write_text(json.dumps(figures, indent=2, sort_keys=True) + "\n")
        print(f"\nwrote {len(figures)} figures to {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
