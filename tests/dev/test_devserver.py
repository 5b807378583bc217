import hashlib
import hmac
import json
import socket
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from dev.devserver import compile_source, create_app, discover_functions
from dev.serve import running

ECHO = """
import json


def app(environ, start_response):
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length) if length else b""
    seen = {
        "path": environ["PATH_INFO"],
        "query": environ["QUERY_STRING"],
        "method": environ["REQUEST_METHOD"],
        "body": body.decode(),
        "module": __name__,
        "vercel_id": environ.get("HTTP_X_VERCEL_ID", ""),
        "forwarded_host": environ.get("HTTP_X_FORWARDED_HOST", ""),
    }
    headers = [("Content-Type", "application/json"), ("X-Frame-Options", "SAMEORIGIN")]
    start_response("200 OK", headers)
    return [json.dumps(seen).encode()]
"""

CLASSIC = """
from http.server import BaseHTTPRequestHandler


class handler(BaseHTTPRequestHandler):
    def do_GET(self):
        body = ("classic " + self.path).encode()
        self.send_response(202)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        n = int(self.headers.get("Content-Length", 0))
        data = self.rfile.read(n)
        self.send_response(200)
        self.end_headers()  # no Content-Length: HTTP/1.0 body ends at EOF
        self.wfile.write(data[::-1])
"""

VERCEL_JSON = {
    "cleanUrls": True,
    "rewrites": [
        {"source": "/echo", "destination": "/api/echo"},
        {"source": "/users/:id", "destination": "/api/echo"},
        {"source": "/teams/:team/:rest*", "destination": "/api/echo?scope=:team"},
        {"source": "/legacy/(.*)", "destination": "/api/classic"},
        {"source": "/missing", "destination": "/api/nothing"},
        {"source": "/page", "destination": "/about.html"},
    ],
    "redirects": [{"source": "/old/:slug", "destination": "/new/:slug", "permanent": False}],
    "headers": [
        {"source": "/(.*)", "headers": [{"key": "X-Frame-Options", "value": "DENY"}]},
        {"source": "/users/:id", "headers": [{"key": "X-User", "value": "user-:id"}]},
    ],
}


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip())


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Path]:
    root = tmp_path / "proj"
    write(root / "vercel.json", json.dumps(VERCEL_JSON))
    write(root / "public/index.html", "<h1>home</h1>")
    write(root / "public/about.html", "<p>about</p>")
    write(root / "public/app.js", "console.log(1)")
    write(root / "public/data.json", "{}")
    write(root / "public/docs/index.html", "docs")
    write(root / "public/ünï.txt", "unicode")
    write(root / "secret.txt", "outside public")
    write(root / "api/__init__.py", "")
    write(root / "api/echo.py", ECHO)
    write(root / "api/classic.py", CLASSIC)
    write(root / "api/_helpers.py", "def app(environ, start_response): pass\n")
    write(root / "api/notafunction.py", "X = 1\n")
    write(root / "api/boom.py", "def app(environ, start_response):\n    raise ValueError('x')\n")
    write(root / "api/broken.py", "import does_not_exist_anywhere\napp = None\n")
    write(root / "api/nested/deep.py", ECHO)
    write(root / "api/index.py", ECHO)
    (root / "public/escape").symlink_to(root / "secret.txt")
    before = set(sys.modules)
    yield root
    # Functions are registered as `api.*` like on Vercel; drop them so projects don't mix.
    for name in set(sys.modules) - before:
        if name == "api" or name.startswith("api."):
            del sys.modules[name]
    if str(root.resolve()) in sys.path:
        sys.path.remove(str(root.resolve()))


@pytest.fixture
def client(project: Path) -> Iterator[httpx.Client]:
    with (
        running(create_app(project)) as server,
        httpx.Client(base_url=server.url, timeout=10, follow_redirects=False) as c,
    ):
        yield c


def test_serves_public_at_the_root_with_content_types(client: httpx.Client) -> None:
    home = client.get("/")
    assert home.status_code == 200
    assert home.text == "<h1>home</h1>"
    assert home.headers["content-type"] == "text/html; charset=utf-8"
    assert (
        client.get("/app.js")
        .headers["content-type"]
        .startswith(("text/javascript", "application/javascript"))
    )
    assert client.get("/data.json").headers["content-type"] == "application/json; charset=utf-8"
    assert client.get("/docs/").text == "docs"
    assert client.get("/%C3%BCn%C3%AF.txt").text == "unicode"
    head = client.head("/about")
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["content-length"] == str(len("<p>about</p>"))


def test_clean_urls(client: httpx.Client) -> None:
    assert client.get("/about").text == "<p>about</p>"
    for path, location in [
        ("/about.html", "/about"),
        ("/index.html", "/"),
        ("/docs/index", "/docs"),
        ("/api/echo.py?a=1", "/api/echo?a=1"),
    ]:
        r = client.get(path)
        assert (r.status_code, r.headers["location"]) == (308, location), path


def test_nothing_outside_public_is_served(client: httpx.Client) -> None:
    for path in [
        "/../secret.txt",
        "/%2e%2e/secret.txt",
        "/..%2fsecret.txt",
        "/docs/../../secret.txt",
        "/escape",  # a symlink pointing out of public/
        "/vercel.json",
        "/api/_helpers",
        "/api/__init__",
        "/api/../secret",
        "/api/notafunction",
        "/nope",
    ]:
        r = client.get(path)
        assert r.status_code == 404, path
        assert "outside public" not in r.text
    assert client.get("/a%00b").status_code == 400


def test_static_files_refuse_other_methods(client: httpx.Client) -> None:
    r = client.post("/about", content=b"x")
    assert r.status_code == 405
    assert r.headers["allow"] == "GET, HEAD"


def test_function_sees_the_original_path_under_a_rewrite(client: httpx.Client) -> None:
    r = client.post("/echo?x=1", content=b"hello")
    assert r.status_code == 200
    seen = r.json()
    assert seen["path"] == "/echo"
    assert seen["query"] == "x=1"
    assert (seen["method"], seen["body"]) == ("POST", "hello")
    assert seen["module"] == "api.echo"
    assert seen["vercel_id"].startswith("dev1::")
    assert seen["forwarded_host"].startswith("127.0.0.1:")
    direct = client.get("/api/echo").json()
    assert direct["path"] == "/api/echo"


def test_rewrite_parameters(client: httpx.Client) -> None:
    # Parameters the destination does not use are passed as query, as Vercel does.
    assert client.get("/users/42?a=b").json()["query"] == "a=b&id=42"
    # ...all of them, when the destination's path uses none (Vercel's replaceSegments).
    seen = client.get("/teams/acme/x/y").json()
    assert seen["path"] == "/teams/acme/x/y"
    assert seen["query"] == "scope=acme&team=acme&rest=x%2Fy"
    assert client.get("/legacy/some/where?q=1").text == "classic /legacy/some/where?q=1"
    assert client.get("/page").text == "<p>about</p>"
    assert client.get("/missing").status_code == 404


def test_redirects(client: httpx.Client) -> None:
    r = client.get("/old/thing?x=1")
    assert (r.status_code, r.headers["location"]) == (307, "/new/thing?x=1")


def test_configured_headers_apply_but_function_headers_win(client: httpx.Client) -> None:
    assert client.get("/").headers["x-frame-options"] == "DENY"
    assert client.get("/nope").headers["x-frame-options"] == "DENY"
    fn = client.get("/users/7")
    assert fn.headers["x-frame-options"] == "SAMEORIGIN"
    assert fn.headers["x-user"] == "user-7"


def test_function_routes(client: httpx.Client) -> None:
    assert client.get("/api").json()["module"] == "api.index"
    assert client.get("/api/nested/deep").json()["module"] == "api.nested.deep"


def test_handler_class_functions(client: httpx.Client) -> None:
    got = client.get("/api/classic?z=9")
    assert got.status_code == 202
    assert got.text == "classic /api/classic?z=9"
    assert got.headers["content-type"] == "text/plain"
    assert client.post("/api/classic", content=b"abc").text == "cba"
    assert client.put("/api/classic").status_code == 501  # no do_PUT


def test_function_errors_are_a_short_500(
    client: httpx.Client, capfd: pytest.CaptureFixture[str]
) -> None:
    for path in ["/api/boom", "/api/broken"]:
        r = client.get(path)
        assert r.status_code == 500
        assert "Traceback" not in r.text
        assert len(r.text) < 200
    err = capfd.readouterr().err
    assert "ValueError" in err
    assert "does_not_exist_anywhere" in err


def test_discovery_follows_vercel_rules(project: Path) -> None:
    found = {f.module: (f.route, f.variable) for f in discover_functions(project)}
    assert found == {
        "api.classic": ("/api/classic", "handler"),
        "api.boom": ("/api/boom", "app"),
        "api.broken": ("/api/broken", "app"),
        "api.echo": ("/api/echo", "app"),
        "api.index": ("/api", "app"),
        "api.nested.deep": ("/api/nested/deep", "app"),
    }


@pytest.mark.parametrize(
    ("source", "path", "params"),
    [
        ("/health", "/health", {}),
        ("/health", "/health/", None),  # strict: no optional trailing slash
        ("/health", "/Health", None),  # case-sensitive
        ("/users/:id", "/users/7", {"id": "7"}),
        ("/users/:id", "/users/7/x", None),
        ("/f/:id(\\d+)", "/f/12", {"id": "12"}),
        ("/f/:id(\\d+)", "/f/ab", None),
        ("/a/:rest*", "/a", {"rest": None}),
        ("/a/:rest*", "/a/b/c", {"rest": "b/c"}),
        ("/a/:rest+", "/a", None),
        ("/b/:x?", "/b", {"x": None}),
        ("/(.*)", "/anything/at/all", {"0": "anything/at/all"}),
        ("/x\\(y\\)", "/x(y)", {}),
        ("/:slug.html", "/page.html", {"slug": "page"}),
    ],
)
def test_source_patterns(source: str, path: str, params: dict[str, str | None] | None) -> None:
    pattern, keys = compile_source(source)
    m = pattern.match(path)
    if params is None:
        assert m is None
    else:
        assert m is not None
        assert dict(zip(keys, m.groups(), strict=True)) == params


@pytest.mark.parametrize("source", ["/{a}", "/x/:", "/f/:id((a))", "/(unclosed", "/*", "/f/:id([)"])
def test_unsupported_or_invalid_patterns_are_refused(source: str) -> None:
    with pytest.raises(ValueError, match=r"."):
        compile_source(source)


def test_unsupported_vercel_json_is_refused_at_start(tmp_path: Path) -> None:
    write(tmp_path / "vercel.json", json.dumps({"routes": [{"src": "/x", "dest": "/y"}]}))
    with pytest.raises(ValueError, match="routes"):
        create_app(tmp_path)


# --- request bodies reach functions as Vercel's runtime hands them over ---------------

# A webhook-like receiver: it reads CONTENT_LENGTH bytes and checks an HMAC over them,
# as the integration's /webhook does with `x-vercel-signature`.
SIGNED = """
import hashlib, hmac, json

SECRET = b"chunk-test-secret"


def app(environ, start_response):
    n = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(n) if n else b""
    expected = hmac.new(SECRET, body, hashlib.sha1).hexdigest()
    valid = hmac.compare_digest(expected, environ.get("HTTP_X_VERCEL_SIGNATURE", ""))
    seen = {
        "length": environ.get("CONTENT_LENGTH"),
        "body": body.decode(),
        "transfer_encoding": environ.get("HTTP_TRANSFER_ENCODING"),
        "valid": valid,
    }
    start_response("200 OK" if valid else "401 Unauthorized", [("Content-Type", "application/json")])
    return [json.dumps(seen).encode()]
"""

WEBHOOK_BODY = json.dumps(
    {"id": "evt_chunked", "type": "project.created", "payload": {"project": {"id": "prj_1"}}}
).encode()


def _signature(body: bytes) -> str:
    return hmac.new(b"chunk-test-secret", body, hashlib.sha1).hexdigest()


def _chunked(body: bytes, sizes: tuple[int, ...]) -> bytes:
    """`body` in chunks of `sizes` (the rest in one), with an extension and a trailer."""
    out, start = bytearray(), 0
    for size in (*sizes, len(body)):
        piece = body[start : start + size]
        if not piece:
            break
        out += f"{len(piece):x};ext=1\r\n".encode() + piece + b"\r\n"
        start += len(piece)
    return bytes(out + b"0\r\nX-Trailer: t\r\n\r\n")


def _raw_request(url: str, head: str, body: bytes, *, half_close: bool = False) -> bytes:
    """Send bytes over a socket left open for writing (as a keep-alive client does)."""
    host, port = urlsplit(url).hostname, urlsplit(url).port
    with socket.create_connection((host, port), timeout=5) as sock:
        sock.sendall(head.encode("latin-1") + b"\r\n" + body)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        data = bytearray()
        while chunk := sock.recv(65536):  # the server closes after its answer
            data += chunk
    return bytes(data)


@pytest.fixture
def signed_server(project: Path) -> Iterator[str]:
    write(project / "api/signed.py", SIGNED)
    with running(create_app(project)) as server:
        yield server.url


def test_chunked_webhook_is_dechunked_and_answered_promptly(signed_server: str) -> None:
    head = (
        "POST /api/signed HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
        f"Transfer-Encoding: chunked\r\nX-Vercel-Signature: {_signature(WEBHOOK_BODY)}\r\n"
    )
    started = time.monotonic()
    raw = _raw_request(signed_server, head, _chunked(WEBHOOK_BODY, (1, 7, 30)))
    elapsed = time.monotonic() - started  # a hang would end in the 5 s socket timeout
    status, _, payload = raw.partition(b"\r\n\r\n")
    assert status.startswith(b"HTTP/1.0 200") or status.startswith(b"HTTP/1.1 200"), raw[:300]
    seen = json.loads(payload)
    assert seen == {
        "length": str(len(WEBHOOK_BODY)),
        "body": WEBHOOK_BODY.decode(),
        "transfer_encoding": None,  # hop-by-hop: not passed on, as on Vercel
        "valid": True,
    }
    assert elapsed < 2, elapsed


def test_chunked_body_from_an_http_client(signed_server: str) -> None:
    """httpx streams an iterator as `Transfer-Encoding: chunked`."""
    parts = [WEBHOOK_BODY[:10], WEBHOOK_BODY[10:11], WEBHOOK_BODY[11:]]
    signature = _signature(WEBHOOK_BODY)
    reply = httpx.post(
        f"{signed_server}/api/signed",
        content=iter(parts),
        headers={"x-vercel-signature": signature},
        timeout=5,
    )
    assert reply.status_code == 200, reply.text
    assert reply.json()["body"] == WEBHOOK_BODY.decode()
    forged = httpx.post(
        f"{signed_server}/api/signed",
        content=iter(parts),
        headers={"x-vercel-signature": _signature(WEBHOOK_BODY + b" ")},
        timeout=5,
    )
    assert forged.status_code == 401


def test_body_without_framing_is_empty(signed_server: str) -> None:
    head = (
        f"POST /api/signed HTTP/1.1\r\nHost: localhost\r\nX-Vercel-Signature: {_signature(b'')}\r\n"
    )
    raw = _raw_request(signed_server, head, b"")
    seen = json.loads(raw.partition(b"\r\n\r\n")[2])
    assert (seen["length"], seen["body"], seen["valid"]) == ("0", "", True)


@pytest.mark.parametrize(
    ("framing", "body"),
    [
        ("Content-Length: 5\r\nTransfer-Encoding: chunked\r\n", b"5\r\nhello\r\n0\r\n\r\n"),
        ("Transfer-Encoding: chunked\r\n", b"zz\r\nhello\r\n0\r\n\r\n"),
        ("Transfer-Encoding: chunked\r\n", b"a\r\nhello"),  # ends inside a chunk
        ("Transfer-Encoding: chunked\r\n", b"5\r\nhello\r\n"),  # no last chunk
        ("Content-Length: -1\r\n", b""),
    ],
    ids=["both-framings", "bad-size", "truncated-chunk", "no-last-chunk", "negative-length"],
)
def test_bad_framing_is_a_400(signed_server: str, framing: str, body: bytes) -> None:
    head = f"POST /api/signed HTTP/1.1\r\nHost: localhost\r\n{framing}"
    raw = _raw_request(signed_server, head, body, half_close=True)
    assert raw.split(b"\r\n", 1)[0].split(b" ")[1] == b"400", raw[:300]
