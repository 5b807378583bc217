"""The functions dev server: Vercel's front door, locally.

It answers the way a deployment does, so what works here works there: `vercel.json`
redirects, then its `headers`, then the filesystem (`public/` at the root, `api/*.py` as
functions), then its `rewrites`, in Vercel's order. Functions are found with Vercel's
rules (no `_`/`.` path segments; an `app`/`application` binding or a `class handler`
at top level, first one wins) and loaded the way its Python runtime loads them: by file
path as module `api.<name>`, the project root on `sys.path`. Under a rewrite the function
sees the ORIGINAL path, as on Vercel, and it gets the request body whole with its
`Content-Length`, a chunked body de-chunked, as Vercel's Python runtime hands it over.

Not emulated (the project does not use them): `routes`, `has`/`missing` conditions,
ASGI apps, `[param].py` files, external rewrite destinations. A `vercel.json` that uses
one is refused at start-up rather than served differently from production. Code and
`vercel.json` are read once: restart `make dev` after changing them.
"""

from __future__ import annotations

import ast
import http.client
import importlib.util
import inspect
import json
import mimetypes
import re
import secrets
import sys
import threading
import traceback
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from io import BytesIO
from pathlib import Path
from types import ModuleType
from typing import Any, cast
from urllib.parse import parse_qsl, quote, urlencode, urlsplit
from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

__all__ = ["Function", "Route", "compile_source", "create_app", "discover_functions"]

_ENTRYPOINT_NAMES = ("app", "application")


# --- functions: discovery and loading -------------------------------------------------


@dataclass(frozen=True)
class Function:
    """One Vercel Function: an `api/**/*.py` file with an entrypoint."""

    path: Path  # absolute
    module: str  # "api.health", as the runtime names it
    route: str  # "/api/health" ("/api" for api/index.py)
    variable: str  # the entrypoint binding: "app", "application" or "handler"

    @property
    def name(self) -> str:
        """`health` for api/health.py, `teams.sync` for api/teams/sync.py."""
        return self.module.removeprefix("api.")


def _entrypoint(source: str) -> str | None:
    """Vercel's static entrypoint check: the first top-level match wins."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return None
    for node in tree.body:
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, ast.AnnAssign):
            targets = [node.target]
        for target in targets:
            if isinstance(target, ast.Name) and target.id in _ENTRYPOINT_NAMES:
                return target.id
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            if node.name in _ENTRYPOINT_NAMES:
                return node.name
        elif isinstance(node, ast.ImportFrom):
            for alias in node.names:
                bound = alias.asname or alias.name
                if bound in _ENTRYPOINT_NAMES:
                    return bound
        elif isinstance(node, ast.ClassDef) and node.name.lower() == "handler":
            return node.name
    return None


def _function_at(root: Path, file: Path) -> Function | None:
    api = root / "api"
    try:
        rel = file.relative_to(api)
    except ValueError:
        return None
    if file.suffix != ".py" or any(p.startswith(("_", ".")) for p in rel.parts):
        return None
    if not file.is_file():
        return None
    variable = _entrypoint(file.read_text(encoding="utf-8"))
    if variable is None:
        return None
    parts = rel.with_suffix("").parts
    route = "/api/" + "/".join(parts)
    if parts[-1] == "index":
        route = "/api" + "".join("/" + p for p in parts[:-1])
    return Function(file.resolve(), "api." + ".".join(parts), route, variable)


def discover_functions(root: Path) -> list[Function]:
    """Every function under `root/api`, sorted by module name."""
    found = (_function_at(root, f) for f in sorted((root / "api").rglob("*.py")))
    return sorted((f for f in found if f is not None), key=lambda f: f.module)


def _load_module(fn: Function) -> ModuleType:
    """What `vercel_runtime.resolver.import_module` does."""
    spec = importlib.util.spec_from_file_location(fn.module, fn.path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {fn.path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[fn.module] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(fn.module, None)
        raise
    return module


def _positional_params(obj: object) -> int | None:
    try:
        params = inspect.signature(cast(Callable[..., Any], obj)).parameters.values()
    except (TypeError, ValueError):
        return None
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return sum(1 for p in params if p.kind in kinds and p.default is inspect.Parameter.empty)


def _as_wsgi(fn: Function, module: ModuleType) -> WSGIApplication:
    """Interpret the export the way the runtime's `detect_app_type` does (WSGI only)."""
    obj = getattr(module, fn.variable, None)
    if obj is None:
        raise TypeError(f'missing variable "{fn.variable}" in {fn.module}')
    is_class = isinstance(obj, type) and issubclass(obj, BaseHTTPRequestHandler)
    if fn.variable.lower() == "handler" and is_class:
        return _handler_class_app(obj)
    if callable(getattr(obj, "asgi", None)) or inspect.iscoroutinefunction(obj):
        raise TypeError(f"{fn.module}:{fn.variable} is ASGI; the dev server serves WSGI only")
    if not callable(obj) or _positional_params(obj) != 2:
        raise TypeError(f"{fn.module}:{fn.variable} is not a WSGI app(environ, start_response)")
    return cast(WSGIApplication, obj)


class _Functions:
    """Each function is imported on its first request (a cold start) and then kept."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._apps: dict[Path, WSGIApplication] = {}

    def app(self, fn: Function) -> WSGIApplication:
        with self._lock:
            app = self._apps.get(fn.path)
            if app is None:
                app = self._apps[fn.path] = _as_wsgi(fn, _load_module(fn))
            return app


# --- the handler-class interface, run over WSGI ---------------------------------------


class _LoopbackSocket:
    """Enough of a socket for `StreamRequestHandler`: reads the request, collects output."""

    def __init__(self, request: bytes) -> None:
        self._request = request
        self.output = bytearray()

    def makefile(self, mode: str, *_args: Any) -> BytesIO:
        return BytesIO(self._request if "r" in mode else b"")

    def sendall(self, data: bytes) -> None:
        self.output += data

    def settimeout(self, _value: float | None) -> None:
        pass

    def setsockopt(self, *_args: Any) -> None:
        pass


class _Replay:
    """Enough of a socket for `http.client.HTTPResponse` to parse what the handler wrote."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    def makefile(self, _mode: str, *_args: Any) -> BytesIO:
        return BytesIO(self._data)


_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "upgrade"}


def _handler_class_app(cls: type[BaseHTTPRequestHandler]) -> WSGIApplication:
    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        target = quote(environ.get("PATH_INFO", "/"), safe="/:@!$&'()*+,;=-._~%")
        if environ.get("QUERY_STRING"):
            target += "?" + environ["QUERY_STRING"]
        lines = [f"{environ['REQUEST_METHOD']} {target} HTTP/1.1"]
        lines += [f"{name}: {value}" for name, value in _request_headers(environ)]
        body = _read_body(environ)
        sock = _LoopbackSocket(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        client = (environ.get("REMOTE_ADDR") or "127.0.0.1", 0)
        cls(cast(Any, sock), client, cast(Any, None))
        response = http.client.HTTPResponse(cast(Any, _Replay(bytes(sock.output))))
        response.begin()
        payload = response.read()
        headers = [(k, v) for k, v in response.getheaders() if k.lower() not in _HOP_BY_HOP]
        start_response(f"{response.status} {response.reason}", headers)
        return [payload]

    return app


def _request_headers(environ: WSGIEnvironment) -> list[tuple[str, str]]:
    headers = [
        (key[5:].replace("_", "-").title(), str(value))
        for key, value in environ.items()
        if key.startswith("HTTP_")
    ]
    for key, name in (("CONTENT_TYPE", "Content-Type"), ("CONTENT_LENGTH", "Content-Length")):
        if environ.get(key):
            headers.append((name, environ[key]))
    return headers


def _read_body(environ: WSGIEnvironment) -> bytes:
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    return environ["wsgi.input"].read(length) if length > 0 else b""


# The runtime's bounds on a chunked body (vercel-runtime's `read_wsgi_request_body`).
_MAX_CHUNKED_BODY_BYTES = 100 * 1024 * 1024
_MAX_CHUNK_LINE = 65536
_MAX_TRAILER_BYTES = 8 * 1024


def _request_body(environ: WSGIEnvironment) -> bytes:
    """The request body as Vercel's Python runtime hands it to a WSGI app.

    WSGI has no portable chunked input (PEP 3333), so the runtime reads the body itself:
    `Content-Length` bytes, or a de-chunked `Transfer-Encoding: chunked` body, or
    nothing; both framings at once are refused (RFC 9112 section 6.3, request smuggling).
    https://peps.python.org/pep-3333/#input-and-error-streams
    https://www.rfc-editor.org/rfc/rfc9112#section-6.3
    """
    stream = environ["wsgi.input"]
    length = environ.get("CONTENT_LENGTH") or None
    chunked = "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
    if length is not None and chunked:
        raise ValueError("both Content-Length and Transfer-Encoding: chunked")
    if length is not None:
        try:
            size = int(length)
        except ValueError:
            raise ValueError(f"invalid Content-Length {length!r}") from None
        if size < 0:
            raise ValueError(f"invalid Content-Length {length!r}")
        return bytes(stream.read(size)) if size else b""
    if not chunked:
        return b""
    chunks: list[bytes] = []
    total = 0
    while True:
        line = stream.readline(_MAX_CHUNK_LINE)
        if not line:
            raise ValueError("the chunked body ended before its last chunk")
        token = line.split(b";", 1)[0].strip()
        try:
            size = int(token, 16)
        except ValueError:
            raise ValueError(f"invalid chunk size {token[:20]!r}") from None
        if size < 0:
            raise ValueError(f"invalid chunk size {token[:20]!r}")
        if size == 0:
            trailers = 0
            while (trailer := stream.readline(_MAX_CHUNK_LINE)) not in (b"\r\n", b"\n", b""):
                trailers += len(trailer)
                if trailers > _MAX_TRAILER_BYTES:
                    raise ValueError("chunked trailers too large")
            return b"".join(chunks)
        total += size
        if total > _MAX_CHUNKED_BODY_BYTES:
            raise ValueError("chunked body too large")
        data = stream.read(size)
        if len(data) != size:
            raise ValueError("the chunked body ended inside a chunk")
        chunks.append(bytes(data))
        stream.readline(_MAX_CHUNK_LINE)  # the CRLF after the chunk


# --- vercel.json routing ---------------------------------------------------------------

_DEFAULT_SEGMENT = "[^/]+?"
_NAME = re.compile(r"[A-Za-z0-9_]+")


def _read_group(source: str, start: int) -> tuple[str, int]:
    """The `(...)` pattern at `start` (balanced), and the index after it."""
    depth, i = 0, start
    while i < len(source):
        char = source[i]
        if char == "\\":
            i += 2
            continue
        if char == "(":
            depth += 1
            if source[i + 1 : i + 2] != "?" and depth > 1:
                raise ValueError(f"capturing group inside a pattern in {source!r}; use (?:...)")
        elif char == ")":
            depth -= 1
            if depth == 0:
                return source[start + 1 : i], i + 1
        i += 1
    raise ValueError(f"unbalanced parenthesis in {source!r}")


def compile_source(source: str) -> tuple[re.Pattern[str], tuple[str, ...]]:
    """A `vercel.json` `source` as a regex, the way Vercel compiles it.

    Vercel uses path-to-regexp 6 with `strict`, `sensitive` and delimiter `/`. This
    covers its parameter syntax: `:name`, `:name(regex)`, unnamed `(regex)` groups,
    the `?`/`*`/`+` modifiers, and `\\` escapes; `{...}` groups are refused. Returns the
    regex and the key names, capture group by capture group; unnamed keys are "0", "1"…
    """
    out, literal, keys = ["^"], "", []
    i, unnamed = 0, 0
    while i < len(source):
        char = source[i]
        if char == "\\" and i + 1 < len(source):
            literal += source[i + 1]
            i += 2
            continue
        if char in "{}":
            raise ValueError(f"{{...}} groups are not supported by the dev server: {source!r}")
        if char in "*+?":
            raise ValueError(f"unexpected {char!r} at {i} in {source!r}")
        if char not in ":(":
            literal += char
            i += 1
            continue
        name, pattern = "", _DEFAULT_SEGMENT
        if char == ":":
            match = _NAME.match(source, i + 1)
            if not match:
                raise ValueError(f"missing parameter name at {i} in {source!r}")
            name, i = match.group(), match.end()
        if i < len(source) and source[i] == "(":
            pattern, i = _read_group(source, i)
        if not name:
            name, unnamed = str(unnamed), unnamed + 1
        modifier = ""
        if i < len(source) and source[i] in "*+?":
            modifier, i = source[i], i + 1
        prefix = ""
        if literal.endswith(("/", ".")):
            prefix, literal = literal[-1], literal[:-1]
        out.append(re.escape(literal))
        literal = ""
        keys.append(name)
        p = re.escape(prefix)
        if modifier in ("*", "+"):
            many = f"(?:{p}((?:{pattern})(?:{p}(?:{pattern}))*))"
            out.append(many + ("?" if modifier == "*" else ""))
        elif prefix:
            out.append(f"(?:{p}({pattern})){modifier}")
        else:
            out.append(f"({pattern}){modifier}")
    out.append(re.escape(literal) + "$")
    try:
        return re.compile("".join(out)), tuple(keys)
    except re.error as exc:
        raise ValueError(f"invalid pattern in {source!r}: {exc}") from None


_PLACEHOLDER = re.compile(r":([A-Za-z0-9_]+)[*+?]?|\$(\d+)")


def _fill(template: str, values: Mapping[str, str], groups: tuple[str, ...]) -> str:
    """Substitute `:name` and `$1` in a destination or header value."""

    def replace(m: re.Match[str]) -> str:
        if m.group(1) is not None:
            return values.get(m.group(1), m.group(0))
        index = int(m.group(2)) - 1
        return groups[index] if 0 <= index < len(groups) else ""

    return _PLACEHOLDER.sub(replace, template)


@dataclass(frozen=True)
class Route:
    """One compiled `vercel.json` entry: a source regex and what it does on a match."""

    pattern: re.Pattern[str]
    keys: tuple[str, ...]
    destination: str = ""
    status: int = 0  # redirects
    headers: tuple[tuple[str, str], ...] = ()

    @classmethod
    def from_source(cls, source: str, **kwargs: Any) -> Route:
        pattern, keys = compile_source(source)
        return cls(pattern, keys, **kwargs)

    def match(self, path: str) -> tuple[dict[str, str], tuple[str, ...]] | None:
        m = self.pattern.match(path)
        if m is None:
            return None
        groups = tuple(g or "" for g in m.groups())
        return dict(zip(self.keys, groups, strict=True)), groups

    def target(self, path: str, *, rewrite: bool) -> str | None:
        """The destination for `path`, or None when the source does not match."""
        matched = self.match(path)
        if matched is None:
            return None
        values, groups = matched
        dest = _fill(self.destination, values, groups)
        used = {m.group(1) for m in _PLACEHOLDER.finditer(urlsplit(self.destination).path)}
        named = {k: v for k, v in values.items() if not k.isdigit()}
        if rewrite and named and not used & named.keys():
            # Vercel passes source parameters the destination does not use as query.
            parts = urlsplit(dest)
            query = parse_qsl(parts.query, keep_blank_values=True)
            query += [(k, v) for k, v in named.items() if k not in dict(query)]
            dest = parts._replace(query=urlencode(query)).geturl()
        return dest


_CLEAN_URL_REDIRECTS = (
    (re.compile(r"^/(?:(.+)/)?index(?:\.html)?/?$"), "/{0}"),
    (re.compile(r"^/(.*)\.html/?$"), "/{0}"),
)
_UNSUPPORTED = ("routes", "trailingSlash")


@dataclass(frozen=True)
class _Config:
    clean_urls: bool = False
    redirects: tuple[Route, ...] = ()
    headers: tuple[Route, ...] = ()
    rewrites: tuple[Route, ...] = ()

    @classmethod
    def load(cls, path: Path) -> _Config:
        if not path.is_file():
            return cls()
        data = json.loads(path.read_text(encoding="utf-8"))
        for key in _UNSUPPORTED:
            if key in data:
                raise ValueError(f"{path.name}: '{key}' is not supported by the dev server")
        for entry in [*data.get("redirects", []), *data.get("rewrites", [])]:
            if "has" in entry or "missing" in entry:
                raise ValueError(f"{path.name}: has/missing conditions are not supported")
            if urlsplit(entry["destination"]).scheme:
                raise ValueError(f"{path.name}: external destinations are not supported")
        redirects = tuple(
            Route.from_source(
                r["source"],
                destination=r["destination"],
                status=r.get("statusCode") or (308 if r.get("permanent", True) else 307),
            )
            for r in data.get("redirects", [])
        )
        headers = tuple(
            Route.from_source(
                h["source"], headers=tuple((kv["key"], kv["value"]) for kv in h["headers"])
            )
            for h in data.get("headers", [])
        )
        rewrites = tuple(
            Route.from_source(r["source"], destination=r["destination"])
            for r in data.get("rewrites", [])
        )
        return cls(bool(data.get("cleanUrls")), redirects, headers, rewrites)


# --- the WSGI app ----------------------------------------------------------------------


@dataclass
class _Reply:
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""

    def has_header(self, name: str) -> bool:
        return any(k.lower() == name.lower() for k, _ in self.headers)


def _text(status: int, message: str) -> _Reply:
    phrase = HTTPStatus(status).phrase.upper().replace(" ", "_")
    body = f"{status}: {phrase}\n{message}\n".encode()
    return _Reply(status, [("Content-Type", "text/plain; charset=utf-8")], body)


def _content_type(file: Path) -> str:
    kind = mimetypes.guess_type(file.name)[0] or "application/octet-stream"
    if kind.startswith("text/") or kind in ("application/javascript", "application/json"):
        kind += "; charset=utf-8"
    return kind


class _DevServer:
    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.public = self.root / "public"
        self.config = _Config.load(self.root / "vercel.json")
        self.functions = _Functions()

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        reply = self.handle(environ)
        head = environ.get("REQUEST_METHOD", "GET").upper() == "HEAD"
        # wsgiref refuses hop-by-hop headers; the length is recomputed for the buffered body.
        skip = _HOP_BY_HOP | {"content-length"}
        headers = [(k, v) for k, v in reply.headers if k.lower() not in skip]
        headers.append(("Content-Length", str(len(reply.body))))
        status = f"{reply.status} {_phrase(reply.status)}"
        start_response(status, headers)
        return [b""] if head else [reply.body]

    def handle(self, environ: WSGIEnvironment) -> _Reply:
        path = environ.get("PATH_INFO") or "/"
        try:  # PEP 3333 hands over the raw bytes as latin-1; file names are UTF-8
            path = path.encode("latin-1").decode("utf-8")
        except UnicodeError:
            return _text(400, "Bad path encoding.")
        if "\x00" in path:
            return _text(400, "Bad path.")
        redirect = self._redirect(path, environ.get("QUERY_STRING", ""))
        if redirect is not None:
            return redirect
        extra = self._config_headers(path)
        reply = self._filesystem(path, environ, "")
        if reply is None:
            for route in self.config.rewrites:
                dest = route.target(path, rewrite=True)
                if dest is not None:
                    parts = urlsplit(dest)
                    reply = self._filesystem(parts.path or "/", environ, parts.query)
                    break
        if reply is None:
            reply = self._not_found()
        for name, value in extra:  # a function's own header wins, as on Vercel
            if not reply.has_header(name):
                reply.headers.append((name, value))
        return reply

    def _redirect(self, path: str, query: str) -> _Reply | None:
        location: str | None = None
        status = 308
        if self.config.clean_urls:
            for pattern, template in _CLEAN_URL_REDIRECTS:
                m = pattern.match(path)
                if m:
                    location = template.format(m.group(1) or "")
                    break
            if location is None and path.startswith("/api/") and path.endswith(".py"):
                location = path.removesuffix(".py")
        for route in self.config.redirects if location is None else ():
            location = route.target(path, rewrite=False)
            if location is not None:
                status = route.status
                break
        if location is None:
            return None
        if query and "?" not in location:
            location += "?" + query
        return _Reply(status, [("Location", location)])

    def _config_headers(self, path: str) -> list[tuple[str, str]]:
        merged: dict[str, tuple[str, str]] = {}
        for route in self.config.headers:
            matched = route.match(path)
            if matched is not None:
                values, groups = matched
                for key, value in route.headers:
                    merged[key.lower()] = (key, _fill(value, values, groups))
        return list(merged.values())

    def _filesystem(self, path: str, environ: WSGIEnvironment, query: str) -> _Reply | None:
        """A static file or a function at `path`; `environ` keeps the original request."""
        if path == "/api" or path.startswith("/api/"):
            fn = self._function_for(path)
            if fn is None and path.endswith(".py"):  # Vercel serves /api/x.py as /api/x
                fn = self._function_for(path.removesuffix(".py"))
            return None if fn is None else self._invoke(fn, environ, query)
        file = self._static_file(path)
        if file is None:
            return None
        if environ.get("REQUEST_METHOD", "GET").upper() not in ("GET", "HEAD"):
            return _Reply(405, [("Allow", "GET, HEAD")], b"405: METHOD_NOT_ALLOWED\n")
        headers = [
            ("Content-Type", _content_type(file)),
            ("Cache-Control", "public, max-age=0, must-revalidate"),
        ]
        return _Reply(200, headers, file.read_bytes())

    def _function_for(self, path: str) -> Function | None:
        """`/api/x/y` is api/x/y.py, else api/x/y/index.py; `/api` is api/index.py."""
        parts = [p for p in path.split("/")[2:] if p]
        if any(p in ("..", ".") or "\\" in p for p in parts):
            return None
        api = self.root / "api"
        if parts:
            fn = _function_at(self.root, api.joinpath(*parts[:-1], parts[-1] + ".py"))
            if fn is not None:
                return fn
        return _function_at(self.root, api.joinpath(*parts, "index.py"))

    def _static_file(self, path: str) -> Path | None:
        if not self.public.is_dir():
            return None
        rel = path.lstrip("/")
        if any(p == ".." for p in rel.replace("\\", "/").split("/")):
            return None
        candidates = [self.public / rel]
        if self.config.clean_urls and rel and not rel.endswith("/"):
            candidates.append(self.public / (rel + ".html"))
        for candidate in candidates:
            file = candidate / "index.html" if candidate.is_dir() else candidate
            try:
                resolved = file.resolve()
            except (OSError, RuntimeError):
                continue
            if resolved.is_relative_to(self.public.resolve()) and resolved.is_file():
                return resolved
        return None

    def _not_found(self) -> _Reply:
        page = self._static_file("/404.html")
        if page is not None:
            return _Reply(404, [("Content-Type", _content_type(page))], page.read_bytes())
        return _text(404, "The page could not be found.")

    def _invoke(self, fn: Function, environ: WSGIEnvironment, query: str) -> _Reply:
        env = dict(environ)
        env["SCRIPT_NAME"] = ""
        env["QUERY_STRING"] = "&".join(q for q in (environ.get("QUERY_STRING", ""), query) if q)
        # What Vercel's proxy sets (and never takes from the client).
        env["HTTP_X_VERCEL_ID"] = f"dev1::{secrets.token_hex(6)}"
        env["HTTP_X_FORWARDED_HOST"] = environ.get("HTTP_HOST", "127.0.0.1")
        env["HTTP_X_FORWARDED_PROTO"] = environ.get("wsgi.url_scheme", "http")
        env["HTTP_X_FORWARDED_FOR"] = env["HTTP_X_REAL_IP"] = environ.get("REMOTE_ADDR", "")
        # The function gets the whole body up front, with its length, as on Vercel: a
        # chunked body is de-chunked (otherwise a reader waits for an EOF that never comes
        # and then sees the chunk framing), and Transfer-Encoding is not passed on.
        try:
            body = _request_body(environ)
        except ValueError as exc:
            return _text(400, f"Invalid request body: {exc}.")
        env.pop("HTTP_TRANSFER_ENCODING", None)
        env["CONTENT_LENGTH"] = str(len(body))
        env["wsgi.input"] = BytesIO(body)
        try:
            app = self.functions.app(fn)
            return _call(app, env)
        except Exception:
            sys.stderr.write(f"dev server: {fn.module} failed\n{traceback.format_exc()}")
            sys.stderr.flush()
            return _text(500, f"Function {fn.module} raised an exception; see the dev server log.")


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Status"


def _call(app: WSGIApplication, environ: WSGIEnvironment) -> _Reply:
    """Run a WSGI app to completion and buffer its response, as Vercel's Lambda bridge does."""
    started: list[tuple[str, list[tuple[str, str]]]] = []
    chunks: list[bytes] = []

    def start_response(
        status: str, headers: list[tuple[str, str]], exc_info: Any = None
    ) -> Callable[[bytes], object]:
        if exc_info is not None and started:
            raise exc_info[1].with_traceback(exc_info[2])
        started[:] = [(status, list(headers))]
        return chunks.append

    result = app(environ, start_response)
    try:
        for chunk in result:
            chunks.append(chunk)
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
    if not started:
        raise RuntimeError("the function returned without calling start_response")
    status, headers = started[0]
    return _Reply(int(status.split(" ", 1)[0]), headers, b"".join(chunks))


def create_app(root: Path) -> WSGIApplication:
    """The dev server for the project at `root` (which goes on `sys.path`, as on Vercel)."""
    resolved = str(Path(root).resolve())
    if resolved not in sys.path:
        sys.path.insert(0, resolved)
    return _DevServer(Path(root))
