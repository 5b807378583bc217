"""The URLs our pages and redirects send people to, built in one place and always quoted.

Vercel opens the Configuration URL with `?configurationId=icfg_…`
(https://vercel.com/docs/integrations/create-integration/submit-integration#configuration-url);
a configuration id that passed `CONFIGURATION_ID` needs no quoting, but a URL built here
never depends on that.
"""

from __future__ import annotations

from urllib.parse import quote

__all__ = ["configure_url"]


def configure_url(configuration_id: str, *, done: str | None = None) -> str:
    """The configuration page of one installation (`done` names the notice to show)."""
    url = f"/configure?configurationId={quote(configuration_id, safe='')}"
    return f"{url}&done={quote(done, safe='')}" if done else url
