"""The benchmark harness's arithmetic: paired ratios, the median's standard error, the
build judge's sizes, and the webhook bench's KV replay (same commands, same round trips)."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from dev.bench import webhook
from dev.bench.cold_import import _pair_ratios, bundle_sizes, median_se
from dev.kv_engine import Engine
from dev.kv_gateway import create_app as create_gateway


def test_pair_ratios_pair_each_sample_with_its_neighbour() -> None:
    assert _pair_ratios([10.0, 30.0], [5.0, 10.0]) == [2.0, 3.0]
    assert _pair_ratios([10.0], [0.0]) == []
    with pytest.raises(ValueError, match="shorter"):
        _pair_ratios([1.0, 2.0], [1.0])


def test_median_se_shrinks_with_samples_and_ignores_outliers() -> None:
    assert median_se([1.0, 1.1, 1.2]) == float("inf")  # too few to say
    spread = [1.0, 1.1, 1.2, 1.3] * 4
    assert median_se(spread * 4) == pytest.approx(median_se(spread) / 2)
    assert median_se([1.2] * 10) == 0.0
    with_outlier = [1.2] * 9 + [50.0]
    assert median_se(with_outlier) == 0.0  # one slow process does not move it


def test_bundle_sizes_from_the_build_judge(tmp_path: Path) -> None:
    artifact = tmp_path / "vercel-build.json"
    assert bundle_sizes(artifact) is None  # absent: reported as unavailable
    artifact.write_text("not json")
    assert bundle_sizes(artifact) is None
    artifact.write_text(json.dumps({"bundle_mb": {"health": 35.77, "teams/sync": 1, "x": "?"}}))
    assert bundle_sizes(artifact) == {"health": 35.77, "teams/sync": 1.0}


def test_the_webhook_replay_repeats_the_events_round_trips() -> None:
    """The KV-bound limit replays exactly the requests an event made, through the same
    client, so the gateway sees the same number of round trips and commands again."""
    from lib.log import configure

    configure("WARNING")
    gateway = create_gateway(webhook._KV_TOKEN, Engine())
    env = webhook._env("http://127.0.0.1:1")
    recorder = webhook._Recorder(httpx.WSGITransport(app=gateway))
    services = webhook._services(env, recorder)
    secret = env["VERCEL_CLIENT_SECRET"]
    events = [webhook._signed(secret, "project.created", n) for n in range(5)]
    in_events, in_kv, trips = webhook._against_kv(services, recorder, events)
    assert in_events > 0
    assert in_kv > 0
    assert trips == 10  # claim with lookup, then the done mark: two per fresh event
    stats = gateway.stats()
    assert stats["requests"] == 2 * trips
    assert stats["commands"] % 2 == 0


def test_the_provision_bench_drives_an_emulator_in_its_own_process() -> None:
    """The provision bench's emulator runs as `python -m dev.emulator` (the real Vercel
    does not share our CPU) and is driven through its control API; it answers the REST
    API with the bench's settings and counts the calls the bench reads."""
    from dev.bench import provision

    with provision._emulator_process() as (emu, url, client_id):
        emu.create_team("t")
        emu.create_project("t", "t-0001")
        minted = emu.mint_code("t")
        assert minted["code"]
        assert provision._calls(emu) == {}
        assert httpx.get(f"{url}/v10/projects", timeout=10).status_code == 401  # no token
        assert provision._calls(emu) == {"GET /v10/projects": 1}
        emu.reset_calls()
        assert provision._calls(emu) == {}
        emu.set_latency(30)
        assert emu.state()["projects"][-1]["name"] == "t-0001"
        assert client_id
        config = httpx.get(f"{url}/_emulator/config", timeout=10).json()
        assert config["webhook_url"] is None  # no deliveries to a port someone else uses
        assert config["redirect_uri"] == provision._REDIRECT


def test_the_provision_bench_runs_the_kv_gateway_in_its_own_process() -> None:
    """The provision bench's KV gateway runs as `python -m dev.kv_gateway` (the real
    Upstash does not share our CPU) over a database the bench holds alone: one of the
    test fixtures' locked databases, never Redis's default one."""
    import fcntl
    import os
    import tempfile

    from dev.bench import provision
    from dev.test_dbs import TEST_DBS
    from lib.kv.client import KV

    if os.environ.get("BENCH_REDIS_URL"):
        pytest.skip("BENCH_REDIS_URL names the bench's database")
    with provision._kv_database() as redis_url:
        db = int(redis_url.rsplit("/", 1)[1])
        assert db in TEST_DBS
        path = f"{tempfile.gettempdir()}/vercel-integration-test-db-{db}.lock"
        with open(path, "w") as other, pytest.raises(BlockingIOError):
            fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)  # held by the bench
        with provision._kv_process(redis_url) as (url, backend):
            assert backend.startswith((f"redis://127.0.0.1:6379/{db}", "embedded engine"))
            kv = KV(url, provision._TOKEN, timeout_s=10.0)
            try:
                assert kv.call("SET", "bench:probe", "1")
                assert kv.call("GET", "bench:probe") == "1"
                assert kv.call("DEL", "bench:probe") == 1
            finally:
                kv.close()
