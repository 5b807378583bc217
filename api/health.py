"""GET /health: healthy or not, as JSON; the detailed report with the admin token.

`Authorization: Bearer <ADMIN_TOKEN>` (as for `/provision`) answers the detailed report;
no Authorization header answers `{"status": …}` only; a wrong token is a 401.
"""

from lib.health import admin_token, check, public
from lib.web.wsgi import HTTPError, Request, Response, bearer_matches, endpoint


def _handle(request: Request) -> Response:
    request.headers["accept"] = "application/json"  # errors in JSON too, as the report
    if request.method not in ("GET", "HEAD"):
        raise HTTPError(405, "Use GET.", headers={"Allow": "GET, HEAD"})
    status, report = check()
    if "authorization" not in request.headers:
        report = public(report)
    elif not bearer_matches(request, admin_token()):
        raise HTTPError(401, "Unauthorized.", headers={"WWW-Authenticate": "Bearer"})
    return Response.json(report, status)


app = endpoint(_handle, name="health")
