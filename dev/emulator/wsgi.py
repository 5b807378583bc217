"""Just enough WSGI: a parsed request, a buffered response, and an abrupt disconnect.

The emulator has three faces (REST API, install pages, control API) that share these
types; no framework, because the stack's rule is one WSGI server loop (dev/serve.py).
"""

from __future__ import annotations

import contextlib
import json
import socket
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, NoReturn
from urllib.parse import parse_qs

__all__ = ["Disconnect", "Request", "Response", "StartResponse", "abort_connection"]

# wsgiref's start_response; typed loosely because each server spells it differently.
StartResponse = Any

_MAX_BODY = 8 * 1024 * 1024


class Disconnect(Exception):
    """Drop the connection without an answer: `reset` sends a TCP RST, else a plain close."""

    def __init__(self, reset: bool) -> None:
        super().__init__("reset" if reset else "close")
        self.reset = reset


class Request:
    """One HTTP request, with the body read eagerly (bodies here are small JSON or forms)."""

    def __init__(self, environ: dict[str, Any]) -> None:
        self.environ = environ
        self.method: str = environ.get("REQUEST_METHOD", "GET").upper()
        self.path: str = environ.get("PATH_INFO", "") or "/"
        self.query_multi: dict[str, list[str]] = parse_qs(
            environ.get("QUERY_STRING", ""), keep_blank_values=True
        )
        self.query: dict[str, str] = {k: v[0] for k, v in self.query_multi.items()}
        self.headers: dict[str, str] = {
            k[5:].replace("_", "-").lower(): v for k, v in environ.items() if k.startswith("HTTP_")
        }
        if environ.get("CONTENT_TYPE"):
            self.headers["content-type"] = environ["CONTENT_TYPE"]
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        stream = environ.get("wsgi.input")
        self.body: bytes = stream.read(min(length, _MAX_BODY)) if length > 0 and stream else b""

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";")[0].strip().lower()

    def json(self) -> Any:
        """The JSON body; raises ValueError if it is not JSON."""
        return json.loads(self.body.decode("utf-8"))

    def form(self) -> dict[str, list[str]]:
        return parse_qs(self.body.decode("utf-8", "replace"), keep_blank_values=True)

    @property
    def bearer(self) -> str | None:
        header = self.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        return token.strip()


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)

    @classmethod
    def json(
        cls, data: Any, status: int = 200, headers: Iterable[tuple[str, str]] = ()
    ) -> Response:
        body = json.dumps(data, separators=(",", ":")).encode()
        return cls(status, body, [("Content-Type", "application/json; charset=utf-8"), *headers])

    @classmethod
    def html(cls, text: str, status: int = 200) -> Response:
        return cls(
            status,
            text.encode(),
            [
                ("Content-Type", "text/html; charset=utf-8"),
                ("Cache-Control", "no-store"),
                ("X-Content-Type-Options", "nosniff"),
                ("Referrer-Policy", "no-referrer"),
            ],
        )

    @classmethod
    def redirect(cls, location: str, status: int = 302) -> Response:
        return cls(status, b"", [("Location", location), ("Cache-Control", "no-store")])

    @classmethod
    def empty(cls, status: int = 204) -> Response:
        return cls(status, b"", [])

    def send(self, start_response: StartResponse) -> list[bytes]:
        try:
            reason = HTTPStatus(self.status).phrase
        except ValueError:
            reason = ""
        headers = [*self.headers, ("Content-Length", str(len(self.body)))]
        start_response(f"{self.status} {reason}".rstrip(), headers)
        return [self.body]


def abort_connection(environ: dict[str, Any], reset: bool) -> NoReturn:
    """Close the client's socket under wsgiref, then raise so wsgiref stays quiet.

    wsgiref swallows ConnectionResetError from the app and writes nothing; closing the
    socket first with SO_LINGER 0 turns the close into a TCP reset, which is what a
    client sees from a crashed load balancer. Without a reachable socket (another
    server), the plain close still happens when the server finishes the request.
    """
    sock = _socket_of(environ)
    with contextlib.suppress(OSError):
        if sock is not None and reset:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.close()
        elif sock is not None:
            sock.shutdown(socket.SHUT_RDWR)
    raise ConnectionResetError("emulated connection fault")


def _socket_of(environ: dict[str, Any]) -> socket.socket | None:
    stream = environ.get("wsgi.input")
    raw = getattr(stream, "raw", None)
    sock = getattr(raw, "_sock", None)
    return sock if isinstance(sock, socket.socket) else None
