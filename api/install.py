"""GET /install: start an external install ("Add to Vercel") with a signed state.

The state is signed, not stored: issuing it writes nothing, so anonymous traffic costs no
KV. It is bound to this browser by the digest of a random nonce kept in an HttpOnly
cookie, valid ten minutes, and marked used when the callback claims its code
(`lib.install`), so a callback carrying it completes once, in the browser that began.
That holds for installs started here: a link from Vercel's marketplace carries no state,
and is bound only by its single-use code.
"""

from lib.app import get_services
from lib.install import STATE_COOKIE, STATE_TTL_S, start_install
from lib.vercel.models import CONFIGURATION_ID
from lib.web.pages.errors import PAGE_ERRORS
from lib.web.urls import configure_url
from lib.web.wsgi import HTTPError, Request, Response, endpoint


def _handle(request: Request) -> Response:
    # HEAD too is refused, as `Allow` says: it can never complete an install.
    if request.method != "GET":
        raise HTTPError(405, "Use GET.", headers={"Allow": "GET"})
    named = [v for v in request.query.get("configurationId", []) if v]
    if named:
        # A link from before the configuration page used Sign in with Vercel: that page
        # proves who the visitor is now, and an install flow must never be the way.
        cfg = named[0]
        if len(named) > 1 or not CONFIGURATION_ID.fullmatch(cfg):
            raise HTTPError(
                400,
                "This link is incomplete or damaged: open the integration from your "
                "Vercel dashboard.",
            )
        return Response.redirect(configure_url(cfg))
    services = get_services()
    url, nonce = start_install(
        services.store.keyring, services.settings, nonce=request.cookies.get(STATE_COOKIE)
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
