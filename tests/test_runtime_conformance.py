"""Every api/*.py, served by Vercel's own runtime (`vercel-runtime`), answers correctly.

Each function runs in a fresh process the way a Lambda cold-starts it: the project root
first on `sys.path` (the trampoline's doing), `PYTHONDONTWRITEBYTECODE=1`, the
`__VC_HANDLER_*` variables the builder sets, no `VERCEL_IPC_PATH` (so `vc_init` serves
the legacy Lambda-event interface), and then `vc_init.vc_handler(event, context)` with
events of the shape its code reads: `{"body": json({method, path, headers, body,
encoding})}`, answered with `{statusCode, headers: {name: [values]}, body[, encoding]}`.

Each function's contract is in EXPECTATIONS (what it must answer with and without the
credentials it needs); a new function is covered by a generic case (a GET must not be a
5xx) and `test_every_function_has_expectations` asks for its own. The KV is this run's
locked test database (tests/conftest.py). Needs Python >= 3.12 (vercel-runtime): older
skips locally and fails under CI=true.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from dev.devserver import Function, create_app, discover_functions
from dev.emulator import sign
from dev.kv_gateway import Backend
from dev.kv_gateway import create_app as create_gateway
from dev.serve import RunningServer, running, start
from dev.stack import DEVELOPMENT_SETTINGS, ROOT, development_settings


@pytest.fixture
def needs_runtime() -> None:
    if sys.version_info >= (3, 12):
        return
    reason = f"vercel-runtime needs Python >= 3.12; these tests run on {sys.version.split()[0]}"
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true: the runtime conformance must run ({reason})", pytrace=False)
    pytest.skip(reason)


FUNCTIONS = discover_functions(ROOT)

# What the trampoline does before importing vc_init, then one vc_handler call per request.
DRIVER = """
import json, sys
root, out = sys.argv[1], sys.argv[2]
sys.path.insert(0, root)
from vercel_runtime import vc_init
replies = [vc_init.vc_handler({"body": json.dumps(r)}, None) for r in json.load(sys.stdin)]
with open(out, "w") as f:
    json.dump(replies, f)
"""


@dataclass
class Reply:
    status: int
    headers: dict[str, list[str]]
    body: bytes

    def header(self, name: str) -> str | None:
        for key, values in self.headers.items():
            if key.lower() == name.lower():
                return values[-1]
        return None

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass(frozen=True)
class Case:
    """One request and what the response must be. `status=None`: any non-5xx."""

    method: str
    path: str
    status: int | None = None
    content_type: str | None = None
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    kv: bool = True  # False: the KV URL points at a closed port
    check: Callable[[Reply], None] | None = None


def healthy(reply: Reply) -> None:
    assert reply.json() == {"status": "ok"}  # anyone: healthy or not, nothing more


def healthy_in_detail(reply: Reply) -> None:
    report = reply.json()
    assert report["status"] == "ok"
    assert report["kv"]["ok"] is True
    assert report["kv"]["latency_ms"] >= 0


def kv_down(reply: Reply) -> None:
    assert reply.json() == {"status": "degraded"}


def kv_down_in_detail(reply: Reply) -> None:
    report = reply.json()
    assert report["status"] == "degraded"
    assert report["kv"]["ok"] is False


# The admin token unlocks /health's detailed report (as it does /provision).
OPERATOR = {"authorization": f"Bearer {DEVELOPMENT_SETTINGS['ADMIN_TOKEN']}"}


def allows_get(reply: Reply) -> None:
    assert "GET" in (reply.header("allow") or "")


def allows_post(reply: Reply) -> None:
    assert "POST" in (reply.header("allow") or "")


def says(*words: str) -> Callable[[Reply], None]:
    """A page for people: every one of `words` is in it."""

    def check(reply: Reply) -> None:
        text = reply.body.decode()
        for word in words:
            assert word in text, word

    return check


def refused_with(message: str) -> Callable[[Reply], None]:
    def check(reply: Reply) -> None:
        body = reply.json()
        assert message in json.dumps(body), body

    return check


def to_vercel_with_state(reply: Reply) -> None:
    """To the integration's install page at the dashboard, with a state that the cookie
    set alongside binds to this browser."""
    dashboard = DEVELOPMENT_SETTINGS["VERCEL_DASHBOARD_URL"].format(
        emulator_url="http://127.0.0.1:4000"
    )
    target = httpx.URL(reply.header("location") or "")
    slug = DEVELOPMENT_SETTINGS["INTEGRATION_SLUG"]
    assert str(target).startswith(f"{dashboard}/integrations/{slug}/new"), target
    assert target.params.get("state"), target
    cookies = [v for k, vs in reply.headers.items() if k.lower() == "set-cookie" for v in vs]
    assert cookies, "no browser-binding cookie"
    attributes = cookies[0].lower()
    for attribute in ("httponly", "secure", "samesite"):
        assert attribute in attributes, cookies[0].split(";")[0].split("=")[0]


_EVENT = json.dumps({"id": "evt_conformance", "type": "deployment.created", "payload": {}}).encode()
_SECRET = DEVELOPMENT_SETTINGS["VERCEL_CLIENT_SECRET"]
_ADMIN = {"authorization": "Bearer " + DEVELOPMENT_SETTINGS["ADMIN_TOKEN"]}
_CFG = "icfg_" + "A1b2C3d4" * 3  # Vercel's form: icfg_ and 24 alphanumerics

# Per-function expectations, keyed by Function.name ("health" for api/health.py).
EXPECTATIONS: dict[str, list[Case]] = {
    "health": [
        Case("GET", "/health", 200, "application/json", check=healthy),
        Case("GET", "/health", 200, "application/json", headers=OPERATOR, check=healthy_in_detail),
        Case("HEAD", "/health", 200, "application/json"),
        Case("POST", "/health", 405, body=b"{}", check=allows_get),
        Case("GET", "/health", 503, "application/json", kv=False, check=kv_down),
        Case(
            "GET",
            "/health",
            503,
            "application/json",
            headers=OPERATOR,
            kv=False,
            check=kv_down_in_detail,
        ),
    ],
    "webhook": [
        Case("GET", "/webhook", 405, check=allows_post),
        Case("POST", "/webhook", 401, "application/json", body=_EVENT),
        Case(
            "POST",
            "/webhook",
            403,
            "application/json",
            body=_EVENT,
            headers={"x-vercel-signature": sign(_EVENT, "not-the-client-secret")},
        ),
        Case(
            "POST",
            "/webhook",
            200,
            "application/json",
            body=_EVENT,
            headers={"x-vercel-signature": sign(_EVENT, _SECRET)},
        ),
    ],
    "install": [
        Case("GET", "/install", 302, check=to_vercel_with_state),
        Case("HEAD", "/install", 405, check=allows_get),
        Case("POST", "/install", 405, body=b"{}", check=allows_get),
    ],
    "callback": [
        Case("GET", "/callback", 400, "text/html"),
        Case("GET", "/callback?code=c0de&configurationId=not-a-configuration", 400, "text/html"),
    ],
    "provision": [
        Case("POST", "/provision", 401, "application/json", body=b"{}"),
        Case(
            "POST",
            "/provision",
            401,
            "application/json",
            body=b"{}",
            headers={"authorization": "Bearer not-the-admin-token"},
        ),
        Case(
            "POST",
            "/provision",
            400,
            "application/json",
            body=b'{"configurationId": "nope"}',
            headers=_ADMIN,
            check=refused_with("configurationId"),
        ),
    ],
    "configure": [
        Case("GET", "/configure", 400, "text/html"),
        Case(
            "GET",
            f"/configure?configurationId={_CFG}",
            200,
            "text/html",
            check=says("Sign in with Vercel"),
        ),
    ],
    "queue_consumer": [
        Case("GET", "/api/queue_consumer", 405, check=allows_post),
        Case("POST", "/api/queue_consumer", 401, "application/json", body=b"{}"),
    ],
}


def public_path(fn: Function) -> str:
    """The path a function is reached at: its vercel.json rewrite source, else /api/<name>."""
    config = (
        json.loads((ROOT / "vercel.json").read_text()) if (ROOT / "vercel.json").exists() else {}
    )
    for rewrite in config.get("rewrites", []):
        literal = not any(c in rewrite["source"] for c in ":(*?+")
        if rewrite["destination"] == fn.route and literal:
            return str(rewrite["source"])
    return fn.route


def default_cases(fn: Function) -> list[Case]:
    return [Case("GET", public_path(fn))]


def secret_values() -> list[str]:
    names = ("SECRET", "TOKEN", "KEY")
    return [v for k, v in DEVELOPMENT_SETTINGS.items() if any(n in k for n in names)]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def kv_gateway(kv_backend: Backend) -> Iterator[RunningServer]:
    """The KV the functions use: this run's own locked test database (tests/conftest.py),
    emptied first, never Redis's database 0."""
    token = DEVELOPMENT_SETTINGS["UPSTASH_REDIS_REST_TOKEN"]
    kv_backend.execute([b"FLUSHDB"])
    server = start(create_gateway(token, kv_backend))
    yield server
    server.stop()


def runtime_env(fn: Function, kv_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VERCEL"))}
    env.update(
        development_settings(
            dev_url="http://127.0.0.1:3000", emulator_url="http://127.0.0.1:4000", kv_url=kv_url
        )
    )
    env.update(
        PYTHONDONTWRITEBYTECODE="1",
        __VC_HANDLER_MODULE_NAME=fn.module,
        __VC_HANDLER_ENTRYPOINT=str(fn.path.relative_to(ROOT)),
        __VC_HANDLER_ENTRYPOINT_ABS=str(fn.path),
        __VC_HANDLER_VARIABLE_NAME=fn.variable,
    )
    env.pop("VERCEL_IPC_PATH", None)  # set: IPC mode. unset: vc_handler (Lambda events)
    return env


def event(case: Case) -> dict[str, Any]:
    headers = {
        "host": "integration.example.com",
        "x-vercel-id": "iad1::conformance",
        "x-forwarded-host": "integration.example.com",
        "x-forwarded-proto": "https",
        "x-real-ip": "203.0.113.9",
        "accept": "*/*",
        **case.headers,
    }
    if case.body:
        headers.setdefault("content-type", "application/json")
    return {
        "method": case.method,
        "path": case.path,
        "headers": headers,
        "body": base64.b64encode(case.body).decode(),
        "encoding": "base64",
    }


def invoke(
    root: Path, fn: Function, cases: list[Case], env: dict[str, str], scratch: Path
) -> list[Reply]:
    """Cold-start `fn` under vercel-runtime in a fresh process and send it `cases`."""
    out = scratch / f"replies-{fn.name}.json"
    try:
        done = subprocess.run(
            [sys.executable, "-c", DRIVER, str(root), str(out)],
            input=json.dumps([event(c) for c in cases]),
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, f"vc_init failed for {fn.module}:\n{done.stderr[-3000:]}"
        raw = json.loads(out.read_text())
    finally:
        out.unlink(missing_ok=True)
    replies = []
    for item in raw:
        body = item.get("body") or ""
        data = base64.b64decode(body) if item.get("encoding") == "base64" else body.encode()
        replies.append(Reply(item["statusCode"], item["headers"], data))
    return replies


def check(case: Case, reply: Reply) -> None:
    where = f"{case.method} {case.path}"
    assert 100 <= reply.status <= 599, where
    if case.status is None:
        assert reply.status < 500, f"{where}: {reply.status} {reply.body[:300]!r}"
    else:
        assert reply.status == case.status, f"{where}: {reply.status} {reply.body[:300]!r}"
    for name, values in reply.headers.items():
        assert isinstance(name, str), where
        assert all(isinstance(v, str) for v in values), where
    content_type = reply.header("content-type") or ""
    if case.content_type is not None:
        assert content_type.split(";")[0] == case.content_type, where
    if case.method == "HEAD":
        assert reply.body == b"", where
    elif "json" in content_type and reply.body:
        reply.json()  # well-formed
    text = reply.body.decode("utf-8", "replace") + json.dumps(reply.headers)
    for secret in secret_values():
        assert secret not in text, f"{where} leaks a secret value"
    if case.check is not None:
        case.check(reply)


def test_every_api_file_is_a_function() -> None:
    """A file Vercel would deploy as a function must have an entrypoint it can find."""
    api = ROOT / "api"
    candidates = {
        p.resolve()
        for p in api.rglob("*.py")
        if not any(part.startswith(("_", ".")) for part in p.relative_to(api).parts)
    }
    assert candidates == {fn.path for fn in FUNCTIONS}
    assert FUNCTIONS, "no functions found in api/"


def test_expectations_name_real_functions() -> None:
    assert set(EXPECTATIONS) <= {fn.name for fn in FUNCTIONS}


def test_every_function_has_expectations() -> None:
    """More than "a GET is not a 5xx": each function says what it must do."""
    assert {fn.name for fn in FUNCTIONS} <= set(EXPECTATIONS)


@pytest.mark.usefixtures("needs_runtime")
@pytest.mark.parametrize("fn", FUNCTIONS, ids=[fn.name for fn in FUNCTIONS])
def test_function_under_vercel_runtime(
    fn: Function, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    cases = EXPECTATIONS.get(fn.name) or default_cases(fn)
    for kv_up in (False, True):
        selected = [c for c in cases if c.kv is kv_up]
        if not selected:
            continue
        if kv_up:
            kv_url = request.getfixturevalue("kv_gateway").url
        else:
            kv_url = f"http://127.0.0.1:{closed_port()}"
        replies = invoke(ROOT, fn, selected, runtime_env(fn, kv_url), tmp_path)
        assert len(replies) == len(selected)
        for case, reply in zip(selected, replies, strict=True):
            check(case, reply)


# --- the dev server behaves like the runtime ------------------------------------------

PROBE = """
import json

def app(environ, start_response):
    n = int(environ.get("CONTENT_LENGTH") or 0)
    seen = {
        "path": environ["PATH_INFO"],
        "query": environ["QUERY_STRING"],
        "method": environ["REQUEST_METHOD"],
        "body": environ["wsgi.input"].read(n).decode() if n else "",
        "probe_header": environ.get("HTTP_X_PROBE"),
        "script_name": environ.get("SCRIPT_NAME"),
        "module": __name__,
    }
    start_response("201 Created", [("Content-Type", "application/json"), ("X-Out", "1")])
    return [json.dumps(seen).encode()]
"""

CLASSIC = """
from http.server import BaseHTTPRequestHandler

class handler(BaseHTTPRequestHandler):
    def do_POST(self):
        n = int(self.headers.get("Content-Length", 0))
        body = ("%s %s %s" % (self.path, self.headers.get("X-Probe"), self.rfile.read(n).decode()))
        self.send_response(202)
        self.send_header("Content-Type", "text/plain")
        self.send_header("X-Out", "1")
        self.end_headers()
        self.wfile.write(body.encode())
"""


@pytest.fixture
def probe_project(tmp_path: Path) -> Iterator[Path]:
    root = tmp_path / "probe"
    (root / "api").mkdir(parents=True)
    (root / "public").mkdir()
    (root / "api/__init__.py").write_text("")
    (root / "api/probe.py").write_text(textwrap.dedent(PROBE))
    (root / "api/classic.py").write_text(textwrap.dedent(CLASSIC))
    rewrites = [
        {"source": "/probe", "destination": "/api/probe"},
        {"source": "/classic", "destination": "/api/classic"},
    ]
    (root / "vercel.json").write_text(json.dumps({"rewrites": rewrites}))
    before = set(sys.modules)
    yield root
    for name in set(sys.modules) - before:
        if name == "api" or name.startswith("api."):
            del sys.modules[name]
    if str(root.resolve()) in sys.path:
        sys.path.remove(str(root.resolve()))


@pytest.mark.usefixtures("needs_runtime")
@pytest.mark.parametrize("name", ["probe", "classic"])
def test_dev_server_serves_functions_as_the_runtime_does(probe_project: Path, name: str) -> None:
    """Same request to the same function: the runtime and the dev server agree."""
    (fn,) = [f for f in discover_functions(probe_project) if f.name == name]
    case = Case("POST", f"/{name}?x=1&y=%2F", body=b"hello", headers={"x-probe": "p"})
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VERCEL"))}
    env.update(
        __VC_HANDLER_MODULE_NAME=fn.module,
        __VC_HANDLER_ENTRYPOINT=f"api/{name}.py",
        __VC_HANDLER_ENTRYPOINT_ABS=str(fn.path),
        __VC_HANDLER_VARIABLE_NAME=fn.variable,
    )
    (vercel,) = invoke(probe_project, fn, [case], env, probe_project.parent)
    with running(create_app(probe_project)) as server:
        local = httpx.post(
            server.url + case.path, content=case.body, headers=case.headers, timeout=10
        )
    assert local.status_code == vercel.status
    assert local.headers["content-type"] == vercel.header("content-type")
    assert local.headers["x-out"] == vercel.header("x-out") == "1"
    if name == "probe":
        assert local.json() == vercel.json()
        assert vercel.json()["path"] == "/probe"  # the original path, not /api/probe
        assert vercel.json()["module"] == "api.probe"
    else:
        assert local.content == vercel.body == b"/classic?x=1&y=%2F p hello"
