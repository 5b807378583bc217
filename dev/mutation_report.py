"""`make mutation`'s summary: the kill rate, per module and in all, from mutmut's own
`results --all true` listing (https://github.com/boxed/mutmut), and the functions where
mutants survived, most first. Run from the directory that holds `mutants/`."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter, defaultdict

CAUGHT = {"killed", "timeout", "caught by type check"}


def main() -> int:
    listing = subprocess.run(
        [sys.executable, "-m", "mutmut", "results", "--all", "true"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    by_module: dict[str, Counter[str]] = defaultdict(Counter)
    survivors: Counter[str] = Counter()
    for line in listing.splitlines():
        name, _, status = line.strip().rpartition(": ")
        if "__mutmut_" not in name:
            continue
        function = name.split("__mutmut_")[0]
        module = function.rsplit(".", 1)[0]
        by_module[module][status] += 1
        if status == "survived":
            survivors[function] += 1
    if not by_module:
        print("mutation: no results (run `mutmut run` first)")
        return 1
    total = Counter[str]()
    for module, counts in sorted(by_module.items()):
        total.update(counts)
        print(f"  {module}: {_rate(counts)}")
    print(f"mutation: {_rate(total)}")
    print("survivors by function:")
    for function, n in survivors.most_common():
        print(f"  {n:4}  {function}")
    return 0


def _rate(counts: Counter[str]) -> str:
    every = sum(counts.values())
    caught = sum(n for status, n in counts.items() if status in CAUGHT)
    rest = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()) if s not in CAUGHT)
    return f"{caught} of {every} caught ({100 * caught / every:.1f} %){', ' + rest if rest else ''}"


if __name__ == "__main__":
    raise SystemExit(main())
