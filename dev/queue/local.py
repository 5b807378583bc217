"""Vercel Queues, locally: the SDK's embedded queue service, pushing to functions over HTTP.

`make dev` and the tests need the queue the way Vercel runs it: a function publishes
with the SDK, the queue leases the message and POSTs it to the consumer function as a
binary CloudEvent (`ce-type: com.vercel.queue.v2beta` and `ce-vqs*` headers, the payload
as the body), and the consumer's SDK acknowledges it through the queue's HTTP API. Every
piece of queue logic here is the SDK's own (`vercel-queue`, its embedded service, see
https://pypi.org/project/vercel-queue/): its embedded Queue API stores, delays, leases,
deduplicates and retries; its embedded dispatcher decides what is due. The only thing
this module adds is the transport the dispatcher's in-process default does not have:
deliveries go out over HTTP to the function's URL on the dev server, as on Vercel.

What is consumed, and how, comes from `vercel.json`, the same source `vercel build`
reads: each `functions.<file>.experimentalTriggers` entry of type `queue/v2beta`
(https://vercel.com/docs/queues) subscribes that function under the consumer group
name the builder derives from the `functions` key, with its `maxDeliveries`,
`retryAfterSeconds`, `initialDelaySeconds` and `maxConcurrency`.

Functions reach the queue through `VERCEL_QUEUE_BASE_URL` and `VERCEL_QUEUE_TOKEN`
(see `env()`): the SDK reads both, and the token `vc-dev-token` is the one `vercel dev`
hands its functions, which also turns off deployment pinning.

Everything runs on one thread with one event loop, because the SDK's embedded state is
not locked: the Queue API and the dispatcher must not run on different threads.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

# vercel-queue[devserver] is a development dependency (its `uvicorn` serves the Queue API).
import uvicorn  # type: ignore[import-not-found,unused-ignore]
from vercel.queue import sanitize_name  # type: ignore[import-not-found,unused-ignore]
from vercel.queue._internal.embedded import (  # type: ignore[import-not-found,unused-ignore]
    EmbeddedQueueDispatcher,
)
from vercel.queue.embedded import (  # type: ignore[import-not-found,unused-ignore]
    create_embedded_queue_app,
)

__all__ = ["DEV_QUEUE_TOKEN", "LocalQueue", "QueueTrigger", "queue_triggers"]

# The token `vercel dev` gives its services; the SDK then pins no deployment.
DEV_QUEUE_TOKEN = "vc-dev-token"  # noqa: S105 (a public placeholder, not a secret)
# A delivery is one function invocation; Vercel's own limit for it is the function's
# maxDuration, which the project keeps at 60 s.
_DELIVERY_TIMEOUT_S = 70.0


@dataclass(frozen=True)
class QueueTrigger:
    """One `queue/v2beta` trigger of one function in `vercel.json`."""

    function_file: str  # "api/queue_consumer.py"
    topic: str
    consumer_group: str  # as the builder names it: sanitizeConsumerName(functions key)
    max_deliveries: int | None
    retry_after_seconds: int | None
    initial_delay_seconds: int | None
    max_concurrency: int | None

    @property
    def path(self) -> str:
        """The function's URL path, as Vercel routes `api/x.py` (`/api/x`)."""
        return "/" + self.function_file.removesuffix(".py")


def _int_or_none(value: object) -> int | None:
    return int(value) if isinstance(value, (int, float)) else None


def queue_triggers(root: Path) -> list[QueueTrigger]:
    """The queue triggers `vercel build` would attach, read from `root/vercel.json`.

    Only exact file keys are honoured: the builder names the consumer group after the
    `functions` key, and takes the first key that matches a file, so a glob carrying a
    trigger would subscribe every matching function under one group.
    """
    config = json.loads((root / "vercel.json").read_text(encoding="utf-8"))
    found: list[QueueTrigger] = []
    for key, settings in (config.get("functions") or {}).items():
        for trigger in settings.get("experimentalTriggers") or []:
            if trigger.get("type") != "queue/v2beta":
                continue
            if any(ch in key for ch in "*?[{"):
                raise ValueError(f"queue trigger on a glob ({key!r}): name the file")
            found.append(
                QueueTrigger(
                    function_file=key,
                    topic=str(trigger["topic"]),
                    consumer_group=str(sanitize_name(key)),
                    max_deliveries=_int_or_none(trigger.get("maxDeliveries")),
                    retry_after_seconds=_int_or_none(trigger.get("retryAfterSeconds")),
                    initial_delay_seconds=_int_or_none(trigger.get("initialDelaySeconds")),
                    max_concurrency=_int_or_none(trigger.get("maxConcurrency")),
                )
            )
    return found


class _HttpPush:
    """The dispatcher's push client: one delivery is one HTTP POST to the consumer function.

    The function is chosen by the delivery's consumer group, as Vercel does: the group
    is the name the builder gave the function's trigger.
    """

    def __init__(self, urls: Mapping[str, str], client: httpx.AsyncClient) -> None:
        self._urls = urls
        self._client = client

    async def accept_and_handle(self, raw_body: bytes, headers: Mapping[str, str]) -> None:
        group = headers.get("ce-vqsconsumergroup", "")
        url = self._urls.get(group)
        if url is None:
            raise RuntimeError(f"no function in vercel.json consumes as {group!r}")
        response = await self._client.post(url, content=raw_body, headers=dict(headers))
        if response.status_code >= 300:
            # Not acknowledged: the SDK's dispatcher retries after retryAfterSeconds.
            raise RuntimeError(f"consumer {url} answered {response.status_code}")


def _stored(message: Any) -> bool:
    """False for a send the queue deduplicated (same idempotency key and payload).

    The embedded service keeps such a send as a record pointing at the original
    (`duplicate_of`) that is never delivered, so never acknowledged either: it is no
    work left and no message of a chain. Counted, it kept the backlog at 1 for good.
    """
    return getattr(message, "duplicate_of", None) is None


class LocalQueue:
    """The embedded Queue API on a local port, delivering to `functions_url` (the dev server)."""

    def __init__(self, root: Path, functions_url: str, host: str = "127.0.0.1") -> None:
        self.triggers = queue_triggers(root)
        self._functions_url = functions_url.rstrip("/")
        self._sock = socket.create_server((host, 0))
        self.base_url = f"http://{host}:{self._sock.getsockname()[1]}"
        self._app: Any = create_embedded_queue_app(manual_clock=False)
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stopping: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="local-queue", daemon=True)

    def env(self) -> dict[str, str]:
        """What functions need in `os.environ` to publish to and acknowledge on this queue."""
        return {"VERCEL_QUEUE_BASE_URL": self.base_url, "VERCEL_QUEUE_TOKEN": DEV_QUEUE_TOKEN}

    def start(self) -> LocalQueue:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("local queue did not start")
        return self

    def stop(self) -> None:
        if self._stopping is not None:
            self._loop.call_soon_threadsafe(self._stopping.set)
        self._thread.join(10)

    def backlog(self) -> dict[str, int]:
        """Messages not yet acknowledged, per topic (what the README's 'backlog' shows)."""

        async def count() -> dict[str, int]:
            state = self._app.server.state
            return {
                topic: sum(1 for m in messages if _stored(m) and not m.acknowledged)
                for topic, messages in state.by_topic.items()
            }

        return asyncio.run_coroutine_threadsafe(count(), self._loop).result(5)

    def sent(self) -> dict[str, int]:
        """Messages stored so far, acknowledged or not, per topic (how long a chain was)."""

        async def count() -> dict[str, int]:
            state = self._app.server.state
            return {
                topic: sum(1 for m in messages if _stored(m))
                for topic, messages in state.by_topic.items()
            }

        return asyncio.run_coroutine_threadsafe(count(), self._loop).result(5)

    def _run(self) -> None:
        self._loop.run_until_complete(self._serve())

    async def _serve(self) -> None:
        self._stopping = asyncio.Event()
        config = uvicorn.Config(self._app, log_level="warning", lifespan="off", ws="none")
        server = uvicorn.Server(config)
        serving = asyncio.create_task(server.serve(sockets=[self._sock]))
        async with httpx.AsyncClient(timeout=_DELIVERY_TIMEOUT_S) as client:
            urls = {t.consumer_group: self._functions_url + t.path for t in self.triggers}
            # One dispatcher for every trigger. Subscriptions that consumer modules
            # imported in this process register with it too (the SDK does that); they
            # name the same topic and group, so the SDK keeps one registration for each.
            dispatcher = EmbeddedQueueDispatcher(self._app.server, lambda: _HttpPush(urls, client))
            for trigger in self.triggers:
                dispatcher.register_subscription(
                    topic=trigger.topic,
                    consumer_group=trigger.consumer_group,
                    retry_after_seconds=trigger.retry_after_seconds,
                    initial_delay_seconds=trigger.initial_delay_seconds,
                    max_concurrency=trigger.max_concurrency,
                    max_attempts=trigger.max_deliveries,
                )
            running = asyncio.create_task(dispatcher.run())
            while not server.started:
                await asyncio.sleep(0.01)
            self._ready.set()
            await self._stopping.wait()
            running.cancel()
            dispatcher.unregister()
            server.should_exit = True
            await serving
