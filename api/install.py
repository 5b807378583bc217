"""GET /install: start an external install ("Add to Vercel") with a one-time state.

The state is unguessable, single use, valid ten minutes and bound to this browser by an
HttpOnly cookie, so a callback carrying it can only complete in the browser that began.
`?configurationId=` marks a re-verification started by the configuration page.
"""

from lib.app import get_services
from lib.install import STATE_COOKIE, STATE_TTL_S, start_install
from lib.vercel.models import CONFIGURATION_ID
from lib.web.pages.errors import PAGE_ERRORS
from lib.web.wsgi import HTTPError, Request, Response, endpoint


def _handle(request: Request) -> Response:
    # HEAD too is refused, as `Allow` says: it would issue a state (a KV write) for a
    # request that can never complete an install.
    if request.method != "GET":
        raise HTTPError(405, "Use GET.", headers={"Allow": "GET"})
    cfg = request.arg("configurationId")
    if cfg is not None and not CONFIGURATION_ID.fullmatch(cfg):
        raise HTTPError(400, "The parameter 'configurationId' is not valid.")
    services = get_services()
    url, nonce = start_install(
        services.store,
        services.settings,
        nonce=request.cookies.get(STATE_COOKIE),
        configuration_id=cfg,
    )
    response = Response.redirect(url)
    response.set_cookie(
        STATE_COOKIE,
        nonce,
        max_age=STATE_TTL_S,
        secure=not request.is_local,
    )
    return response


app = endpoint(_handle, name="install", exception_handlers=PAGE_ERRORS)
