"""/provision: operator resync and drift (ADMIN_TOKEN), and the cron sweep (CRON_SECRET).

POST {"configurationId": "icfg_…"} or {"all": true}, optionally "rotateSecrets": true or
["name", …] and "recheckConflicts": true (try again the writes a var hidden from us
blocked), resyncs and answers a per-project summary. GET ?configurationId= answers status
and drift (the status with `lastSyncedAt`/`lastRotatedAt`). GET ?installations=1 lists
installations a page at a time (`limit` 1-200, default 50; pass the answer's `nextCursor`
back as `cursor` until it is null; `owner=<team or user id>` lists only that owner's). GET ?sweep=1 (Vercel Cron) resumes pending
installations. Answers carry keys, targets and counts, never a value.

Every answer is JSON, errors too (`{"error": {"status", "message"}}`), whatever the
client's Accept header says, and every field is camelCase. Stable interface: fields are
added, never renamed or removed, so the one older snake_case field, a project report's
`project_id`, stays beside its camelCase twin `projectId`.
"""

import re
from typing import Any

from lib.app import Services, get_services
from lib.deadline import Deadline
from lib.log import bind, get_logger
from lib.provisioning.admin import (
    MAX_PAGE,
    drift,
    installation_status,
    list_installations,
    resync,
    rotate_secrets,
    sweep,
)
from lib.provisioning.continuation import continue_later
from lib.provisioning.reports import InstallationReport
from lib.vercel.models import CONFIGURATION_ID
from lib.web.errors import API_ERRORS
from lib.web.wsgi import HTTPError, Request, Response, bearer_matches, endpoint

_BUDGET_S = 50.0  # under the 60 s maxDuration in vercel.json

log = get_logger("provision")
_DEFAULT_PAGE = 50
# Vercel's team and user ids: letters, digits, `_` (e.g. `team_…`); bounded.
_OWNER_ID = re.compile(r"[A-Za-z0-9_]{1,64}")


def _handle(request: Request) -> Response:
    # Errors too are JSON for every client (curl sends no JSON Accept header): the shared
    # error path of `endpoint` chooses JSON by the Accept header.
    request.headers["accept"] = "application/json"
    if request.method not in ("GET", "POST"):
        raise HTTPError(405, "Use GET or POST.", headers={"Allow": "GET, POST"})
    services = get_services()
    deadline = Deadline(_BUDGET_S)
    if request.method == "GET" and request.arg("sweep") is not None:
        _authorize(request, services.settings.cron_secret)
        if request.arg("sweep") != "1":
            raise HTTPError(400, "sweep must be 1.")
        reports = sweep(services.provisioner, deadline)
        for report in reports:  # what the sweep could not finish continues on the queue
            continue_later(services, report.configuration_id, report)
        return Response.json({"swept": [r.as_dict() for r in reports]})
    _authorize(request, services.settings.admin_token)
    if request.method == "GET" and request.arg("installations") is not None:
        return _list(request, services)
    if request.method == "GET":
        return _status(request, services, deadline)
    return _resync(request, services, deadline)


def _authorize(request: Request, secret: str | None) -> None:
    if not bearer_matches(request, secret):
        raise HTTPError(401, "Unauthorized.", headers={"WWW-Authenticate": "Bearer"})


def _list(request: Request, services: Services) -> Response:
    if request.arg("installations") != "1":
        raise HTTPError(400, "installations must be 1.")
    raw_limit = request.arg("limit")
    limit = _DEFAULT_PAGE
    if raw_limit is not None:
        if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= MAX_PAGE:
            raise HTTPError(400, f"limit must be a whole number from 1 to {MAX_PAGE}.")
        limit = int(raw_limit)
    cursor = request.arg("cursor")
    if cursor is not None and not CONFIGURATION_ID.fullmatch(cursor):
        raise HTTPError(400, "cursor must be the nextCursor of a previous page.")
    owner = request.arg("owner")
    if owner is not None and not _OWNER_ID.fullmatch(owner):
        raise HTTPError(400, "owner must be a team or user id (team_… or the user's id).")
    page = list_installations(services.store, cursor, limit, owner=owner)
    return Response.json(
        {"installations": page.items, "nextCursor": page.next_cursor, "total": page.total}
    )


def _configuration_id(value: Any) -> str:
    if not isinstance(value, str) or not CONFIGURATION_ID.fullmatch(value):
        raise HTTPError(400, "configurationId must look like icfg_….")
    bind(configuration_id=value)  # on this request's every line (endpoint() unbinds it all)
    return value


def _audit(event: str, report: InstallationReport) -> None:
    log.info(
        f"audit: {event} by the operator",
        extra={
            "event": event,
            "configuration_id": report.configuration_id,
            "outcome": report.outcome,
            "pending": report.pending,
        },
    )


def _status(request: Request, services: Services, deadline: Deadline) -> Response:
    cfg = _configuration_id(request.arg("configurationId"))
    inst = services.store.get_installation(cfg)
    if inst is None:
        raise HTTPError(404, "Unknown configuration.")
    report = {
        "installation": installation_status(inst, services.store.is_pending(cfg)),
        "drift": drift(services.provisioner, inst, deadline).as_dict(),
    }
    return Response.json(report)


def _json_body(request: Request) -> Any:
    """The JSON body ({} when empty)."""
    return request.json() if request.body() else {}


def _resync(request: Request, services: Services, deadline: Deadline) -> Response:
    body = _json_body(request)
    if not isinstance(body, dict):
        raise HTTPError(400, "Body must be a JSON object.")
    unknown = set(body) - {"configurationId", "all", "rotateSecrets", "recheckConflicts"}
    if unknown:
        raise HTTPError(400, f"Unknown field(s): {', '.join(sorted(unknown))}.")
    recheck = body.get("recheckConflicts", False)
    if not isinstance(recheck, bool):
        raise HTTPError(400, "recheckConflicts must be true or false.")
    if "all" in body:
        if body["all"] is not True:
            raise HTTPError(400, "all must be true (or left out).")
        if "configurationId" in body or "rotateSecrets" in body:
            raise HTTPError(400, "'all' cannot be combined with configurationId or rotateSecrets.")
        reports = resync(
            services.provisioner,
            services.store.all_installations(),
            deadline,
            recheck_conflicts=recheck,
        )
        for report in reports:
            _audit("resync", report)
        return Response.json({"installations": [r.as_dict() for r in reports]})
    cfg = _configuration_id(body.get("configurationId", request.arg("configurationId")))
    rotate = body.get("rotateSecrets", False)
    names_ok = isinstance(rotate, list) and rotate and all(isinstance(n, str) for n in rotate)
    if not (isinstance(rotate, bool) or names_ok):
        raise HTTPError(400, "rotateSecrets must be true or a non-empty list of secret names.")
    if services.store.get_installation(cfg) is None:
        raise HTTPError(404, "Unknown configuration.")
    if rotate is False:
        [report] = resync(services.provisioner, [cfg], deadline, recheck_conflicts=recheck)
    else:
        try:
            report = rotate_secrets(
                services.provisioner, cfg, None if rotate is True else rotate, deadline
            )
        except ValueError as exc:
            raise HTTPError(400, str(exc)) from None
    _audit("resync" if rotate is False else "rotation", report)
    return Response.json({"installations": [report.as_dict()]})


app = endpoint(_handle, name="provision", exception_handlers=API_ERRORS)
