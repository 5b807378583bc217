"""Vercel's error shape: `{"error": {"code", "message", ...extra}}` (vercel-api.md §7).

Extra fields (`invalidToken`, `limit`, `key`, `target`, ...) sit next to code and message,
as Vercel sends them and as the CLI copies them onto its exceptions.
"""

from __future__ import annotations

from typing import Any

from dev.emulator.wsgi import Response

__all__ = ["ApiError", "bad_request", "forbidden", "not_found"]


class ApiError(Exception):
    """An error answer; raise it anywhere in a REST handler."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        headers: list[tuple[str, str]] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or []
        self.extra = extra

    def body(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, **self.extra}

    def response(self) -> Response:
        return Response.json({"error": self.body()}, self.status, self.headers)


def bad_request(message: str, **extra: Any) -> ApiError:
    return ApiError(400, "bad_request", message, **extra)


def forbidden(message: str, **extra: Any) -> ApiError:
    return ApiError(403, "forbidden", message, **extra)


def not_found(message: str, **extra: Any) -> ApiError:
    return ApiError(404, "not_found", message, **extra)
