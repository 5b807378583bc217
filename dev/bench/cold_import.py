"""Cold-import cost of each function next to the cost of its third-party deps alone.

A cold start on Vercel compiles our modules and our dependencies from source: the
builder sets PYTHONDONTWRITEBYTECODE=1 and ships no bytecode (runtime-and-kv.md A8),
while the Lambda image's stdlib comes precompiled. What we control is what our own code
adds on top of the deps we chose, so the figure that matters is the ratio
`import api.<fn>` / `import <the same third-party modules>` (goal: at most 1.25).

Method, per sample: a fresh `python -B` process, `PYTHONDONTWRITEBYTECODE=1`, and
`PYTHONPYCACHEPREFIX` pointing at a directory that holds bytecode for the stdlib
modules involved and nothing else. With a prefix set, Python looks for bytecode only
there, so the `__pycache__` directories of the project and site-packages are never
read: our code and the deps compile from source, the stdlib does not, as on Lambda.
The run checks this (every project/third-party module's bytecode path is absent, every
stdlib one present) and that the prefix directory is unchanged afterwards. The time is
`time.perf_counter()` around the import statement inside the process, which excludes
interpreter start-up exactly instead of subtracting a noisy estimate of it. The deps
sample imports exactly the third-party modules (by full name, in the order they were
first imported) that `import api.<fn>` leaves in `sys.modules`.

Stable from run to run on a loaded machine: each round takes one function sample and one
deps sample back to back (which goes first alternates between rounds, so neither side
always finds the OS file cache warmer), and the ratio is the median over rounds of the
ratio within each pair; a change in load between rounds cancels out. Rounds continue past
`BENCH_RUNS` (at least 10, default 11) until every function's median ratio has a standard
error below `_TARGET_SE` (estimated from the inter-quartile range, so that two runs agree
within 0.05), up to `BENCH_COLD_MAX_RUNS` (default 41). Absolute milliseconds (median) and
the bundle size of each function, from the last run of the build judge
(artifacts/vercel-build.json, written by tests/test_vercel_build.py), are reported too,
so a new dependency's cost is visible; without that artifact the sizes are reported as
unavailable rather than built here (a build takes about a minute and the network).
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from dev.bench import ROOT, print_table
from dev.devserver import Function, discover_functions

__all__ = ["GOAL", "run"]

GOAL = 1.25
_MIN_RUNS = 10
_MAX_RUNS = 41
_TARGET_SE = 0.015  # two runs: difference SE ~0.021, within 0.05 at 95 %
BUILD_ARTIFACT = ROOT / "artifacts" / "vercel-build.json"

# Run in a fresh interpreter: which modules does importing `module` pull in, and from where?
_CLOSURE = """
import json, os, sys, sysconfig
before = set(sys.modules)
__import__(sys.argv[1])
paths = sysconfig.get_paths()
site = {os.path.realpath(paths[k]) + os.sep for k in ("purelib", "platlib")}
stdlib = os.path.realpath(paths["stdlib"]) + os.sep
root = os.path.realpath(os.getcwd()) + os.sep
found = {"third_party": [], "stdlib": [], "project": []}
for name, module in list(sys.modules.items()):
    spec = getattr(module, "__spec__", None)
    origin = getattr(spec, "origin", None)
    if name in before or not origin or not os.path.isabs(origin):
        continue
    origin = os.path.realpath(origin)
    if any(origin.startswith(s) for s in site):
        kind = "third_party"
    elif origin.startswith(stdlib):
        kind = "stdlib"
    elif origin.startswith(root):
        kind = "project"
    else:
        continue
    cached = getattr(spec, "cached", None)
    found[kind].append([name, origin, cached, bool(cached) and os.path.exists(cached)])
print(json.dumps(found))
"""

_TIMED = """
import time, sys
names = sys.argv[1:]
start = time.perf_counter()
for name in names:
    __import__(name)
print((time.perf_counter() - start) * 1000)
"""


@dataclass
class _Closure:
    third_party: list[str]  # module names
    stdlib_sources: list[str]
    cold_violations: list[str]  # modules that would NOT compile from source / stdlib not cached


def _python(args: list[str], env: dict[str, str]) -> str:
    done = subprocess.run(
        [sys.executable, "-B", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"python {' '.join(args[:2])}… failed:\n{done.stderr[-2000:]}")
    return done.stdout.strip().splitlines()[-1]


def _cold_env(prefix: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["PYTHONPYCACHEPREFIX"] = str(prefix)
    return env


def _closure(module: str, env: dict[str, str]) -> _Closure:
    found = json.loads(_python(["-c", _CLOSURE, module], env))
    violations = [
        name
        for kind in ("third_party", "project")
        for name, _origin, _cached, cached_exists in found[kind]
        if cached_exists
    ]
    violations += [
        f"{name} (stdlib, not precompiled)"
        for name, origin, _cached, cached_exists in found["stdlib"]
        if origin.endswith(".py") and not cached_exists
    ]
    return _Closure(
        third_party=[name for name, *_ in found["third_party"]],
        stdlib_sources=[origin for _name, origin, *_ in found["stdlib"] if origin.endswith(".py")],
        cold_violations=violations,
    )


def _precompile_stdlib(sources: list[str], prefix: Path) -> None:
    """Bytecode for these stdlib files, where a PYTHONPYCACHEPREFIX=prefix run looks."""
    script = (
        "import importlib.util, json, py_compile, sys\n"
        "for f in json.load(sys.stdin):\n"
        "    py_compile.compile(f, cfile=importlib.util.cache_from_source(f), doraise=True)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["PYTHONPYCACHEPREFIX"] = str(prefix)
    subprocess.run(
        [sys.executable, "-c", script],
        input=json.dumps(sorted(set(sources))),
        env=env,
        text=True,
        check=True,
        timeout=120,
    )


def _snapshot(prefix: Path) -> set[str]:
    return {str(p.relative_to(prefix)) for p in prefix.rglob("*") if p.is_file()}


def _runs() -> tuple[int, int]:
    """(at least, at most) rounds."""
    raw = os.environ.get("BENCH_RUNS", "").strip()
    least = max(_MIN_RUNS, int(raw)) if raw.isdigit() else 11
    raw_max = os.environ.get("BENCH_COLD_MAX_RUNS", "").strip()
    most = int(raw_max) if raw_max.isdigit() else _MAX_RUNS
    return least, max(least, most)


def median_se(values: list[float]) -> float:
    """Standard error of the median, from the inter-quartile range (robust to outliers)."""
    if len(values) < 4:
        return float("inf")
    q1, _, q3 = statistics.quantiles(values, n=4, method="inclusive")
    sigma = (q3 - q1) / 1.349  # the IQR of a normal distribution is 1.349 sigma
    return 1.2533 * sigma / math.sqrt(len(values))


def bundle_sizes(artifact: Path = BUILD_ARTIFACT) -> dict[str, float] | None:
    """Megabytes per function (by file name in api/) from the build judge, if it ran."""
    try:
        report = json.loads(artifact.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    sizes = report.get("bundle_mb") if isinstance(report, dict) else None
    if not isinstance(sizes, dict):
        return None
    return {str(k): float(v) for k, v in sizes.items() if isinstance(v, (int, float))}


def _pair_ratios(own: list[float], deps: list[float]) -> list[float]:
    return [o / d for o, d in zip(own, deps, strict=True) if d > 0]


def _key(fn: Function) -> str:
    return fn.name.replace(".", "_")


def _top_levels(names: list[str]) -> str:
    """The declared requirements among the packages pulled in, and how many others."""
    tops = {n.split(".")[0] for n in names}
    lines = (ROOT / "requirements.txt").read_text().splitlines()
    declared = {re.split(r"[<>=!~;\[ ]", line.strip())[0] for line in lines}
    direct = sorted(t for t in tops if t.replace("_", "-") in declared or t in declared)
    others = len(tops) - len(direct)
    return ", ".join(direct) + (f" +{others} more" if others else "") if tops else "-"


def run() -> dict[str, float]:
    functions = discover_functions(ROOT)
    if not functions:
        print("\ncold import: no functions in api/ yet")
        return {}
    runs = _runs()
    prefix = Path(tempfile.mkdtemp(prefix="cold-import-pycache-"))
    try:
        env = _cold_env(prefix)
        warm_env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
        closures = {fn.module: _closure(fn.module, warm_env) for fn in functions}
        _precompile_stdlib([s for c in closures.values() for s in c.stdlib_sources], prefix)
        before = _snapshot(prefix)
        for fn in functions:  # prove the set-up is cold where it should be, and only there
            violations = _closure(fn.module, env).cold_violations
            if violations:
                raise RuntimeError(f"not a cold import for {fn.module}: {violations[:5]}")
        samples: dict[str, tuple[list[float], list[float]]] = {
            fn.module: ([], []) for fn in functions
        }
        least, most = runs
        rounds = 0
        while rounds < most:
            for fn in functions:
                own, deps = samples[fn.module]
                third_party = closures[fn.module].third_party
                if rounds % 2:
                    deps.append(float(_python(["-c", _TIMED, *third_party], env)))
                    own.append(float(_python(["-c", _TIMED, fn.module], env)))
                else:
                    own.append(float(_python(["-c", _TIMED, fn.module], env)))
                    deps.append(float(_python(["-c", _TIMED, *third_party], env)))
            rounds += 1
            if rounds >= least and all(
                median_se(_pair_ratios(*samples[fn.module])) <= _TARGET_SE for fn in functions
            ):
                break
        if _snapshot(prefix) != before:
            raise RuntimeError("bytecode was written during the runs; the figures are not cold")
    finally:
        shutil.rmtree(prefix, ignore_errors=True)

    sizes = bundle_sizes()
    figures: dict[str, float] = {"cold_import_rounds": float(rounds)}
    rows: list[list[object]] = []
    for fn in functions:
        own, deps = samples[fn.module]
        own_ms, deps_ms = statistics.median(own), statistics.median(deps)
        ratios = _pair_ratios(own, deps)
        ratio = statistics.median(ratios) if ratios else float("nan")
        key = _key(fn)
        figures[f"cold_import_{key}_ms"] = round(own_ms, 2)
        figures[f"cold_import_deps_{key}_ms"] = round(deps_ms, 2)
        figures[f"cold_import_ratio_{key}"] = round(ratio, 3)
        figures[f"cold_import_ratio_se_{key}"] = round(median_se(ratios), 4)
        size = sizes.get(fn.name.replace(".", "/")) if sizes is not None else None
        if size is not None:
            figures[f"bundle_mb_{key}"] = size
        rows.append(
            [
                fn.module,
                f"{own_ms:.1f}",
                f"{deps_ms:.1f}",
                f"{own_ms - deps_ms:+.1f}",
                f"{ratio:.2f}x ±{median_se(ratios):.3f}",
                "n/a" if size is None else f"{size:.1f}",
                _top_levels(closures[fn.module].third_party),
            ]
        )
    worst = max(figures[f"cold_import_ratio_{_key(fn)}"] for fn in functions)
    figures["cold_import_ratio_max"] = worst
    print_table(
        f"Cold import, no bytecode for project or deps (median of {rounds} paired rounds, ms)",
        ["function", "import", "deps alone", "own code", "ratio ±se", "bundle MB", "deps"],
        rows,
    )
    verdict = "met" if worst <= GOAL else "NOT met"
    print(f"worst ratio {worst:.2f}x; goal <= {GOAL}x: {verdict}")
    if sizes is None:
        print(
            "bundle sizes unavailable: no artifacts/vercel-build.json "
            "(the build judge, tests/test_vercel_build.py, writes it; or "
            "`make vercel-build > artifacts/vercel-build.json`)"
        )
    else:
        built = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(BUILD_ARTIFACT.stat().st_mtime))
        print(f"bundle sizes from artifacts/vercel-build.json, built {built}")
    return figures
