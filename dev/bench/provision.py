"""Provisioning 200 projects x 6 vars against the emulator with 40 ms per call.

What is compared, all over real HTTP to the emulator (and, for us, the KV gateway):

* ours: `Provisioner.reconcile` of a fresh all-projects installation — per project one
  batched create and no env list (nothing of ours is recorded there yet; only a create
  that reports a conflict lists the project), `DEFAULT_CONCURRENCY` projects at a time,
  after the project listing (100 per page).
* naive: what the public anchors do (anchors.md §2, Sentry): one create call per var per
  target, `?upsert=true`, one after the other. It runs on a sample of projects of its own
  installation and is extrapolated linearly to all of them (its cost per project is
  constant: no state, no listing), which the output says.
* lower bound for our shape of work: every project needs `k` sequential calls (k = 1: the
  create), C projects run at once, and the project pages come first, one after the other:

      LB = ceil(pages) · RTT + ceil(N / C) · k · RTT

  with RTT the median time of one call measured against the same emulator and latency.

Then a second reconcile with nothing to do measures the no-op resync (one env list per
project, nothing written to Vercel or to the KV).

Standalone: starts its own emulator and KV gateway on free local ports. The gateway runs
over `BENCH_REDIS_URL` when set, else over the first free database of the test fixtures'
range (8-15 on 127.0.0.1:6379, held by the same lock files as tests/conftest.py, so a
concurrent test run never shares it), else over the embedded engine when no Redis answers;
the bench flushes only that database. Knobs for a quick run:
`BENCH_PROVISION_PROJECTS`, `BENCH_PROVISION_LATENCY_MS`, `BENCH_PROVISION_NAIVE_SAMPLE`.

Where the emulator and the KV gateway run: each in its own process (`python -m
dev.emulator`, driven through its control API; `python -m dev.kv_gateway`), because
neither the real Vercel nor the real Upstash shares our CPU. In the bench's own process
their request handling would compete with our client for one GIL (on a 2-core machine),
and the figure would charge their CPU to the product. The run also measures the first
provision with both in-process, reported next to it (`_shared_gil`), so the difference
stays visible; the goals apply to the separate-process figures.
"""

from __future__ import annotations

import math
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar
from urllib.parse import parse_qs, urlsplit

import httpx

from dev import serve
from dev.bench import ROOT, print_table
from dev.emulator import EmulatorConfig, create_app
from dev.emulator.app import Emulator
from dev.kv_gateway import create_app as create_gateway
from dev.kv_gateway import open_backend
from dev.test_dbs import TEST_REDIS_URL, claim_test_db
from lib.crypto import EncryptionKey, Keyring
from lib.deadline import Deadline
from lib.kv.client import KV
from lib.kv.records import Installation
from lib.kv.store import Store
from lib.provisioning.reconcile import DEFAULT_CONCURRENCY, Provisioner
from lib.provisioning.spec import Spec, TemplateContext, parse_spec
from lib.vercel.client import VercelClient
from lib.vercel.models import EnvSpec
from lib.vercel.oauth import exchange_code

__all__ = ["GOALS", "SPEC", "run"]

PROJECTS = int(os.environ.get("BENCH_PROVISION_PROJECTS", "200"))
LATENCY_MS = float(os.environ.get("BENCH_PROVISION_LATENCY_MS", "40"))
NAIVE_SAMPLE = int(os.environ.get("BENCH_PROVISION_NAIVE_SAMPLE", "10"))
_PAGE = 100  # projects per listing page (lib/vercel/client.py asks for the maximum)
_T = TypeVar("_T")
_TOKEN = "bench-kv-token"  # noqa: S105 - a local throwaway gateway
_SECRET = "bench-client-secret"  # noqa: S105 - the local emulator's client secret

# Six entries, the kind an integration ships: secrets (sensitive, split for development),
# URLs and ids (plain), one preview-only value.
SPEC = {
    "secrets": {"api_key": {"prefix": "sk_"}, "webhook": {"bytes": 24}},
    "env": [
        {"key": "ACME_API_KEY", "value": "{secret.api_key}", "type": "sensitive"},
        {"key": "ACME_URL", "value": "https://acme.example/{owner_id}/{project_name}"},
        {"key": "ACME_PROJECT", "value": "{project_id}", "type": "plain",
         "targets": ["production", "preview"]},
        {"key": "ACME_WEBHOOK_SECRET", "value": "{secret.webhook}", "type": "sensitive",
         "targets": ["production", "preview"]},
        {"key": "ACME_INSTALLATION", "value": "{installation_id}", "type": "encrypted"},
        {"key": "ACME_PREVIEW_MODE", "value": "on", "type": "plain", "targets": ["preview"]},
    ],
}  # fmt: skip

# name -> (goal, "min" | "max")
GOALS: dict[str, tuple[float, str]] = {
    "provision_speedup_vs_naive": (25.0, "min"),
    "provision_vs_lower_bound": (2.0, "max"),
    "provision_calls_per_project_first": (1.05, "max"),
    "provision_calls_per_project_noop": (1.0, "max"),
}


class _Emu(Protocol):
    """What the bench asks of the emulator: the in-process object, or its control API."""

    def create_team(self, slug: str) -> object: ...
    def create_project(self, owner: str, name: str) -> object: ...
    def mint_code(self, scope: str) -> dict[str, Any]: ...  # an all-projects install
    def set_latency(self, ms: float) -> None: ...
    def state(self) -> dict[str, Any]: ...
    def call_counts(self) -> dict[str, Any]: ...
    def reset_calls(self) -> None: ...


class _InProcess:
    def __init__(self, emulator: Emulator) -> None:
        self._emu = emulator

    def create_team(self, slug: str) -> object:
        return self._emu.create_team(slug)

    def create_project(self, owner: str, name: str) -> object:
        return self._emu.create_project(owner, name)

    def mint_code(self, scope: str) -> dict[str, Any]:
        return self._emu.mint_code(scope=scope, project_selection="all")

    def set_latency(self, ms: float) -> None:
        self._emu.set_latency(ms)

    def state(self) -> dict[str, Any]:
        return self._emu.state()

    def call_counts(self) -> dict[str, Any]:
        return self._emu.call_counts()

    def reset_calls(self) -> None:
        self._emu.reset_calls()


class _Remote:
    """The standalone emulator through `/_emulator/*` (dev/emulator/control.py)."""

    def __init__(self, url: str) -> None:
        self._http = httpx.Client(base_url=f"{url}/_emulator", timeout=30.0)

    def _call(self, method: str, path: str, body: object = None) -> Any:
        response = self._http.request(method, path, json=body)
        response.raise_for_status()
        return response.json()

    def create_team(self, slug: str) -> object:
        return self._call("POST", "/teams", {"slug": slug})

    def create_project(self, owner: str, name: str) -> object:
        return self._call("POST", "/projects", {"owner": owner, "name": name})

    def mint_code(self, scope: str) -> dict[str, Any]:
        body = {"scope": scope, "projectSelection": "all"}
        return dict(self._call("POST", "/oauth/code", body))

    def set_latency(self, ms: float) -> None:
        self._call("PUT", "/latency", {"ms": ms})

    def state(self) -> dict[str, Any]:
        return dict(self._call("GET", "/state"))

    def call_counts(self) -> dict[str, Any]:
        return dict(self._call("GET", "/calls"))

    def reset_calls(self) -> None:
        self._call("DELETE", "/calls")

    def close(self) -> None:
        self._http.close()


@dataclass
class _World:
    emulator: _Emu
    emulator_url: str
    client_id: str
    redirect_uri: str
    store: Store
    spec: Spec
    kv_backend: str  # what the gateway runs over (its own description)


_REDIRECT = "http://127.0.0.1/callback"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def _process(module: str, env: dict[str, str], ready: Callable[[], _T]) -> Iterator[_T]:
    """`python -m <module>` with `env` added, until the `with` ends; yields what `ready`
    returns once it stops raising a transport error (the server answers)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", module],
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                answer = ready()
                break
            except httpx.TransportError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"python -m {module} did not start") from None
                time.sleep(0.05)
        yield answer
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@contextmanager
def _emulator_process() -> Iterator[tuple[_Emu, str, str]]:
    """`python -m dev.emulator` on a free port, no webhooks, the bench's client secret."""
    port = _free_port()
    env = {
        "EMULATOR_PORT": str(port),
        "DEV_PORT": str(_free_port()),  # nothing listens there: no stray deliveries
        "VERCEL_CLIENT_SECRET": _SECRET,
        "VERCEL_REDIRECT_URI": _REDIRECT,
    }
    url = f"http://127.0.0.1:{port}"
    remote = _Remote(url)
    try:
        config_once_up = lambda: remote._call("PATCH", "/config", {"webhook_url": None})  # noqa: E731
        with _process("dev.emulator", env, config_once_up) as config:
            yield remote, url, str(config["client_id"])
    finally:
        remote.close()


@contextmanager
def _emulator_thread() -> Iterator[tuple[_Emu, str, str]]:
    emulator = create_app(EmulatorConfig(client_secret=_SECRET, webhook_url=None))
    with serve.running(emulator) as api_server:
        emulator.configure(public_url=api_server.url, redirect_uri=_REDIRECT)
        try:
            yield _InProcess(emulator), api_server.url, emulator.config.client_id
        finally:
            emulator.close()


@contextmanager
def _kv_database() -> Iterator[str]:
    """A Redis URL the bench may flush: `BENCH_REDIS_URL`, else a locked test database
    (when no Redis answers there, the gateway falls back to the embedded engine)."""
    explicit = os.environ.get("BENCH_REDIS_URL", "").strip()
    if explicit:
        yield explicit
        return
    db, lock = claim_test_db()  # the test fixtures' databases and locks (dev/test_dbs.py)
    try:
        yield TEST_REDIS_URL.format(db=db)
    finally:
        lock.close()


@contextmanager
def _kv_process(redis_url: str) -> Iterator[tuple[str, str]]:
    """`python -m dev.kv_gateway` over `redis_url` on a free port: (its URL, its backend)."""
    port = _free_port()
    env = {
        "KV_PORT": str(port),
        "REDIS_URL": redis_url,
        "KV_REST_API_TOKEN": _TOKEN,  # the first token name the gateway reads
    }
    url = f"http://127.0.0.1:{port}"
    with _process("dev.kv_gateway", env, lambda: httpx.get(url, timeout=5.0)) as welcome:
        yield url, welcome.raise_for_status().text.partition("(")[2].rpartition(")")[0]


@contextmanager
def _kv_thread(redis_url: str) -> Iterator[tuple[str, str]]:
    backend = open_backend(redis_url)
    try:
        with serve.running(create_gateway(_TOKEN, backend)) as server:
            yield server.url, backend.description
    finally:
        backend.close()


@contextmanager
def _world(separate_process: bool, redis_url: str) -> Iterator[_World]:
    gateway = _kv_process(redis_url) if separate_process else _kv_thread(redis_url)
    emulator = _emulator_process() if separate_process else _emulator_thread()
    with gateway as (kv_url, kv_backend), emulator as (emu, emu_url, client_id):
        key = EncryptionKey(key_id="bench", key=b"B" * 32)
        kv = KV(kv_url, _TOKEN, timeout_s=10.0)
        kv.call("FLUSHDB")  # ours alone (see _kv_database)
        store = Store(kv, Keyring(key), "bench:")
        spec = parse_spec(SPEC, source="bench", env={})
        try:
            yield _World(emu, emu_url, client_id, _REDIRECT, store, spec, kv_backend)
        finally:
            kv.call("FLUSHDB")
            kv.close()


def _install(world: _World, team: str, projects: int) -> Installation:
    """A team with `projects` projects and our installation on it (code exchange included)."""
    emu = world.emulator
    emu.create_team(team)
    for n in range(projects):
        emu.create_project(team, f"{team}-{n:04d}")
    minted = emu.mint_code(team)
    token = exchange_code(
        minted["code"],
        client_id=world.client_id,
        client_secret=_SECRET,
        redirect_uri=world.redirect_uri,
        base_url=world.emulator_url,
        deadline=Deadline(10),
    )
    cfg = token.installation_id
    access = token.access_token.get_secret_value()
    inst = Installation(
        configuration_id=cfg,
        owner_id=token.team_id or token.user_id,
        team_id=token.team_id,
        user_id=token.user_id,
        sealed_token=world.store.seal_token(cfg, access),
        project_selection="all",
    )
    world.store.save_installation(inst, secrets=world.spec.mint_secrets())
    assert parse_qs(urlsplit(minted["redirectUrl"]).query)["configurationId"] == [cfg]
    return inst


def _calls(emulator: _Emu) -> dict[str, int]:
    routes = emulator.call_counts()["routes"]
    return {key: value["count"] for key, value in routes.items()}


def _timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _rtt(world: _World, inst: Installation, project_id: str, samples: int = 15) -> float:
    client = VercelClient(
        world.store.token(inst),
        team_id=inst.team_id,
        base_url=world.emulator_url,
        deadline=Deadline(60),
    )
    return statistics.median(_timed(lambda: client.list_env(project_id)) for _ in range(samples))


def _naive(world: _World, inst: Installation) -> tuple[float, int]:
    """Seconds and calls for every project of `inst`, the anchors' way."""
    client = VercelClient(
        world.store.token(inst),
        team_id=inst.team_id,
        base_url=world.emulator_url,
        deadline=Deadline(600),
    )
    secrets = world.store.get_secrets(inst.configuration_id)
    state = world.emulator.state()["projects"]
    projects = [p for p in state if p["accountId"] == inst.owner_id]
    calls = 0
    start = time.perf_counter()
    for project in projects:
        ctx = TemplateContext(
            configuration_id=inst.configuration_id,
            team_id=inst.team_id,
            user_id=inst.user_id,
            project_id=project["id"],
            project_name=project["name"],
            secrets=secrets,
        )
        for var in world.spec.desired(ctx):
            for target in var.targets:
                one = EnvSpec(key=var.key, value=var.value, type=var.type, target=[target])
                result = client.create_env(project["id"], one, upsert=True)
                assert result.ok
                calls += 1
    return time.perf_counter() - start, calls


def _first(
    world: _World, inst: Installation, prov: Provisioner
) -> tuple[float, float, dict[str, int]]:
    """RTT, then the first provision of `inst`: (seconds, RTT seconds, calls by route)."""
    emu = world.emulator
    emu.set_latency(LATENCY_MS)
    sample = next(p for p in emu.state()["projects"] if p["accountId"] == inst.owner_id)
    rtt = _rtt(world, inst, sample["id"])
    emu.reset_calls()
    first_s = _timed(lambda: _check(prov.reconcile(inst.configuration_id, Deadline(600))))
    return first_s, rtt, _calls(emu)


def run() -> dict[str, float]:
    concurrency = DEFAULT_CONCURRENCY
    with _kv_database() as redis_url, _world(True, redis_url) as world:
        emu = world.emulator
        kv_backend = world.kv_backend
        ours = _install(world, "bench", PROJECTS)
        naive_inst = _install(world, "naive", NAIVE_SAMPLE)
        prov = Provisioner(world.store, world.spec, api_url=world.emulator_url)
        first_s, rtt, first = _first(world, ours, prov)
        emu.reset_calls()
        noop_s = _timed(lambda: _check(prov.reconcile(ours.configuration_id, Deadline(600))))
        noop = _calls(emu)
        naive_sample_s, naive_calls = _naive(world, naive_inst)
    with _kv_database() as redis_url, _world(False, redis_url) as world:
        shared_inst = _install(world, "bench", PROJECTS)
        shared_prov = Provisioner(world.store, world.spec, api_url=world.emulator_url)
        shared_s, shared_rtt, _ = _first(world, shared_inst, shared_prov)

    pages = math.ceil(PROJECTS / _PAGE)
    listing = "GET /v10/projects"
    env_first = sum(v for k, v in first.items() if k != listing) / PROJECTS
    env_noop = sum(v for k, v in noop.items() if k != listing) / PROJECTS
    writes_noop = sum(v for k, v in noop.items() if not k.startswith("GET"))
    per_project_k = 1  # one batched create (a fresh project is not listed first)
    rounds = pages + math.ceil(PROJECTS / concurrency) * per_project_k
    lower = rounds * rtt
    naive_s = naive_sample_s * PROJECTS / NAIVE_SAMPLE
    figures = {
        "provision_wall_s": first_s,
        "provision_noop_wall_s": noop_s,
        "provision_naive_wall_s": naive_s,
        "provision_lower_bound_s": lower,
        "provision_rtt_ms": rtt * 1000,
        "provision_speedup_vs_naive": naive_s / first_s,
        "provision_vs_lower_bound": first_s / lower,
        "provision_wall_s_shared_gil": shared_s,
        "provision_vs_lower_bound_shared_gil": shared_s / (rounds * shared_rtt),
        "provision_calls_per_project_first": env_first,
        "provision_calls_per_project_noop": env_noop,
        "provision_listing_calls_per_project": first.get(listing, 0) / PROJECTS,
        "provision_naive_calls_per_project": naive_calls / NAIVE_SAMPLE,
        "provision_noop_vercel_writes": float(writes_noop),
    }
    _print(figures, concurrency, pages, per_project_k, kv_backend)
    return figures


def _check(report: object) -> None:
    outcome = getattr(report, "outcome", None)
    if outcome != "done":
        raise RuntimeError(f"benchmark reconcile did not finish: {outcome}")


def _verdict(name: str, value: float) -> str:
    goal, kind = GOALS[name]
    ok = value >= goal if kind == "min" else value <= goal
    return f"{'≥' if kind == 'min' else '≤'} {goal:g}: {'met' if ok else 'MISSED'}"


def _print(f: dict[str, float], concurrency: int, pages: int, k: int, kv_backend: str) -> None:
    n = PROJECTS
    print_table(
        f"Provisioning {n} projects x {len(SPEC['env'])} vars, {LATENCY_MS:g} ms per call "
        f"(RTT measured {f['provision_rtt_ms']:.1f} ms), concurrency C = {concurrency}, "
        f"emulator and KV gateway in their own processes (KV over {kv_backend})",
        ["figure", "value", "goal"],
        [
            ("(a) ours: wall time", f"{f['provision_wall_s']:.2f} s", ""),
            (
                f"(b) naive: one upsert per var per target, sequential "
                f"(measured on {NAIVE_SAMPLE} projects, x{n / NAIVE_SAMPLE:g})",
                f"{f['provision_naive_wall_s']:.1f} s",
                "",
            ),
            (
                "    speedup vs naive",
                f"{f['provision_speedup_vs_naive']:.1f}x",
                _verdict("provision_speedup_vs_naive", f["provision_speedup_vs_naive"]),
            ),
            (
                f"(c) lower bound ⌈{n}/{_PAGE}⌉·RTT + ⌈{n}/{concurrency}⌉·{k}·RTT "
                f"= {pages}·RTT + {math.ceil(n / concurrency) * k}·RTT",
                f"{f['provision_lower_bound_s']:.2f} s",
                "",
            ),
            (
                "    ours / lower bound",
                f"{f['provision_vs_lower_bound']:.2f}x",
                _verdict("provision_vs_lower_bound", f["provision_vs_lower_bound"]),
            ),
            (
                "    for comparison, emulator and KV gateway in our process (one GIL): "
                "wall, / its bound",
                f"{f['provision_wall_s_shared_gil']:.2f} s, "
                f"{f['provision_vs_lower_bound_shared_gil']:.2f}x",
                "",
            ),
            (
                "(d) env calls per project, first provision",
                f"{f['provision_calls_per_project_first']:.2f}",
                _verdict(
                    "provision_calls_per_project_first", f["provision_calls_per_project_first"]
                ),
            ),
            (
                "    env calls per project, no-op resync",
                f"{f['provision_calls_per_project_noop']:.2f}",
                _verdict("provision_calls_per_project_noop", f["provision_calls_per_project_noop"]),
            ),
            (
                "    + project listing per project (amortized, each run)",
                f"{f['provision_listing_calls_per_project']:.3f}",
                "",
            ),
            ("    Vercel writes on the no-op resync", f"{f['provision_noop_vercel_writes']:g}", ""),
            ("    no-op resync wall time", f"{f['provision_noop_wall_s']:.2f} s", ""),
            (
                "    naive calls per project",
                f"{f['provision_naive_calls_per_project']:g}",
                "",
            ),
        ],
    )


if __name__ == "__main__":
    run()
