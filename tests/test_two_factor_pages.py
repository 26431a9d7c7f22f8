"""``/account/two-factor``: an authenticator app set up through the pages as a browser does it
(the set-up page read for its key, the first code posted with the form's CSRF token), the
recovery codes shown once, the status, removal and new codes; in English and in Chinese. On
SQLite and MySQL.
"""

from __future__ import annotations

import base64
import re

import pyotp
import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.helpers import PASSWORD, ApiActions, AuthActions, csrf_token
from userhub.services.security_log import TOTP_DISABLED, TOTP_ENABLED

PAGE = "/account/two-factor"
BEGIN = "/account/two-factor/totp/begin"
SETUP = "/account/two-factor/totp/setup"
REMOVE = "/account/two-factor/totp/remove"
CODES = "/account/two-factor/recovery-codes"
CHINESE = {"Accept-Language": "zh-CN,zh;q=0.9"}
SECRET = re.compile(r'id="totp-secret"[^>]*value="([A-Z2-7 ]+)"')
QR = re.compile(r'<img src="data:image/svg\+xml;base64,([A-Za-z0-9+/=]+)"[^>]*alt="([^"]+)"')
RECOVERY_CODE = re.compile(r"<code>([0-9a-z]{5}-[0-9a-z]{5})</code>")


@pytest.fixture
def browser(client: FlaskClient, auth: AuthActions) -> FlaskClient:
    assert auth.register("张三", PASSWORD).status_code == 302
    assert auth.login("张三", PASSWORD).status_code == 302
    return client


def press(browser: FlaskClient, path: str, page: str = PAGE) -> object:
    """Press the button of ``page`` that posts to ``path``."""
    token = csrf_token(browser.get(page).get_data(as_text=True))
    return browser.post(path, data={"csrf_token": token})


def set_up_page(browser: FlaskClient, **headers: str) -> tuple[str, str]:
    """Begin a set-up; the set-up page's HTML and the key it shows (without spaces)."""
    begun = press(browser, BEGIN)
    assert begun.status_code == 302 and begun.location == SETUP  # type: ignore[attr-defined]
    response = browser.get(SETUP, headers=headers)
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    html = response.get_data(as_text=True)
    match = SECRET.search(html)
    assert match, "the set-up page shows the key as text"
    return html, match.group(1).replace(" ", "")


def enable(browser: FlaskClient) -> tuple[str, list[str]]:
    html, secret = set_up_page(browser)
    response = browser.post(
        SETUP, data={"code": pyotp.TOTP(secret).now(), "csrf_token": csrf_token(html)}
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.headers["Cache-Control"] == "no-store"
    return secret, RECOVERY_CODE.findall(response.get_data(as_text=True))


def test_the_account_page_links_to_it(browser: FlaskClient) -> None:
    assert f'href="{PAGE}"' in browser.get("/account").get_data(as_text=True)


def test_set_up_through_the_pages(browser: FlaskClient, api: ApiActions) -> None:
    page = browser.get(PAGE).get_data(as_text=True)
    assert 'id="totp-status"' in page and "not set up" in page and BEGIN in page

    html, secret = set_up_page(browser)
    assert len(base64.b32decode(secret)) == 20
    grouped = SECRET.search(html).group(1)  # type: ignore[union-attr]
    assert all(len(group) == 4 for group in grouped.split(" "))
    qr = QR.search(html)
    assert qr, "the QR code is an image with alt text"
    svg = base64.b64decode(qr.group(1)).decode()
    assert "<svg" in svg and "<script" not in svg
    assert "authenticator" in qr.group(2)
    assert 'autocomplete="one-time-code"' in html

    response = browser.post(
        SETUP, data={"code": pyotp.TOTP(secret).now(), "csrf_token": csrf_token(html)}
    )
    assert response.status_code == 200
    shown = response.get_data(as_text=True)
    codes = RECOVERY_CODE.findall(shown)
    assert len(set(codes)) == 10
    assert "I have saved them" in shown and f'href="{PAGE}"' in shown
    assert TOTP_ENABLED in [row["type"] for row in api.rows("security_event")]

    status = browser.get(PAGE).get_data(as_text=True)
    assert re.search(r'id="totp-status">\s*<span class="tag tag-ok">in use<', status)
    assert re.search(r'id="recovery-codes-left">10<', status)
    assert not any(code in status for code in codes), "codes are shown once"
    assert browser.get(SETUP).status_code == 302, "nothing is being set up any more"


def test_a_wrong_first_code_shows_the_page_again_with_its_error(browser: FlaskClient) -> None:
    html, secret = set_up_page(browser)
    wrong = f"{(int(pyotp.TOTP(secret).now()) + 7) % 1_000_000:06d}"
    response = browser.post(SETUP, data={"code": wrong, "csrf_token": csrf_token(html)})
    assert response.status_code == 422
    again = response.get_data(as_text=True)
    assert "clock" in again and 'aria-invalid="true"' in again
    assert SECRET.search(again).group(1).replace(" ", "") == secret  # type: ignore[union-attr]
    missing = browser.post(SETUP, data={"code": "", "csrf_token": csrf_token(html)})
    assert missing.status_code == 400
    assert "6-digit code" in missing.get_data(as_text=True)


def test_a_first_code_without_its_csrf_token_is_refused(browser: FlaskClient) -> None:
    _, secret = set_up_page(browser)
    response = browser.post(SETUP, data={"code": pyotp.TOTP(secret).now()})
    assert response.status_code == 400
    assert "I have saved them" not in response.get_data(as_text=True)


def test_new_codes_and_removal(browser: FlaskClient, api: ApiActions) -> None:
    _, old = enable(browser)
    response = press(browser, CODES)
    assert response.status_code == 200  # type: ignore[attr-defined]
    assert response.headers["Cache-Control"] == "no-store"  # type: ignore[attr-defined]
    new = RECOVERY_CODE.findall(response.get_data(as_text=True))  # type: ignore[attr-defined]
    assert len(new) == 10 and not set(new) & set(old)

    removed = press(browser, REMOVE)
    assert removed.status_code == 302  # type: ignore[attr-defined]
    page = browser.get(PAGE).get_data(as_text=True)
    assert "The authenticator app was removed" in page
    assert re.search(r'id="totp-status">\s*<span class="tag tag-warn">not set up<', page)
    assert api.count("recovery_code") == 0
    assert TOTP_DISABLED in [row["type"] for row in api.rows("security_event")]


def test_new_codes_without_an_app_say_so(browser: FlaskClient) -> None:
    token = csrf_token(browser.get("/account").get_data(as_text=True))
    response = browser.post(CODES, data={"csrf_token": token}, follow_redirects=True)
    assert "no authenticator app" in response.get_data(as_text=True)


def test_the_pages_need_a_log_in(client: FlaskClient) -> None:
    for path in (PAGE, SETUP):
        response = client.get(path)
        assert response.status_code == 302 and response.location.startswith("/login")


@pytest.mark.parametrize("headers", [{}, CHINESE], ids=["english", "chinese"])
def test_both_languages_render(browser: FlaskClient, headers: dict[str, str]) -> None:
    chinese = bool(headers)
    page = browser.get(PAGE, headers=headers).get_data(as_text=True)
    assert ("两步验证" in page) is chinese
    assert ("Two-factor authentication" in page) is not chinese
    html, secret = set_up_page(browser, **headers)
    assert ("身份验证器" in html) is chinese
    response = browser.post(
        SETUP,
        data={"code": pyotp.TOTP(secret).now(), "csrf_token": csrf_token(html)},
        headers=headers,
    )
    shown = response.get_data(as_text=True)
    assert ("恢复码" in shown) is chinese
    assert len(RECOVERY_CODE.findall(shown)) == 10
    status = browser.get(PAGE, headers=headers).get_data(as_text=True)
    assert ("已启用" in status) is chinese


def test_the_set_up_page_is_allowed_by_the_content_security_policy(
    app: Flask, browser: FlaskClient
) -> None:
    press(browser, BEGIN)
    response = browser.get(SETUP)
    policy = response.headers["Content-Security-Policy"]
    assert "img-src 'self' data:" in policy
    html = response.get_data(as_text=True)
    assert "<script>" not in html and " style=" not in html


@pytest.mark.parametrize(
    ("headers", "words"),
    [
        ({}, ["Authenticator app added", "New recovery codes made", "Authenticator app removed"]),
        (CHINESE, ["已添加身份验证器应用", "已生成新的恢复码", "已移除身份验证器应用"]),
    ],
    ids=["english", "chinese"],
)
def test_the_activity_page_tells_what_happened(
    browser: FlaskClient, headers: dict[str, str], words: list[str]
) -> None:
    enable(browser)
    press(browser, REMOVE)
    page = browser.get("/account/activity", headers=headers).get_data(as_text=True)
    for said in words:
        assert said in page
    assert "totp-" not in page and "recovery-codes-generated" not in page
