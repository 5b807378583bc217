"""Route templates (`/v10/projects/{idOrName}/env`) to handlers.

The template string is also the route's name: call counts, fault rules and rate-limit
buckets are keyed by "METHOD template", so a test can ask how many times the client hit
`POST /v10/projects/{idOrName}/env` whatever the project.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from dev.emulator.wsgi import Request, Response

__all__ = ["Handler", "Match", "MethodNotAllowed", "Router"]

Handler = Callable[[Request, dict[str, str]], Response]
_PARAM = re.compile(r"\{(\w+)\}")


@dataclass(frozen=True)
class Match:
    key: str  # "METHOD template"
    handler: Handler
    params: dict[str, str]


class MethodNotAllowed(Exception):
    def __init__(self, allowed: list[str], template: str) -> None:
        super().__init__(", ".join(allowed))
        self.allowed = allowed
        self.template = template


class Router:
    def __init__(self) -> None:
        self._routes: list[tuple[re.Pattern[str], str, dict[str, Handler]]] = []

    def add(self, method: str, template: str, handler: Handler) -> None:
        for _, existing, handlers in self._routes:
            if existing == template:
                handlers[method.upper()] = handler
                return
        regex = "^" + _PARAM.sub(lambda m: f"(?P<{m.group(1)}>[^/]+)", template) + "/?$"
        self._routes.append((re.compile(regex), template, {method.upper(): handler}))

    def match(self, method: str, path: str) -> Match | None:
        """The route for this request; None if no template fits the path.

        Raises MethodNotAllowed when the path exists but not for this method.
        """
        for pattern, template, handlers in self._routes:
            found = pattern.match(path)
            if found is None:
                continue
            handler = handlers.get(method.upper())
            if handler is None:
                raise MethodNotAllowed(sorted(handlers), template)
            params = dict(found.groupdict())  # PATH_INFO arrives unquoted
            return Match(f"{method.upper()} {template}", handler, params)
        return None
