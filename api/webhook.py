"""POST /webhook: Vercel's signed integration events."""

from lib.app import get_services
from lib.deadline import Deadline
from lib.log import get_logger
from lib.provisioning.spec import SpecError
from lib.settings import SettingsError
from lib.web.wsgi import HTTPError, Request, Response, endpoint
from lib.webhooks.receive import receive

# Vercel aborts a delivery after 30 s; answer well before.
_BUDGET_S = 22.0

log = get_logger("webhook")


def _handle(request: Request) -> Response:
    if request.method != "POST":
        raise HTTPError(405, "Use POST.", headers={"Allow": "POST"})
    deadline = Deadline(_BUDGET_S)
    body = request.body()  # 413 before reading when too large
    services = get_services()
    reply = receive(body, request.headers.get("x-vercel-signature"), services, deadline)
    headers = {"Retry-After": str(reply.retry_after)} if reply.retry_after else None
    return Response.json(reply.body, reply.status, headers)


def _misconfigured(request: Request, exc: Exception) -> Response:
    # Fail closed: without the client secret nothing can be verified, so nothing is accepted.
    log.error("webhook refused: configuration error", extra={"problem": str(exc)})
    return Response.json({"error": "integration misconfigured"}, 500)


app = endpoint(
    _handle,
    name="webhook",
    exception_handlers={SettingsError: _misconfigured, SpecError: _misconfigured},
)
