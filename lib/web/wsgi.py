"""The function interface: WSGI in, a small Request/Response pair in the middle.

Vercel's Python runtime, the local dev server, `httpx.WSGITransport` in tests and
`vercel_runtime.vc_handler` in the conformance test all speak WSGI, so every
`api/*.py` exports `app = endpoint(handler, name=...)` and never touches `environ`.
The wrapper owns what every function needs once: a body size limit enforced before
reading, a request id, one JSON log line per request, and a generic 500 that never
echoes an exception (exceptions may carry secrets).
"""

from __future__ import annotations

import hmac
import json
import re
import time
from collections.abc import Callable, Iterable, Mapping
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs
from wsgiref.types import StartResponse, WSGIEnvironment

from lib.kv.client import start_counting, stop_counting
from lib.log import bind, get_logger, unbind
from lib.log import configure as configure_logging

__all__ = [
    "MAX_BODY_BYTES",
    "ExceptionHandler",
    "HTTPError",
    "Handler",
    "Request",
    "Response",
    "bearer_matches",
    "endpoint",
    "parse_cookies",
]

MAX_BODY_BYTES = 1024 * 1024

log = get_logger("http")


class HTTPError(Exception):
    """Raised by a handler to answer with `status` and a short, public message."""

    def __init__(
        self, status: int, message: str, *, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = dict(headers or {})


class Request:
    """A read-only view of one WSGI request."""

    def __init__(
        self, environ: WSGIEnvironment, *, max_body: int = MAX_BODY_BYTES, function: str = ""
    ) -> None:
        self._environ = environ
        self.function = function  # the endpoint's name, for its log lines
        self._max_body = max_body
        self._body: bytes | None = None
        self.method: str = environ.get("REQUEST_METHOD", "GET").upper()
        # Under a Vercel rewrite the function sees the original path; never route on it.
        self.path: str = environ.get("PATH_INFO", "") or "/"
        self.query: dict[str, list[str]] = parse_qs(
            environ.get("QUERY_STRING", ""), keep_blank_values=True
        )
        self.headers: dict[str, str] = {
            key[5:].replace("_", "-").lower(): value
            for key, value in environ.items()
            if key.startswith("HTTP_")
        }
        if environ.get("CONTENT_TYPE"):
            self.headers["content-type"] = environ["CONTENT_TYPE"]
        if environ.get("CONTENT_LENGTH"):
            self.headers["content-length"] = environ["CONTENT_LENGTH"]

    @property
    def request_id(self) -> str:
        return self.headers.get("x-vercel-id", "")[:128]

    @property
    def host(self) -> str:
        return self.headers.get("x-forwarded-host") or self.headers.get("host") or ""

    @property
    def is_local(self) -> bool:
        """Served to this machine (dev server, tests): cookies can't be `Secure` over http."""
        host = self.host.rsplit(":", 1)[0] if not self.host.startswith("[") else self.host
        return host in ("localhost", "127.0.0.1", "[::1]") or host.startswith("[::1]")

    def arg(self, name: str) -> str | None:
        """The single value of query parameter `name`; repeated parameters are refused."""
        values = self.query.get(name)
        if not values:
            return None
        if len(values) > 1:
            raise HTTPError(400, f"Query parameter '{name}' must appear once.")
        return values[0]

    @property
    def cookies(self) -> dict[str, str]:
        return parse_cookies(self.headers.get("cookie", ""))

    def body(self) -> bytes:
        """The raw body, refused with 413 before reading when it is larger than allowed."""
        if self._body is not None:
            return self._body
        stream = self._environ.get("wsgi.input")
        length_header = self.headers.get("content-length", "")
        if length_header:
            try:
                length = int(length_header)
            except ValueError:
                raise HTTPError(400, "Invalid Content-Length.") from None
            if length < 0:
                raise HTTPError(400, "Invalid Content-Length.")
            if length > self._max_body:
                raise HTTPError(413, "Request body too large.")
            data = stream.read(length) if stream is not None and length else b""
        else:
            # No length: read at most one byte past the limit to detect oversize bodies.
            data = stream.read(self._max_body + 1) if stream is not None else b""
            if len(data) > self._max_body:
                raise HTTPError(413, "Request body too large.")
        self._body = data
        return data

    def json(self) -> Any:
        try:
            return json.loads(self.body())
        except (ValueError, UnicodeDecodeError):
            raise HTTPError(400, "Body is not valid JSON.") from None
        except RecursionError:  # nested deeper than the parser goes: bad input, not a crash
            raise HTTPError(400, "Body is not valid JSON (nested too deeply).") from None

    def form(self) -> dict[str, list[str]]:
        try:
            return parse_qs(self.body().decode("utf-8"), keep_blank_values=True)
        except UnicodeDecodeError:
            raise HTTPError(400, "Form body is not UTF-8.") from None


class Response:
    """Status, headers and a byte body; built by the classmethods below."""

    def __init__(
        self,
        body: bytes = b"",
        status: int = 200,
        headers: Mapping[str, str] | None = None,
        content_type: str | None = None,
    ) -> None:
        self.body = body
        self.status = status
        self.headers: list[tuple[str, str]] = list((headers or {}).items())
        if content_type:
            self.headers.append(("Content-Type", content_type))
        self.headers.append(("Cache-Control", "no-store"))

    @classmethod
    def json(
        cls, data: Any, status: int = 200, headers: Mapping[str, str] | None = None
    ) -> Response:
        body = json.dumps(data, separators=(",", ":"), default=str).encode()
        return cls(body, status, headers, "application/json")

    @classmethod
    def html(
        cls, page: str, status: int = 200, headers: Mapping[str, str] | None = None
    ) -> Response:
        return cls(page.encode(), status, headers, "text/html; charset=utf-8")

    @classmethod
    def redirect(cls, location: str, status: int = 302) -> Response:
        return cls(b"", status, {"Location": location})

    def set_cookie(
        self,
        name: str,
        value: str,
        *,
        max_age: int,
        path: str = "/",
        secure: bool = True,
        http_only: bool = True,
        same_site: str = "Lax",
    ) -> None:
        parts = [f"{name}={value}", f"Path={path}", f"Max-Age={max_age}", f"SameSite={same_site}"]
        if http_only:
            parts.append("HttpOnly")
        if secure:
            parts.append("Secure")
        self.headers.append(("Set-Cookie", "; ".join(parts)))

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None


Handler = Callable[[Request], Response]
ExceptionHandler = Callable[[Request, Exception], Response]
"""Turns one kind of failure into the function's answer; may raise `HTTPError`."""


_COOKIE_ESCAPE = re.compile(r"\\(?:([0-3][0-7]{2})|(.))", re.DOTALL)


def parse_cookies(header: str) -> dict[str, str]:
    """A Cookie header as browsers really send it, read leniently: browsers send back
    whatever a page's script stored, not only the strict grammar of RFC 6265 section 4.2.
    `;`-separated pairs, split at the first `=`, names and values stripped, a pair without
    `=` a value with an empty name (how browsers store `document.cookie = "flag"`), a
    DQUOTE-wrapped value unwrapped (with the escapes Python's own cookie writer uses), and
    the last of a repeated name kept.

    `http.cookies.SimpleCookie` refuses the whole header when one pair is odd (a space in
    a value, JSON, a bare flag), and a person with any such cookie on the domain would lose
    the install state and the configuration session. See
    https://www.rfc-editor.org/rfc/rfc6265#section-4.2.1 and
    https://www.rfc-editor.org/rfc/rfc6265#section-5.4, and Starlette's `cookie_parser`
    (https://github.com/encode/starlette/blob/master/starlette/requests.py), which reads
    cookies the same way.
    """
    cookies: dict[str, str] = {}
    for chunk in header.split(";"):
        name, eq, value = chunk.partition("=")
        if not eq:
            name, value = "", name
        name, value = name.strip(), value.strip()
        if name or value:
            cookies[name] = _unquote(value)
    return cookies


def _unquote(value: str) -> str:
    if len(value) < 2 or value[0] != '"' or value[-1] != '"':
        return value
    return _COOKIE_ESCAPE.sub(lambda m: chr(int(m[1], 8)) if m[1] else m[2], value[1:-1])


def _status_line(status: int) -> str:
    try:
        return f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        return f"{status} Status"


def _error_response(request: Request, status: int, message: str) -> Response:
    if "application/json" in request.headers.get("accept", "") or request.method != "GET":
        return Response.json({"error": {"status": status, "message": message}}, status)
    return Response(message.encode() + b"\n", status, content_type="text/plain; charset=utf-8")


def endpoint(
    handler: Handler,
    *,
    name: str,
    exception_handlers: Mapping[type[Exception], ExceptionHandler] | None = None,
) -> Callable[[WSGIEnvironment, StartResponse], Iterable[bytes]]:
    """Wrap `handler` as a WSGI app that logs one line per request and never leaks a 500.

    `exception_handlers` maps failures the handler lets through to answers, the way
    Starlette's exception handlers do (the nearest class in the exception's MRO wins; see
    https://www.starlette.io/exceptions/): configuration and storage failures are mapped
    here once per function instead of in a `try` around every handler body. An unmapped
    exception is logged and answered with a bare 500.
    """
    handlers = dict(exception_handlers or {})

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        configure_logging()
        started = time.perf_counter()
        request = Request(environ, function=name)
        scope = bind(request_id=request.request_id, path=request.path)  # on every line
        counter = start_counting()
        try:
            response = _answer(request, handler, handlers)
        finally:
            kv_calls = stop_counting(counter)
        log.info(
            "request",
            extra={
                "function": name,
                "request_id": request.request_id,
                "method": request.method,
                "status": response.status,
                "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                "kv_calls": kv_calls,
            },
        )
        unbind(scope)
        headers = [*response.headers, ("Content-Length", str(len(response.body)))]
        start_response(_status_line(response.status), headers)
        return [response.body] if request.method != "HEAD" else [b""]

    return app


def _answer(
    request: Request, handler: Handler, handlers: Mapping[type[Exception], ExceptionHandler]
) -> Response:
    try:
        try:
            return handler(request)
        except HTTPError:
            raise
        except Exception as exc:
            mapped = next((handlers[c] for c in type(exc).__mro__ if c in handlers), None)
            if mapped is None:
                raise
            return mapped(request, exc)
    except HTTPError as exc:
        response = _error_response(request, exc.status, exc.message)
        response.headers.extend(exc.headers.items())
        return response
    except Exception:
        log.exception("unhandled error", extra={"function": request.function})
        return _error_response(request, 500, "Internal error.")


def bearer_matches(request: Request, expected: str | None) -> bool:
    """Constant-time check of `Authorization: Bearer <expected>`. An unset secret never matches."""
    header = request.headers.get("authorization", "")
    scheme, _, presented = header.partition(" ")
    if not expected or scheme.lower() != "bearer" or not presented:
        return False
    return hmac.compare_digest(presented.strip().encode(), expected.encode())
