"""``/docs`` in a real browser with the network cut off: it renders from userhub's own files,
and "Try it out" reaches the local server (which the web version of Postman cannot).

Debian's Chromium driven by Playwright (``tests/browser_support.py``). Every request that is not
for the server under test is aborted and recorded, so a CDN link would fail the test rather than
quietly load. Screenshots go to ``test-artifacts/`` (git-ignored).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, expect

from tests import browser_support
from tests.browser_support import OfflinePage, offline_page, screenshot
from tests.live_server import live_server

browser = browser_support.browser  # the shared fixture: Debian's Chromium
pytestmark = pytest.mark.browser  # make test-quick leaves them out


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    workdir = tmp_path_factory.mktemp("docs")
    with live_server("production", f"sqlite:///{workdir / 'docs.sqlite3'}", workdir) as base:
        yield base


@pytest.fixture
def offline(browser: Browser, base_url: str) -> Iterator[OfflinePage]:
    with offline_page(browser, base_url) as opened:
        yield opened


def test_docs_render_offline_with_every_operation(offline: OfflinePage, base_url: str) -> None:
    page, blocked = offline.page, offline.blocked
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))

    page.goto(base_url + "/docs")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("userhub")
    for path in ("/api/v1/users", "/api/v1/tokens", "/api/v1/health", "/save_data_to_mysql"):
        expect(page.locator(f'.opblock-summary-path[data-path="{path}"]').first).to_be_visible()
    screenshot(page, "docs")

    assert blocked == []
    assert errors == []


def test_try_it_out_on_response_json_gets_200_from_the_local_server(
    offline: OfflinePage, base_url: str
) -> None:
    page, blocked = offline.page, offline.blocked
    page.goto(base_url + "/docs")
    operation = page.locator(".opblock-get").filter(
        has=page.locator('.opblock-summary-path[data-path="/response_json"]')
    )
    operation.locator(".opblock-summary").click()
    operation.get_by_role("button", name="Try it out").click()
    operation.get_by_role("button", name="Execute").click()

    status = operation.locator(".live-responses-table .response .response-col_status").first
    expect(status).to_have_text("200")
    expect(
        operation.locator(".live-responses-table .response .response-col_description")
    ).to_contain_text("Zhang San")
    screenshot(page, "docs-try-it-out")
    assert blocked == []


@pytest.mark.parametrize("path", ["/", "/login", "/register"])
def test_pages_work_under_the_content_security_policy(
    offline: OfflinePage, base_url: str, path: str
) -> None:
    """The strict policy (no inline script or style) refuses nothing the pages use."""
    page, blocked = offline.page, offline.blocked
    response = page.goto(base_url + path)
    assert response is not None and response.ok
    assert "script-src 'self'" in response.headers["content-security-policy"]
    assert blocked == []  # the home page's image: test_browser_pages.py
