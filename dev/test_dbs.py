"""The Redis databases that test runs and benchmarks may flush, one per run at a time.

Several runs share one machine's Redis (a developer's `make test` next to CI, or a
benchmark): each takes the first free database of `TEST_DBS`, held by an flock on a file
in the temp directory until it closes the handle, and flushes only that one.
"""

from __future__ import annotations

import fcntl
import tempfile
from typing import TextIO

__all__ = ["TEST_DBS", "TEST_REDIS_URL", "claim_test_db"]

TEST_REDIS_URL = "redis://127.0.0.1:6379/{db}"
TEST_DBS = range(8, 16)


def claim_test_db() -> tuple[int, TextIO]:
    """The first free database of `TEST_DBS` and the open lock that holds it (close it to
    give the database back)."""
    for db in TEST_DBS:
        handle = open(f"{tempfile.gettempdir()}/vercel-integration-test-db-{db}.lock", "w")  # noqa: SIM115
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            continue
        return db, handle
    raise RuntimeError(f"all test databases {TEST_DBS} are in use by other runs")
