"""POST /api/queue_consumer: Vercel Queues delivers continuation messages here.

vercel.json gives this function the `queue/v2beta` trigger (topic "provision"); it is not
an endpoint for anyone else, and a message that is not signed by this deployment is
refused with 401 before anything else happens (see lib/provisioning/consumer.py).
"""

from lib.log import get_logger
from lib.provisioning.consumer import deliver
from lib.provisioning.continuation import Forged
from lib.web.errors import API_ERRORS
from lib.web.wsgi import HTTPError, Request, Response, endpoint

log = get_logger("queue")


def _handle(request: Request) -> Response:
    if request.method != "POST":
        raise HTTPError(405, "Use POST.", headers={"Allow": "POST"})
    try:
        deliver(request.body(), request.headers)
    except Forged as exc:
        log.warning("queue delivery refused", extra={"problem": str(exc)})
        raise HTTPError(401, "Unauthorized.") from None
    return Response(b"", 204)


def _not_acknowledged(request: Request, exc: Exception) -> Response:
    # Not acknowledged: the queue delivers the message again after retryAfterSeconds.
    log.warning("queue delivery failed; will be redelivered", extra={"error": type(exc).__name__})
    return Response.json({"error": "not processed"}, 500)


app = endpoint(
    _handle,
    name="queue_consumer",
    exception_handlers={**API_ERRORS, Exception: _not_acknowledged},
)
