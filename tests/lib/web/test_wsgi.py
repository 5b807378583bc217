import io
import json
from collections.abc import Callable

import httpx
import pytest

from lib.web.wsgi import (
    MAX_BODY_BYTES,
    ExceptionHandler,
    HTTPError,
    Request,
    Response,
    endpoint,
)


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


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{", "Body is not valid JSON."),
        (b"\xff\xfe", "Body is not valid JSON."),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    ],
)
def test_a_body_that_is_not_json_is_a_400_whatever_the_parser_does(
    body: bytes, message: str
) -> None:
    def parse(request: Request) -> Response:
        return Response.json({"got": type(request.json()).__name__})

    with client_for(parse) as c:
        r = c.post("/x", content=body)
    assert r.status_code == 400
    assert message in r.text


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


# -- cookies: one odd cookie on the domain must not cost us ours --------------------------------


def cookies_of(header: str) -> dict[str, str]:
    """What a function sees of a Cookie header, through the WSGI environ as Vercel's
    runtime builds it (header bytes decoded as latin-1, PEP 3333)."""
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/", "HTTP_COOKIE": header}
    return Request(environ).cookies


@pytest.mark.parametrize(
    "header",
    [
        # the bug: http.cookies.SimpleCookie drops every cookie after (or before) these
        "theme=dark mode; vi_session=abc",
        "vi_session=abc; theme=dark mode",
        'prefs={"a":1,"b":[2,3]}; vi_session=abc',  # JSON written by a front-end library
        "flag; vi_session=abc",  # no "=": a bare value (document.cookie = "flag")
        "=orphan; vi_session=abc",  # empty name
        "vi_session=abc; empty=",  # empty value
        "name=caf\xc3\xa9; vi_session=abc",  # UTF-8 bytes, seen as latin-1 by WSGI
        "vi_session=abc;;; ;",  # stray separators
        "  vi_session = abc  ",  # spaces around name and value
        "a=b=c; vi_session=abc",  # "=" inside a value
        'q="unterminated; vi_session=abc',  # a quote that never closes
        "_ga=GA1.2.123.456; __Host-x=1; vi_session=abc; _gid=GA1.2.7",
        "tab=\tx; vi_session=abc",
    ],
)
def test_one_odd_cookie_never_hides_the_others(header: str) -> None:
    assert cookies_of(header)["vi_session"] == "abc"


def test_cookie_values_as_browsers_send_them() -> None:
    got = cookies_of(
        'theme=dark mode; q="quoted"; esc="a\\"b\\\\c\\073d"; empty=; a=b=c; flag; name=caf\xc3\xa9'
    )
    assert got["theme"] == "dark mode"
    assert got["q"] == "quoted"  # RFC 6265 allows a DQUOTE-wrapped value; quotes dropped
    assert got["esc"] == 'a"b\\c;d'  # the octal and backslash escapes Python's own writer uses
    assert got["empty"] == ""
    assert got["a"] == "b=c"
    assert got[""] == "flag"  # a value without a name, as browsers store it
    assert got["name"] == "caf\xc3\xa9"  # bytes kept as received, never a crash


def test_a_repeated_cookie_name_keeps_the_last_value() -> None:
    """Browsers send one name twice when two paths or domains set it; the last one wins,
    as with Python's SimpleCookie before (and Starlette's parser)."""
    assert cookies_of("vi_session=old; other=1; vi_session=new")["vi_session"] == "new"


def test_no_cookie_header_is_no_cookies() -> None:
    assert cookies_of("") == {}
    assert Request({"REQUEST_METHOD": "GET", "PATH_INFO": "/"}).cookies == {}


# -- exception handlers: failures mapped once per function ------------------------------------


class Base(Exception):
    pass


class Child(Base):
    pass


def test_exception_handlers_map_by_the_nearest_class() -> None:
    def fail(request: Request) -> Response:
        raise Child("boom")

    seen: list[str] = []

    def on_base(request: Request, exc: Exception) -> Response:
        seen.append(f"{request.function}:{type(exc).__name__}")
        return Response.json({"mapped": True}, 503, {"Retry-After": "10"})

    app = endpoint(fail, name="t", exception_handlers={Base: on_base})
    with httpx.Client(transport=httpx.WSGITransport(app=app), base_url="http://t") as c:
        r = c.get("/")
    assert (r.status_code, r.json(), r.headers["retry-after"]) == (503, {"mapped": True}, "10")
    assert seen == ["t:Child"]


def test_an_exception_handler_may_answer_with_an_http_error() -> None:
    def fail(request: Request) -> Response:
        raise KeyError("x")

    def refuse(request: Request, exc: Exception) -> Response:
        raise HTTPError(500, "Integration misconfigured.")

    app = endpoint(fail, name="t", exception_handlers={KeyError: refuse})
    with httpx.Client(transport=httpx.WSGITransport(app=app), base_url="http://t") as c:
        r = c.get("/", headers={"accept": "application/json"})
    assert r.status_code == 500
    assert r.json() == {"error": {"status": 500, "message": "Integration misconfigured."}}


def test_unmapped_failures_and_failing_handlers_are_a_bare_500() -> None:
    def fail(request: Request) -> Response:
        raise ValueError("secret detail")

    def broken(request: Request, exc: Exception) -> Response:
        raise RuntimeError("handler bug")

    maps: list[dict[type[Exception], ExceptionHandler]] = [{}, {ValueError: broken}]
    for handlers in maps:
        app = endpoint(fail, name="t", exception_handlers=handlers)
        with httpx.Client(transport=httpx.WSGITransport(app=app), base_url="http://t") as c:
            r = c.get("/")
        assert r.status_code == 500
        assert "secret" not in r.text
        assert "handler bug" not in r.text
