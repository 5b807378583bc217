"""Structured logging that cannot leak secrets.

Every line is one JSON object. Redaction happens in the formatter, at the last moment
before a line leaves the process, so a secret that slips into a message, an argument
or an exception traceback is still masked. Two nets catch it: values registered as
secret (tokens, the client secret, keys, provisioned values) are replaced wherever
they appear, and fields whose names look secret are masked whatever their value.

Every line starts with `ts`, an ISO-8601 UTC timestamp to the millisecond, and carries
the fields bound to the current request (`bind`): the request id Vercel sends as
`x-vercel-id` and the path, so every line a request wrote can be found from one. The
binding is a `contextvars` variable, so it follows the request into the provisioning
fan-out's worker threads (`lib.provisioning.fanout` runs each task in a copy of the
caller's context) and never leaks into another request's thread.

Audit events are lines whose `msg` starts with "audit: " and whose `event` names what
happened (install, reinstall, uninstall, resync, rotation, sign-in, webhook_refused, …),
so an operator can filter on either.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
import threading
from collections import OrderedDict
from collections.abc import Mapping
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

__all__ = [
    "REDACTED",
    "bind",
    "configure",
    "get_logger",
    "redact",
    "register_secret",
    "set_level",
    "unbind",
]

REDACTED = "[redacted]"

# Secrets shorter than this are not registered: masking "a" everywhere would mangle
# every line while protecting nothing worth protecting.
_MIN_SECRET_LEN = 8
_SECRET_FIELD = re.compile(
    r"(token|secret|password|authorization|cookie|signature|api[_-]?key|sealed|^code$)", re.I
)
# Bearer credentials, even when we never saw their value.
_SECRET_PATTERNS = re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]{8,}")
# Sealed values (lib/crypto format v1.<key id>.<payload>): harmless without the key, but
# they have no business in a log either.
_SEALED = re.compile(r"\bv1\.[A-Za-z0-9_-]{1,32}\.[A-Za-z0-9_-]{24,}")

_lock = threading.Lock()
# Process-wide secrets (the client secret, admin tokens) stay registered for good. Secrets
# of installations (tokens, generated values) are many over a warm instance's life, so
# only the most recently used are kept: a request re-registers what it opens, which keeps
# its own secrets in the window for as long as it logs.
_MAX_RECENT = 256
_permanent: set[str] = set()
_recent: OrderedDict[str, None] = OrderedDict()
_secret_re: re.Pattern[str] | None = None
_stale = False  # the pattern is rebuilt once, at the next redact, not on every register


def register_secret(value: str | bytes | None, *, permanent: bool = False) -> None:
    """Mask `value` in every log line written from now on (process-wide).

    `permanent` for configuration secrets; others stay masked while recently used (the
    last 256), so memory stays bounded however many installations a process serves.
    """
    global _stale
    if value is None:
        return
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
    if len(text) < _MIN_SECRET_LEN:
        return
    with _lock:
        if text in _permanent:
            return
        if permanent:
            _recent.pop(text, None)
            _permanent.add(text)
            _stale = True
        elif text in _recent:
            _recent.move_to_end(text)
        else:
            _recent[text] = None
            if len(_recent) > _MAX_RECENT:
                _recent.popitem(last=False)
            _stale = True


def _pattern() -> re.Pattern[str] | None:
    global _secret_re, _stale
    if _stale:
        with _lock:
            if _stale:
                # Longest first, so a secret that contains another is masked whole.
                alternatives = sorted((*_permanent, *_recent), key=len, reverse=True)
                _secret_re = (
                    re.compile("|".join(re.escape(s) for s in alternatives))
                    if alternatives
                    else None
                )
                _stale = False
    return _secret_re


def redact(text: str) -> str:
    """Mask every registered secret and bearer credential in `text`."""
    pattern = _pattern()
    if pattern is not None:
        text = pattern.sub(REDACTED, text)
    text = _SEALED.sub(REDACTED, text)
    return _SECRET_PATTERNS.sub(lambda m: m.group(1) + REDACTED, text)


def _scrub(value: Any, key: str = "") -> Any:
    if key and _SECRET_FIELD.search(key) and value not in (None, "", 0, False):
        return REDACTED
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):
        return {str(k): _scrub(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub(v) for v in value]
    if isinstance(value, int | float | bool) or value is None:
        return value
    return redact(str(value))


_RESERVED = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}

# Fields every line of the current request carries (see `bind`).
_bound: contextvars.ContextVar[Mapping[str, Any]] = contextvars.ContextVar(
    "log_bound", default=MappingProxyType({})
)


def bind(**fields: Any) -> contextvars.Token[Mapping[str, Any]]:
    """Add `fields` to every line written in this context from now on (a request's id
    and path); pass the returned token to `unbind` when the request is answered."""
    return _bound.set(MappingProxyType({**_bound.get(), **fields}))


def unbind(token: contextvars.Token[Mapping[str, Any]]) -> None:
    """Forget what the matching `bind` added."""
    _bound.reset(token)


def _timestamp(created: float) -> str:
    """ISO-8601 in UTC to the millisecond, e.g. 2026-12-02T02:46:01.123Z."""
    moment = datetime.fromtimestamp(created, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class JsonFormatter(logging.Formatter):
    """One JSON object per record; `extra=` fields become top-level keys."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": _timestamp(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            **_bound.get(),
        }
        for key, value in record.__dict__.items():
            if key not in _RESERVED and not key.startswith("_"):
                line[key] = value
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(_scrub(line), default=str, separators=(",", ":"))


class _StdoutHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever `sys.stdout` is now (runtimes and test harnesses swap it)."""

    @property
    def stream(self) -> Any:
        return sys.stdout

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


_configured = False


def configure(level: str | int = "INFO") -> None:
    """Route the `integration` loggers to stdout as JSON. Idempotent."""
    global _configured
    with _lock:
        if _configured:
            return
        handler = _StdoutHandler()
        handler.setFormatter(JsonFormatter())
        root = logging.getLogger("integration")
        root.addHandler(handler)
        root.setLevel(level)
        root.propagate = False
        _configured = True


def set_level(level: str | int) -> None:
    """Apply LOG_LEVEL (settings load after the first request has configured logging)."""
    logging.getLogger("integration").setLevel(level)


def get_logger(name: str) -> logging.Logger:
    """A logger under the `integration` namespace."""
    return logging.getLogger(f"integration.{name}")
