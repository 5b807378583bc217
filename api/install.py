"""GET /install: start an external install ("Add to Vercel") with a one-time state.

The state is unguessable, single use, valid ten minutes and bound to this browser by an
HttpOnly cookie, so a callback carrying it can only complete in the browser that began.
`?configurationId=` marks a re-verification started by the configuration page.
"""

import re

from lib.app import get_services
from lib.install import STATE_COOKIE, STATE_TTL_S, InstallError, start_install
from lib.kv.client import KVError
from lib.log import get_logger
from lib.provisioning.spec import SpecError
from lib.settings import SettingsError
from lib.web.pages.install import error_page
from lib.web.wsgi import HTTPError, Request, Response, endpoint

_CFG = re.compile(r"icfg_[A-Za-z0-9]{1,64}")

log = get_logger("install")


def _handle(request: Request) -> Response:
    if request.method not in ("GET", "HEAD"):
        raise HTTPError(405, "Use GET.", headers={"Allow": "GET"})
    cfg = request.arg("configurationId")
    if cfg is not None and not _CFG.fullmatch(cfg):
        raise HTTPError(400, "The parameter 'configurationId' is not valid.")
    try:
        services = get_services()
        url, nonce = start_install(
            services.store,
            services.settings,
            nonce=request.cookies.get(STATE_COOKIE),
            configuration_id=cfg,
        )
    except (SettingsError, SpecError) as exc:
        log.error("configuration error", extra={"problem": str(exc)})
        return error_page(InstallError(500, "misconfigured", "Misconfigured."), None)
    except KVError as exc:
        log.warning("storage unavailable", extra={"error": type(exc).__name__})
        err = InstallError(503, "unavailable", "Our storage is not answering.")
        return error_page(err, None)
    response = Response.redirect(url)
    response.set_cookie(
        STATE_COOKIE,
        nonce,
        max_age=STATE_TTL_S,
        secure=not request.is_local,
    )
    return response


app = endpoint(_handle, name="install")
