"""A threaded WSGI server for the local stack.

Every local server (KV gateway, Vercel emulator, functions dev server) is a WSGI app;
this module runs one on a background thread so tests and `make dev` start and stop
them the same way.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server
from wsgiref.types import WSGIApplication

__all__ = ["RunningServer", "running", "start"]

log = logging.getLogger("dev.serve")


class _ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128


class _QuietHandler(WSGIRequestHandler):
    """wsgiref logs every request to stderr; the stack logs its own way."""

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s - %s", self.address_string(), format % args)

    def handle(self) -> None:
        # Clients that drop connections (tests, fault injection) are normal here.
        with contextlib.suppress(ConnectionResetError, BrokenPipeError):
            super().handle()


class RunningServer:
    """A WSGI app listening on a background thread."""

    def __init__(self, server: WSGIServer, thread: threading.Thread) -> None:
        self._server = server
        self._thread = thread

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def start(app: WSGIApplication, host: str = "127.0.0.1", port: int = 0) -> RunningServer:
    """Serve `app` on host:port (0 picks a free port) until `stop()`."""
    server = make_server(
        host, port, app, server_class=_ThreadingWSGIServer, handler_class=_QuietHandler
    )
    thread = threading.Thread(target=server.serve_forever, name=f"wsgi:{port}", daemon=True)
    thread.start()
    return RunningServer(server, thread)


@contextmanager
def running(
    app: WSGIApplication, host: str = "127.0.0.1", port: int = 0
) -> Iterator[RunningServer]:
    """Context-managed `start`, for tests."""
    srv = start(app, host, port)
    try:
        yield srv
    finally:
        srv.stop()
