"""The install callback's code exchange: `exchange_code(...)` turns the one-time `code`
into an `OAuthToken` (https://vercel.com/docs/integrations/create-integration/submit-integration#redirect-url).

The exchange is strict about retries: a code is single use, so if the request may have
reached Vercel a retry can only fail with `invalid_grant` and hide the real outcome. It is
retried only when the connection was never made, and a 429 is raised, not waited out (the
exchange happens while a person watches the install popup).
"""

from __future__ import annotations

import httpx

from lib.deadline import Deadline
from lib.vercel.models import OAuthToken
from lib.vercel.transport import (
    DEFAULT_RETRY,
    DEFAULT_TIMEOUT,
    RetryPolicy,
    _base_url,
    _body,
    _Call,
    _new_http_client,
    _oauth_error_class,
    _parse,
    _Redactor,
    _Replay,
    _send,
    _shared,
)


def exchange_code(
    code: str,
    *,
    client_id: str,
    client_secret: str,
    redirect_uri: str,
    base_url: str,
    deadline: Deadline,
    transport: httpx.BaseTransport | None = None,
    timeout: httpx.Timeout = DEFAULT_TIMEOUT,
    retry: RetryPolicy = DEFAULT_RETRY,
) -> OAuthToken:
    """`POST /v2/oauth/access_token`: the install callback's code for a long-lived token.

    Raises `InvalidCode` (bad, used or expired code: the user must restart the install),
    `InvalidClient` (our credentials are wrong), `OAuthError` (other refusals),
    `ServerError`/`RateLimited`/`VercelUnavailable`/`DeadlineExceeded` (try again later —
    with a new code if the request may have reached Vercel). Retried only when nothing
    was sent; see the module docstring for why.
    """
    path = "/v2/oauth/access_token"
    call = _Call(
        method="POST",
        url=_base_url(base_url) + path,
        where=f"POST {path}",
        params={},
        headers={},
        replay=_Replay.IF_UNSENT,
        classify=_oauth_error_class,
        redact=_Redactor(client_secret, code),
        data={
            "client_id": client_id,
            "client_secret": client_secret,
            "code": code,
            "redirect_uri": redirect_uri,
        },
    )
    if transport is None:
        response = _send(_shared.get(), call, deadline=deadline, timeout=timeout, policy=retry)
    else:
        with _new_http_client(transport) as http:
            response = _send(http, call, deadline=deadline, timeout=timeout, policy=retry)
    return _parse(OAuthToken, _body(response, call.where), call.where)
