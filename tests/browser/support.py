"""What the browser tests share: watching a page for problems, running axe, and the
steps a person takes on (emulated) Vercel's pages.

Steps use what a person sees (labels, button and link names), not CSS selectors, so a
page that a person could not use fails here too.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# axe impacts that fail a page: all of them (issue 13: "0 axe violations").
BLOCKING_IMPACTS = ("minor", "moderate", "serious", "critical")


@dataclass
class Watch:
    """Problems a page showed; `assert_clean()` fails naming each one."""

    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    failed_requests: list[str] = field(default_factory=list)
    error_responses: list[str] = field(default_factory=list)
    urls: list[str] = field(default_factory=list)

    def assert_clean(self) -> None:
        problems = {
            "console errors": self.console_errors,
            "page errors": self.page_errors,
            "failed requests": self.failed_requests,
            "error responses": self.error_responses,
        }
        found = {k: v for k, v in problems.items() if v}
        assert not found, found


def watched(page: Any, tolerate: Iterable[str] = ()) -> Watch:
    """Start recording console errors, uncaught exceptions, failed and 4xx/5xx requests.

    `tolerate`: URLs whose error status is not ours to fix (the emulator, standing in
    for vercel.com, has no favicon); named one by one, never a pattern.
    """
    watch = Watch()
    excused = set(tolerate)

    def on_console(message: Any) -> None:
        where = message.location.get("url")
        if message.type in ("error", "assert") and where not in excused:
            watch.console_errors.append(f"{message.text} @ {where}")

    def on_response(response: Any) -> None:
        watch.urls.append(response.url)
        if response.status >= 400 and response.url not in excused:
            watch.error_responses.append(f"{response.status} {response.url}")

    page.on("console", on_console)
    page.on("pageerror", lambda exc: watch.page_errors.append(str(exc)))
    page.on(
        "requestfailed",
        lambda r: watch.failed_requests.append(f"{r.method} {r.url}: {r.failure}"),
    )
    page.on("response", on_response)
    return watch


def shoot(page: Any, folder: Path, name: str) -> Path:
    """A full-page screenshot kept as a test artifact."""
    path = folder / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def axe_violations(page: Any, axe_source: str) -> list[dict[str, Any]]:
    """Run axe-core on the page as it is now; the violations at a blocking impact.

    The page's context must bypass CSP (our CSP rightly forbids injected scripts).
    """
    page.add_script_tag(content=axe_source)
    result = page.evaluate(
        """async () => {
            const r = await axe.run(document, {
                runOnly: {type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa",
                                                "best-practice"]},
                resultTypes: ["violations"],
            });
            return r.violations.map(v => ({
                id: v.id, impact: v.impact, help: v.help,
                nodes: v.nodes.map(n => n.target.join(" ")).slice(0, 5),
            }));
        }"""
    )
    assert isinstance(result, list)
    return [v for v in result if v.get("impact") in BLOCKING_IMPACTS]


# --- steps on the emulator's (Vercel's) pages ------------------------------------------


def choose_scope(page: Any, scope_name: str) -> None:
    """On "Add <integration>": pick where to install it and continue."""
    page.get_by_label(re.compile(rf"^{re.escape(scope_name)}\b")).check()
    page.get_by_role("button", name="Continue").click()


def choose_projects(page: Any, projects: list[str] | None) -> None:
    """On the project access step: all projects (None) or only `projects`; install."""
    if projects is None:
        page.get_by_label("All projects, including future ones").check()
    else:
        page.get_by_label("Only the projects selected below").check()
        for name in projects:
            page.get_by_label(name, exact=True).check()
    page.get_by_role("button", name="Install").click()


PHONE = {"width": 390, "height": 844}


def page_width(page: Any) -> int:
    """How wide the document is; more than the viewport means sideways scrolling."""
    return int(page.evaluate("document.scrollingElement.scrollWidth"))


def sign_in_with_vercel(page: Any, decision: str = "Allow") -> None:
    """From our sign-in page, through (emulated) Vercel's consent page, and back."""
    page.get_by_role("link", name="Sign in with Vercel").click()
    page.get_by_role("button", name=decision).click()
