"""The consumer side of the continuation: the SDK's push handling around `handle`.

Only `api/queue_consumer.py` imports this module; it imports the queue SDK at the top,
so no other function pays for it (see `lib.provisioning.continuation`).

A delivery is a binary-mode CloudEvent POSTed by Vercel Queues (https://vercel.com/docs/queues):
the body is the message, `ce-vqs*` headers identify it. Nothing in the SDK authenticates
that POST, so `deliver` first checks the message's own mac and refuses a forged one with
`Forged` before the SDK, the KV store or Vercel is touched. The SDK then leases the
message, calls the subscriber and acknowledges it when the subscriber returns; when the
subscriber raises, the message is not acknowledged and the queue delivers it again after
the trigger's `retryAfterSeconds`, at most `maxDeliveries` times.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from vercel.queue import Message as Delivery  # type: ignore[import-not-found,unused-ignore]
from vercel.queue.sync import (  # type: ignore[import-not-found,unused-ignore]
    accept_and_handle,
    subscribe,
)

from lib.app import get_services
from lib.deadline import Deadline
from lib.log import get_logger
from lib.provisioning.continuation import (
    CONSUMER_BUDGET_S,
    TOPIC,
    handle,
    mac_key,
    verify,
)

__all__ = ["CONSUMER_GROUP", "deliver"]

# The builder names the consumer group after the `functions` key of vercel.json
# (sanitizeConsumerName); the SDK routes a delivery only to a handler declared with the
# same group, which it sanitizes the same way.
CONSUMER_GROUP = "api/queue_consumer.py"

log = get_logger("queue")


@subscribe(topic=TOPIC, consumer_group=CONSUMER_GROUP)  # type: ignore[untyped-decorator,unused-ignore]
def _continue(delivery: Delivery[Any]) -> None:
    services = get_services()
    payload = delivery.payload
    body = payload if isinstance(payload, bytes) else _canonical_json(payload)
    message = verify(body, mac_key(services.store.keyring))
    outcome = handle(message, services, Deadline(CONSUMER_BUDGET_S))
    log.info(
        "continuation handled",
        extra={"configuration_id": message.installation, "hop": message.hop, "outcome": outcome},
    )


def _canonical_json(payload: Any) -> bytes:
    import json

    return json.dumps(payload, separators=(",", ":")).encode()


def deliver(body: bytes, headers: Mapping[str, str]) -> None:
    """Verify, then let the SDK lease, dispatch and acknowledge. Raises `Forged` (nothing
    was done) or whatever the handler raised (not acknowledged: redelivered)."""
    verify(body, mac_key(get_services().store.keyring))
    accept_and_handle(body, {k.lower(): v for k, v in headers.items()})
