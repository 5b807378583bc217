import io
import json
from collections.abc import Callable

import httpx
import pytest

from lib.web.wsgi import MAX_BODY_BYTES, HTTPError, Request, Response, endpoint


def client_for(handler: Callable[[Request], Response]) -> httpx.Client:
    return httpx.Client(
        transport=httpx.WSGITransport(app=endpoint(handler, name="t")), base_url="http://t"
    )


def echo(request: Request) -> Response:
    return Response.json(
        {
            "method": request.method,
            "path": request.path,
            "q": request.arg("q"),
            "len": len(request.body()),
            "cookies": request.cookies,
            "rid": request.request_id,
        }
    )


def test_request_fields_through_wsgi() -> None:
    with client_for(echo) as c:
        r = c.post(
            "/callback?q=1", content=b"abc", headers={"x-vercel-id": "iad1::abc", "cookie": "a=b"}
        )
    assert r.status_code == 200
    assert r.json() == {
        "method": "POST",
        "path": "/callback",
        "q": "1",
        "len": 3,
        "cookies": {"a": "b"},
        "rid": "iad1::abc",
    }
    assert r.headers["cache-control"] == "no-store"


def test_repeated_query_parameter_is_refused() -> None:
    with client_for(echo) as c:
        r = c.get("/x?q=1&q=2")
    assert r.status_code == 400
    assert "must appear once" in r.text


def test_oversize_body_is_refused_before_reading() -> None:
    read: list[int] = []

    class Stream(io.BytesIO):
        def read(self, size: int | None = -1) -> bytes:
            read.append(size or -1)
            return super().read(size)

    environ = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/webhook",
        "CONTENT_LENGTH": str(MAX_BODY_BYTES + 1),
        "wsgi.input": Stream(b"x" * 10),
    }
    with pytest.raises(HTTPError) as info:
        Request(environ).body()
    assert info.value.status == 413
    assert read == []


def test_oversize_body_without_length_is_refused() -> None:
    environ = {"REQUEST_METHOD": "POST", "wsgi.input": io.BytesIO(b"x" * (MAX_BODY_BYTES + 10))}
    with pytest.raises(HTTPError) as info:
        Request(environ).body()
    assert info.value.status == 413


def test_unhandled_exception_is_generic_500_without_detail() -> None:
    def boom(request: Request) -> Response:
        raise RuntimeError("vca_secret_in_exception")

    with client_for(boom) as c:
        r = c.post("/x")
    assert r.status_code == 500
    assert "vca_secret_in_exception" not in r.text
    assert r.json() == {"error": {"status": 500, "message": "Internal error."}}


def test_http_error_carries_status_and_headers() -> None:
    def nope(request: Request) -> Response:
        raise HTTPError(405, "Use POST.", headers={"Allow": "POST"})

    with client_for(nope) as c:
        r = c.get("/x")
    assert r.status_code == 405
    assert r.headers["allow"] == "POST"
    assert r.text.strip() == "Use POST."


def test_one_json_log_line_per_request(capsys: pytest.CaptureFixture[str]) -> None:
    with client_for(echo) as c:
        c.get(
            "/x",
            headers={"x-vercel-id": "fra1::req-1", "authorization": "Bearer abcdefghijklmnopq"},
        )
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines() if '"request"' in x]
    assert len(lines) == 1
    line = lines[0]
    assert line["function"] == "t"
    assert line["request_id"] == "fra1::req-1"
    assert line["status"] == 200
    assert line["kv_calls"] == 0
    assert isinstance(line["duration_ms"], float)
    assert "abcdefghijklmnopq" not in json.dumps(line)


def test_set_cookie_attributes() -> None:
    r = Response()
    r.set_cookie("s", "v", max_age=60, secure=False)
    cookie = r.header("set-cookie")
    assert cookie == "s=v; Path=/; Max-Age=60; SameSite=Lax; HttpOnly"


def test_head_has_no_body() -> None:
    with client_for(lambda r: Response.json({"a": 1})) as c:
        r = c.head("/x")
    assert r.status_code == 200
    assert r.content == b""
