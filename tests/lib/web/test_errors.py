"""lib/web/errors.py and the configuration page's map (lib/web/pages/errors.py): an
installation uninstalled while a request worked on it (`Gone`) is a final answer, never
a 500 — JSON for /provision, the branded "removed" page for /configure."""

from collections.abc import Mapping

import httpx
import pytest

from lib.kv.store import Gone
from lib.web.errors import API_ERRORS
from lib.web.pages.errors import CONFIGURE_ERRORS
from lib.web.wsgi import ExceptionHandler, Request, Response, endpoint


def _gone(request: Request) -> Response:
    raise Gone("icfg_abcdefghijklmnopqrstuvwx")


def _client(errors: Mapping[type[Exception], ExceptionHandler]) -> httpx.Client:
    app = endpoint(_gone, name="t", exception_handlers=errors)
    return httpx.Client(transport=httpx.WSGITransport(app=app), base_url="http://t")


@pytest.mark.parametrize("accept", ["application/json", "*/*"])
def test_gone_on_the_api_is_a_410_in_json(accept: str) -> None:
    with _client(API_ERRORS) as client:
        answer = client.post("/provision", headers={"accept": accept})
    assert answer.status_code == 410
    assert "icfg_" not in answer.text
    assert "uninstalled" in answer.text


def test_gone_on_the_configuration_page_is_the_removed_page() -> None:
    with _client(CONFIGURE_ERRORS) as client:
        answer = client.get("/configure")
    assert answer.status_code == 410
    assert answer.headers["content-type"].startswith("text/html")
    assert "This integration was removed" in answer.text
    assert "https://vercel.com/dashboard/integrations" in answer.text
    assert "icfg_" not in answer.text
