"""GET /health: configuration sanity and KV reachability, as JSON."""

from lib.health import check
from lib.web.wsgi import HTTPError, Request, Response, endpoint


def _handle(request: Request) -> Response:
    if request.method not in ("GET", "HEAD"):
        raise HTTPError(405, "Use GET.", headers={"Allow": "GET, HEAD"})
    status, report = check()
    return Response.json(report, status)


app = endpoint(_handle, name="health")
