"""A running emulator plus a stub integration (Redirect URL + Webhook URL) for tests.

`Receiver` is the integration's side: it records every request and answers webhooks
with scripted statuses. `Stack.install` gets a real token the way the integration does:
a code from the control API, exchanged at `/v2/oauth/access_token`.
"""

from __future__ import annotations

import json
import ssl
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from typing import Any
from urllib.parse import parse_qs

import httpx

from dev.emulator import Emulator, EmulatorConfig
from dev.emulator.config import DEFAULT_SCOPES
from dev.serve import RunningServer

TIMEOUT = httpx.Timeout(10.0)
# Loading the CA bundle costs ~50 ms per httpx.Client; every URL here is plain HTTP anyway.
_TLS = ssl.create_default_context()


@dataclass
class Captured:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class Receiver:
    """A WSGI stub: `/callback` answers 200, `/webhook` answers the next scripted status."""

    def __init__(self) -> None:
        self._lock = threading.Condition()
        self.requests: list[Captured] = []
        self.script: list[int] = []
        self.delay_s = 0.0

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self.script.clear()
            self.delay_s = 0.0

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        headers = {
            k[5:].replace("_", "-").lower(): v for k, v in environ.items() if k.startswith("HTTP_")
        }
        if environ.get("CONTENT_TYPE"):
            headers["content-type"] = environ["CONTENT_TYPE"]
        query = {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
        captured = Captured(environ["REQUEST_METHOD"], environ["PATH_INFO"], query, headers, body)
        status = 200
        with self._lock:  # recorded on arrival, so a slow answer never leaks into a later test
            if captured.path == "/webhook" and self.script:
                status = self.script.pop(0)
            delay = self.delay_s if captured.path == "/webhook" else 0.0
            self.requests.append(captured)
            self._lock.notify_all()
        if delay:
            time.sleep(delay)
        start_response(f"{status} X", [("Content-Type", "text/plain"), ("Content-Length", "2")])
        return [b"ok"]

    def webhooks(self) -> list[Captured]:
        with self._lock:
            return [r for r in self.requests if r.path == "/webhook"]

    def wait_webhooks(self, count: int, timeout: float = 5.0) -> list[Captured]:
        deadline = time.monotonic() + timeout
        with self._lock:
            while len([r for r in self.requests if r.path == "/webhook"]) < count:
                remaining = deadline - time.monotonic()
                assert remaining > 0, f"expected {count} webhook requests"
                self._lock.wait(remaining)
        return self.webhooks()


@dataclass(frozen=True)
class Installation:
    configuration_id: str
    team_id: str | None
    token: str


@dataclass
class Stack:
    emulator: Emulator
    server: RunningServer
    receiver: Receiver
    receiver_server: RunningServer
    baseline: EmulatorConfig
    clients: list[httpx.Client] = field(default_factory=list)
    _control: httpx.Client | None = None

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def config(self) -> EmulatorConfig:
        return self.emulator.config

    def restore(self) -> None:
        """Baseline settings, a freshly seeded world, an empty receiver."""
        self.emulator.configure(
            **{f.name: getattr(self.baseline, f.name) for f in fields(self.baseline)}
        )
        self.emulator.reset()
        self.receiver.reset()

    def client(self, **kwargs: Any) -> httpx.Client:
        client = httpx.Client(base_url=self.url, timeout=TIMEOUT, verify=_TLS, **kwargs)
        self.clients.append(client)
        return client

    def control(self, method: str, path: str, **kwargs: Any) -> Any:
        if self._control is None:
            self._control = httpx.Client(base_url=self.url, timeout=TIMEOUT, verify=_TLS)
        response = self._control.request(method, f"/_emulator{path}", **kwargs)
        assert response.is_success, (response.status_code, response.text)
        return response.json()

    def state(self) -> dict[str, Any]:
        return dict(self.control("GET", "/state"))

    def team(self) -> dict[str, Any]:
        return dict(self.state()["teams"][0])

    def user(self) -> dict[str, Any]:
        return dict(self.state()["user"])

    def projects_of(self, account_id: str) -> list[dict[str, Any]]:
        return [p for p in self.state()["projects"] if p["accountId"] == account_id]

    def exchange(self, code: str, **overrides: str) -> httpx.Response:
        form = {
            "client_id": self.config.client_id,
            "client_secret": self.config.client_secret,
            "code": code,
            "redirect_uri": self.config.redirect_uri,
            **overrides,
        }
        return self.client().post("/v2/oauth/access_token", data=form)

    def install(
        self, scope: str, selection: str = "all", projects: Iterable[str] = ()
    ) -> Installation:
        minted = self.control(
            "POST",
            "/oauth/code",
            json={"scope": scope, "projectSelection": selection, "projects": list(projects)},
        )
        response = self.exchange(minted["code"])
        assert response.status_code == 200, response.text
        token = response.json()
        return Installation(token["installation_id"], token["team_id"], token["access_token"])

    def grant_configuration_write(self, installation: Installation) -> None:
        """The default grant reads configurations (as the product asks); deleting one
        through the API needs write access, which the owner confirms here."""
        scopes = [*DEFAULT_SCOPES, "read-write:integration-configuration"]
        path = f"/configurations/{installation.configuration_id}/scopes/confirm"
        self.control("POST", path, json={"scopes": scopes})

    def api(self, installation: Installation, *, team_id: bool = True) -> httpx.Client:
        """A REST client for an installation; `teamId` on every call of a team install."""
        params = {"teamId": installation.team_id} if installation.team_id and team_id else {}
        return self.client(headers={"Authorization": f"Bearer {installation.token}"}, params=params)

    def close(self) -> None:
        if self._control is not None:
            self._control.close()
            self._control = None
        for client in self.clients:
            client.close()
        self.clients.clear()
