"""Both languages, complete: every string has its Chinese translation, the compiled catalogue
is the one the app reads, and every page a Chinese reader can reach shows no English left over
(beyond the tutorial's own words and a few names). A new string without a translation fails
here: run ``make translations``, translate it in ``messages.po``, and the install step
compiles it."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import IO, Any, cast

import pyotp
import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg as _parse_mapping_cfg
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po
from flask import Flask
from flask.testing import FlaskClient

from tests.helpers import PASSWORD, AppBuilder, AuthActions, browser_of, csrf_token
from tests.mail_support import Mailbox, MailboxBuilder, html_of, link_to, text_of
from userhub.extensions import db
from userhub.models import User
from userhub.services import api_keys, email_links, totp, users
from userhub.services.users import find_user
from userhub.web import i18n
from userhub.web.errors import error_response
from userhub.web.problems import status_detail

ROOT = Path(__file__).resolve().parents[1]
CATALOGUE = ROOT / "src/userhub/translations/zh_Hans_CN/LC_MESSAGES"
CHINESE = {"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.8"}

# English a Chinese page may show: the tutorial's own words (docs/architecture.md: untranslated),
# names, and the protocol words that messages quote for the reader to type.
ALLOWED_ENGLISH = {
    *[
        "Hello",
        "World",
        "Flask",
        "This",
        "is",
        "my",
        "first",
        "flask",
        "app",
    ],  # the tutorial's home page
    *["userhub", "OpenAPI", "API", "JSON", "English", "Postman"],
    *["Try", "it", "out"],  # Swagger UI's button, as the reader will see it
    # names on /problems: RFC 9457, its "type" member, the Idempotency-Key header, CSRF, ASCII,
    # the Host and X-Forwarded-Host headers
    *["RFC", "type", "Idempotency", "Key", "CSRF", "ASCII", "Host", "Forwarded"],
    "challenge",  # the member of the mfa-required problem a client sends back
    "true",  # '"cancel_deletion": true', which keeps an account waiting to be deleted
    # an address's kind, and the zone every time is shown in (the security pages)
    *["IP", "UTC"],
    *[
        "GET",
        "POST",
        "Content",
        "Type",
        "application",
        "json",
        "X",
        "CSRFToken",
        "Authorization",
        "Bearer",
        "token",
    ],
}


# Babel's parser of babel.cfg has no annotations: (pattern, method) pairs and options by pattern.
parse_mapping_cfg = cast(
    Callable[[IO[str]], tuple[list[tuple[str, str]], dict[str, dict[str, Any]]]],
    _parse_mapping_cfg,
)


def source_messages() -> set[str]:
    """Every msgid in the code and templates, found as ``make translations`` finds them."""
    with open(ROOT / "babel.cfg") as config:
        method_map, options_map = parse_mapping_cfg(config)
    return {
        message if isinstance(message, str) else message[0]
        for _filename, _line, message, _comments, _context in extract_from_dir(
            str(ROOT),
            method_map,
            options_map,
            keywords={"_": None, "gettext": None, "_l": None, "lazy_gettext": None},
        )
    }


def test_every_string_has_a_chinese_translation() -> None:
    with open(CATALOGUE / "messages.po", "rb") as po:
        catalogue = read_po(po)
    wanted = source_messages()
    assert len(wanted) > 100  # the extraction found the code and the templates
    untranslated = sorted(
        msgid
        for msgid in wanted
        if msgid not in catalogue or not catalogue[msgid].string or catalogue[msgid].fuzzy
    )
    assert untranslated == [], "run `make translations` and translate these in messages.po"
    stale = sorted(str(m.id) for m in catalogue if m.id and m.id not in wanted)
    assert stale == [], "strings no longer in the code: run `make translations`"
    errors = [(m.id, [str(e) for e in errs]) for m, errs in catalogue.check()]
    assert errors == []  # placeholders such as %(max)d match in both languages


def test_the_app_reads_the_catalogue_compiled_from_messages_po() -> None:
    """The install step compiled ``messages.po``; a stale ``messages.mo`` would show old words."""
    with open(CATALOGUE / "messages.po", "rb") as po:
        source = {m.id: m.string for m in read_po(po) if m.id}
    with open(CATALOGUE / "messages.mo", "rb") as mo:
        compiled = {m.id: m.string for m in read_mo(mo) if m.id}
    assert compiled == source


class VisibleText(HTMLParser):
    """The words a person sees or hears: text outside scripts and styles, and the attributes
    a screen reader announces."""

    ANNOUNCED = ("alt", "aria-label", "title", "placeholder")

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self.hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style"):
            self.hidden += 1
        self.parts.extend(value or "" for name, value in attrs if name in self.ANNOUNCED)
        if tag == "input" and dict(attrs).get("type") == "submit":
            self.parts.append(dict(attrs).get("value") or "")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style"):
            self.hidden -= 1

    def handle_data(self, data: str) -> None:
        if not self.hidden:
            self.parts.append(data)


def english_words(html: str, name: str = "") -> set[str]:
    """Latin-script words on the page that are not allowed to stay English. Paths, field names
    and e-mail-like tokens (``/test_post``, ``user_name``) are what the reader types: skipped."""
    parser = VisibleText()
    parser.feed(html)
    words = set()
    for token in " ".join(parser.parts).split():
        if re.search(r"[/_.@:=]|\d", token):
            continue
        words.update(re.findall(r"[A-Za-z]{2,}", token))
    return words - ALLOWED_ENGLISH - set(re.findall(r"[A-Za-z]{2,}", name))


def chinese_page(client: FlaskClient, path: str, **kwargs: Any) -> str:
    response = client.open(path, headers=CHINESE, **kwargs)
    html = response.get_data(as_text=True)
    assert '<html lang="zh-CN">' in html, (path, response.status_code)
    return html


def pages_in_chinese(client: FlaskClient, auth: AuthActions) -> Iterator[tuple[str, str]]:
    """Every page and form state a visitor reaches, in Chinese (through the real routes)."""
    for path in ("/", "/login", "/register", "/nope", "/account", "/problems"):
        yield path, chinese_page(client, path, follow_redirects=True)
    yield "GET /test_post (405)", chinese_page(client, "/test_post")
    yield (
        "form without CSRF token (400)",
        chinese_page(client, "/test_post", method="POST", data={"username": "x", "password": "y"}),
    )
    yield (
        "form too large (413)",
        chinese_page(
            client,
            "/test_post",
            method="POST",
            data={"username": "x" * (2 * 1024 * 1024), "csrf_token": auth.token()},
        ),
    )
    token = auth.token("/register")
    yield (
        "register with every error",
        chinese_page(
            client,
            "/register",
            method="POST",
            data={
                "username": " 张三",
                "password": "short",
                "confirm": "other",
                "csrf_token": token,
            },
        ),
    )
    yield (
        "register with empty fields",
        chinese_page(client, "/register", method="POST", data={"csrf_token": token}),
    )
    new_account = {
        "username": "张三",
        "password": PASSWORD,
        "confirm": PASSWORD,
        "csrf_token": token,
    }
    yield (
        "register done",
        chinese_page(
            client,
            "/register",
            method="POST",
            data=new_account,
            follow_redirects=True,
        ),
    )
    yield (
        "username taken",
        chinese_page(
            client,
            "/register",
            method="POST",
            data=new_account,
        ),
    )
    yield (
        "wrong password",
        chinese_page(
            client,
            "/test_post",
            method="POST",
            data={"username": "张三", "password": "wrong password", "csrf_token": auth.token()},
        ),
    )
    yield (
        "/success",
        chinese_page(
            client,
            "/test_post",
            method="POST",
            data={"username": "张三", "password": PASSWORD, "csrf_token": auth.token()},
            follow_redirects=True,
        ),
    )
    yield "/account", chinese_page(client, "/account")
    yield "/account/password", chinese_page(client, "/account/password")
    yield (
        "change password with errors",
        chinese_page(
            client,
            "/account/password",
            method="POST",
            data={
                "current_password": "wrong",
                "password": "new password 1",
                "confirm": "new password 1",
                "csrf_token": auth.token("/account"),
            },
        ),
    )
    yield (
        "change password done",
        chinese_page(
            client,
            "/account/password",
            method="POST",
            data={
                "current_password": PASSWORD,
                "password": "new password 1",
                "confirm": "new password 1",
                "csrf_token": auth.token("/account"),
            },
            follow_redirects=True,
        ),
    )
    yield (
        "logged out",
        chinese_page(
            client,
            "/logout",
            method="POST",
            data={"csrf_token": auth.token("/account")},
            follow_redirects=True,
        ),
    )
    yield "/success asks to log in", chinese_page(client, "/success", follow_redirects=True)


def test_every_page_a_chinese_reader_reaches_is_in_chinese(
    client: FlaskClient, auth: AuthActions
) -> None:
    leftovers = {
        name: words
        for name, html in pages_in_chinese(client, auth)
        if (words := english_words(html, name="张三"))
    }
    assert leftovers == {}


ADDRESS = "lisi@example.com"
NEW_ADDRESS = "new@example.com"


def stranger(mailbox: Mailbox) -> FlaskClient:
    """A client the account has not seen, that names no browser (a summary is in English:
    "Firefox 133 on Windows")."""
    client = mailbox.app.test_client()
    client.environ_base["HTTP_USER_AGENT"] = ""
    return client


def mail_pages_in_chinese(mailbox: Mailbox) -> Iterator[tuple[str, str]]:
    """The pages of account e-mail, in Chinese: the forgotten password, the pages mailed links
    open (each with the link as the SMTP server received it), the account's address."""
    client = mailbox.app.test_client()
    auth = AuthActions(client)
    register = {"username": "李四", "password": PASSWORD, "confirm": PASSWORD, "email": ADDRESS}
    register["csrf_token"] = auth.token("/register")
    yield (
        "registered with an address",
        chinese_page(client, "/register", method="POST", data=register, follow_redirects=True),
    )
    verify = link_to(mailbox.only(ADDRESS), "/email/verify")
    yield "verify page", chinese_page(client, verify)
    yield "/password/forgot", chinese_page(client, "/password/forgot")
    forgot: dict[str, Any] = {"method": "POST", "data": {"csrf_token": auth.token()}}
    yield "forgot, empty", chinese_page(client, "/password/forgot", **forgot)
    forgot["data"]["account"] = "李四"
    yield "check your mail", chinese_page(client, "/password/forgot", **forgot)
    reset = link_to(mailbox.only(ADDRESS), "/password/reset")
    yield "reset page", chinese_page(client, reset)
    bad_passwords = {"password": "short", "confirm": "other", "csrf_token": auth.token()}
    yield "reset, errors", chinese_page(client, reset, method="POST", data=bad_passwords)
    yield "a dead link", chinese_page(client, "/email/verify?token=nope")
    with mailbox.app.app_context():  # the page of the link strangers' failed log-ins mail
        user = find_user("李四")
        assert user is not None
        unlock = f"/unlock?token={email_links.make(user, email_links.UNLOCK)}"
        db.session.commit()
    yield "unlock page", chinese_page(client, unlock)

    auth.login("李四")
    token = {"csrf_token": auth.token("/account")}
    new_device = stranger(mailbox)  # logs in: its session's link, mailed
    AuthActions(new_device).login("李四")
    end = link_to(mailbox.only(ADDRESS), "/email/end-session")
    yield "end-session page", chinese_page(client, end)
    ended = {"method": "POST", "data": token, "follow_redirects": True}
    yield "session ended", chinese_page(client, end, **ended)
    yield "end-session link used", chinese_page(client, end)
    stranger(mailbox).post("/api/v1/tokens", json={"username": "李四", "password": PASSWORD})
    yield "end-token page", chinese_page(client, link_to(mailbox.only(ADDRESS), "/email/end-token"))
    yield "account, address not confirmed", chinese_page(client, "/account")
    yield "/account/email", chinese_page(client, "/account/email")
    no_address = {"method": "POST", "data": {"email": "", **token}}
    yield "new address missing", chinese_page(client, "/account/email", **no_address)
    new = {"method": "POST", "data": {"email": NEW_ADDRESS, **token}, "follow_redirects": True}
    yield "new address pending", chinese_page(client, "/account/email", **new)
    yield "/account/email, pending", chinese_page(client, "/account/email")
    mails = {mail.rcpt_tos[0]: mail.message for mail in mailbox.new_mail(2)}
    confirm = link_to(mails[NEW_ADDRESS], "/email/change/confirm")
    yield "confirm page", chinese_page(client, confirm)
    yield "undo page", chinese_page(client, link_to(mails[ADDRESS], "/email/change/undo"))
    press = {"method": "POST", "data": token, "follow_redirects": True}
    yield "address confirmed", chinese_page(client, confirm, **press)
    yield "address removed", chinese_page(client, "/account/email/remove", **press)
    yield "account without address", chinese_page(client, "/account")


def test_every_mail_page_a_chinese_reader_reaches_is_in_chinese(mailbox: Mailbox) -> None:
    leftovers = {
        name: words
        for name, html in mail_pages_in_chinese(mailbox)
        if (words := english_words(html, name="李四"))
    }
    assert leftovers == {}


def security_pages_in_chinese(app: Flask) -> Iterator[tuple[str, str]]:
    """The account's sessions, activity and API keys, in Chinese, through each of their
    buttons (another browser of the account to end; a key made, refused and revoked)."""
    client = app.test_client()
    auth = AuthActions(client)
    auth.register()
    auth.login(password="wrong password")
    auth.login()
    AuthActions(app.test_client()).login()
    yield "account with security links", chinese_page(client, "/account")
    sessions = chinese_page(client, "/account/sessions")
    yield "two sessions", sessions
    token = {"csrf_token": csrf_token(sessions)}
    press = {"method": "POST", "data": token, "follow_redirects": True}
    mine = re.search(r'id="session-(\d+)">[^<]*<span class="tag tag-ok">', sessions)
    assert mine is not None, "no session is marked as this browser's"
    this = f"/account/sessions/{mine.group(1)}/end"
    [other] = [path for path in re.findall(r'action="([^"]+/end)"', sessions) if path != this]
    yield "the other session ended", chinese_page(client, other, **press)
    yield "no other sessions", chinese_page(client, "/account/sessions/end-others", **press)
    yield "/account/api-keys", chinese_page(client, "/account/api-keys")
    key = {"name": "备份", "scopes": ["read", "write"], "lifetime": "90", **token}
    yield "key made", chinese_page(client, "/account/api-keys", method="POST", data=key)
    nameless = {**key, "name": ""}
    yield (
        "key without a name",
        chinese_page(client, "/account/api-keys", method="POST", data=nameless),
    )
    no_scope = {**key, "scopes": []}
    yield (
        "key without a scope",
        chinese_page(client, "/account/api-keys", method="POST", data=no_scope),
    )
    keys = chinese_page(client, "/account/api-keys")
    yield "one key", keys
    [revoke] = re.findall(r'action="(/account/api-keys/\d+/revoke)"', keys)
    yield "key revoked", chinese_page(client, revoke, **press)
    yield "key already revoked", chinese_page(client, revoke, **press)
    yield "/account/activity", chinese_page(client, "/account/activity")
    yield "this session ended from the list", chinese_page(client, this, **press)


def test_every_security_page_a_chinese_reader_reaches_is_in_chinese(app: Flask) -> None:
    """The scope names a refusal quotes (``read``, ``write``, ``admin``) are what the API takes;
    the key's secret and prefix hold an underscore, which ``english_words`` skips."""
    leftovers = {
        name: words
        for name, html in security_pages_in_chinese(app)
        if (words := english_words(html, name="张三 read write admin"))
    }
    assert leftovers == {}


def admin_pages_in_chinese(app: Flask, strict: Flask) -> Iterator[tuple[str, str]]:
    """The admin pages, in Chinese: the list (found, nothing found, bad filters), a user's page
    with a session, a token, a key and an authenticator app, the result of each button, the
    refusals (a member, support, one's own rights and account, an account gone), and the page
    that asks staff for a second factor (``strict``: USERHUB_REQUIRE_MFA_FOR_ADMINS)."""
    with app.test_request_context():
        users.register_user("管理员", PASSWORD, is_admin=True)
        users.register_user("客服", PASSWORD).is_support = True
        users.register_user("李四", PASSWORD)
        target = users.register_user("张三", PASSWORD, email=ADDRESS)
        target_id = target.id
        db.session.commit()
    AuthActions(app.test_client()).login()
    app.test_client().post("/api/v1/tokens", json={"username": "张三", "password": PASSWORD})
    with app.test_request_context():
        owner = db.session.get(User, target_id)
        assert owner is not None
        api_keys.create(owner, "备份", ["read"], 3600)
        totp.confirm(owner, pyotp.TOTP(totp.begin(owner).secret).now())
    client = app.test_client()
    AuthActions(client).login("管理员")
    here = f"/admin/users/{target_id}"
    yield "a member's refusal", chinese_page(browser_of(app, "李四"), "/admin")
    yield "/admin", chinese_page(client, "/admin")
    yield "nothing found", chinese_page(client, "/admin?q=nobody")
    bad = "/admin?role=x&status=y&verified=z&created_from=2024-02-30&created_to=1"
    yield "bad filters", chinese_page(client, bad)
    later = "/admin?created_from=2024-03-02&created_to=2024-03-01"
    yield "days the wrong way round", chinese_page(client, later)
    page = chinese_page(client, here)
    yield "a user's page", page
    support = browser_of(app, "客服")
    yield "support's view", chinese_page(support, here)
    token = {"csrf_token": csrf_token(page)}
    press = {"method": "POST", "data": token, "follow_redirects": True}
    yield "support refused", chinese_page(support, f"{here}/deactivate", method="POST", data=token)
    [session] = re.findall(r'action="([^"]+/sessions/\d+/end)"', page)
    for action in (
        "deactivate",
        "deactivate",
        "reactivate",
        "reactivate",
        "roles/admin/grant",
        "roles/admin/remove",
        "roles/support/grant",
        "roles/support/remove",
        "password-reset",
        "second-factors/reset",
        "sessions/end-all",
        "sessions/end-all",
    ):
        yield action, chinese_page(client, f"{here}/{action}", **press)
    yield "session already ended", chinese_page(client, session, **press)
    for revoke in re.findall(r'action="([^"]+/revoke)"', page):
        yield "revoked", chinese_page(client, revoke, **press)
    yield "already revoked", chinese_page(client, revoke, **press)
    yield "the box not ticked", chinese_page(client, f"{here}/delete", method="POST", data=token)
    mine = re.search(r'href="(/admin/users/\d+)">管理员', chinese_page(client, "/admin"))
    assert mine is not None
    own_rights = f"{mine.group(1)}/roles/admin/remove"
    yield "own admin rights", chinese_page(client, own_rights, method="POST", data=token)
    own = {"method": "POST", "data": {**token, "confirm": "yes"}}
    yield "own account", chinese_page(client, f"{mine.group(1)}/delete", **own)
    deleted = {**own, "follow_redirects": True}
    yield "deleted", chinese_page(client, f"{here}/delete", **deleted)
    yield "gone", chinese_page(client, here)
    yield "no second factor", chinese_page(browser_of(strict, "管理员"), "/admin")


def test_every_admin_page_is_in_chinese(
    app: Flask, build_app: AppBuilder, database_url: str
) -> None:
    strict = build_app(database_url, USERHUB_REQUIRE_MFA_FOR_ADMINS=True)
    leftovers = {
        name: words
        for name, html in admin_pages_in_chinese(app, strict)
        if (words := english_words(html))
    }
    assert leftovers == {}


def test_the_log_in_refused_for_an_unverified_address_is_in_chinese(
    build_mailbox: MailboxBuilder,
) -> None:
    strict = build_mailbox(USERHUB_REQUIRE_VERIFIED_EMAIL=True)
    client = strict.app.test_client()
    auth = AuthActions(client)
    auth.register(email=ADDRESS)
    credentials = {"username": "张三", "password": PASSWORD, "csrf_token": auth.token()}
    refused = chinese_page(client, "/test_post", method="POST", data=credentials)
    assert "请先确认你的电子邮件地址" in refused and "发送新链接" in refused
    assert english_words(refused, name="张三") == set()
    resend = {"username": "张三", "csrf_token": auth.token()}
    sent = chinese_page(client, "/email/verification/resend", method="POST", data=resend)
    assert "请查收邮件" in sent and english_words(sent) == set()


def deletion_pages_in_chinese(mailbox: Mailbox) -> Iterator[tuple[str, str]]:
    """Deleting the account and keeping it, in Chinese: the account page's section, the page
    that asks, the log-in refused with its button, the mailed link's page, a dead link."""
    client = mailbox.app.test_client()
    auth = AuthActions(client)
    auth.register("李四", email=ADDRESS)
    mailbox.only(ADDRESS)
    auth.login("李四")
    yield "account with its deletion section", chinese_page(client, "/account")
    asking = chinese_page(client, "/account/delete")
    yield "/account/delete", asking
    press = {"method": "POST", "data": {"csrf_token": csrf_token(asking)}}
    yield "deletion asked", chinese_page(client, "/account/delete", **press, follow_redirects=True)
    notice = mailbox.only(ADDRESS)
    for part in (text_of(notice), html_of(notice)):
        yield "the deletion notice", part
    credentials = {"username": "李四", "password": PASSWORD, "csrf_token": auth.token()}
    refused = chinese_page(client, "/test_post", method="POST", data=credentials)
    yield "log-in refused, with its button", refused
    keep = {"method": "POST", "data": {"csrf_token": csrf_token(refused)}}
    yield "kept", chinese_page(client, "/account/cancel-deletion", **keep, follow_redirects=True)
    yield (
        "the proof used",
        chinese_page(client, "/account/cancel-deletion", **keep, follow_redirects=True),
    )
    link = link_to(notice, "/email/cancel-deletion")
    yield "the mailed link, once kept", chinese_page(client, link)


def test_deleting_and_keeping_an_account_is_in_chinese(mailbox: Mailbox) -> None:
    leftovers = {
        name: words
        for name, html in deletion_pages_in_chinese(mailbox)
        if (words := english_words(html, name="李四"))
    }
    assert leftovers == {}


def test_the_mail_is_in_the_readers_language(mailbox: Mailbox) -> None:
    """Both parts of a mail composed for a Chinese reader are Chinese, its subject too."""
    client = mailbox.app.test_client()
    token = AuthActions(client).token("/register")
    new_account = {"username": "张三", "password": PASSWORD, "confirm": PASSWORD}
    data = {**new_account, "email": ADDRESS, "csrf_token": token}
    chinese_page(client, "/register", method="POST", data=data, follow_redirects=True)
    forgot = {"account": "张三", "csrf_token": token}
    chinese_page(client, "/password/forgot", method="POST", data=forgot)
    for received in mailbox.new_mail(2):
        mail = received.message
        assert mail["Content-Language"] == "zh-CN"
        assert mail["Subject"] in {"确认你的电子邮件地址", "重置你的密码"}
        for part in (text_of(mail), html_of(mail)):
            assert english_words(part, name="张三") == set(), (mail["Subject"], part)


def test_the_new_device_mail_is_in_the_readers_language(mailbox: Mailbox) -> None:
    """Both new-device mails (a browser's log-in and the API's) to a Chinese reader."""
    owner = AuthActions(mailbox.app.test_client())
    owner.register(email=ADDRESS)
    mailbox.new_mail()
    owner.login()  # the first log-in: no mail
    browser = stranger(mailbox)
    data = {"username": "张三", "password": PASSWORD, "csrf_token": AuthActions(browser).token()}
    assert browser.post("/test_post", data=data, headers=CHINESE).status_code == 302
    stranger(mailbox).post(
        "/api/v1/tokens", json={"username": "张三", "password": PASSWORD}, headers=CHINESE
    )
    for received in mailbox.new_mail(2):
        mail = received.message
        assert mail["Content-Language"] == "zh-CN"
        assert mail["Subject"] == "你的账户有一次新的登录"
        for part in (text_of(mail), html_of(mail)):
            assert "未知浏览器" in part
            assert english_words(part, name="张三") == set(), part


@pytest.mark.parametrize("status", [400, 403, 404, 405, 413, 429, 500, 503])
def test_every_error_page_is_in_the_layout_in_both_languages(app: Flask, status: int) -> None:
    """The statuses no ordinary click reaches (a 403 or a 503 page) are rendered as the error
    handlers render them."""
    for headers, lang in ((CHINESE, "zh-CN"), ({"Accept-Language": "en"}, "en")):
        with app.test_request_context("/somewhere", headers=headers):
            page = error_response(status, status_detail(status, "Wait a moment."))
            html = page.get_data(as_text=True)
        assert page.status_code == status
        assert f'<html lang="{lang}">' in html and f">{status}<" in html
        assert 'class="links"' in html  # the site's navigation: the same layout as every page
        if lang == "zh-CN":
            assert english_words(html) <= {"Wait", "moment"}


def test_the_500_page_is_chinese_for_a_chinese_reader(
    app: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    app.add_url_rule("/explode-zh", view_func=lambda: str(1 / 0))
    app.config["TESTING"] = False
    html = app.test_client().get("/explode-zh", headers=CHINESE).get_data(as_text=True)
    assert "服务器错误" in html and "参考编号" in html
    assert english_words(html) == set()


def test_the_rate_limit_page_is_chinese(build_app: AppBuilder, database_url: str) -> None:
    app = build_app(database_url, RATELIMIT_ENABLED=True, USERHUB_RATELIMIT_LOGIN="1 per minute")
    client = app.test_client()
    data = {
        "username": "x",
        "password": "y",
        "csrf_token": csrf_token(chinese_page(client, "/login")),
    }
    client.post("/test_post", data=data, headers=CHINESE)
    limited = client.post("/test_post", data=data, headers=CHINESE)
    html = limited.get_data(as_text=True)
    assert limited.status_code == 429
    assert "尝试次数过多" in html
    assert english_words(html) == set()


def test_the_switcher_sticks_over_the_browsers_language(client: FlaskClient) -> None:
    switched = client.get("/language/zh-CN?next=/register")
    assert switched.status_code == 302 and switched.headers["Location"] == "/register"
    cookie = switched.headers["Set-Cookie"]
    assert "Max-Age=31536000" in cookie and "SameSite=Lax" in cookie and "HttpOnly" in cookie
    english_browser = {"Accept-Language": "en-US,en"}
    assert "<h1>注册账户</h1>" in client.get("/register", headers=english_browser).text
    client.get("/language/en")
    assert "<h1>Create an account</h1>" in client.get("/register", headers=CHINESE).text


def test_the_switcher_returns_only_within_the_site(client: FlaskClient) -> None:
    assert client.get("/language/zh-CN?next=//evil.example").headers["Location"] == "/"
    assert client.get("/language/fr").status_code == 404


@pytest.mark.parametrize(
    ("accept", "lang"),
    [
        ("zh-CN", "zh-CN"),
        ("zh", "zh-CN"),
        ("zh-Hans-CN,en;q=0.5", "zh-CN"),
        ("en-GB", "en"),
        ("fr", "en"),
        ("", "en"),
    ],
)
def test_the_language_follows_accept_language(client: FlaskClient, accept: str, lang: str) -> None:
    response = client.get("/login", headers={"Accept-Language": accept} if accept else {})
    assert f'<html lang="{lang}">' in response.text
    assert "Accept-Language" in response.vary


def test_the_tutorial_words_stay_literal_in_chinese(client: FlaskClient, auth: AuthActions) -> None:
    home = client.get("/", headers=CHINESE).text
    assert "<title>Hello World! Hello Flask!</title>" in home
    assert "This is my first flask app！" in home
    saved = client.post(
        "/save_data_to_mysql", json={"username": "李四", "password": PASSWORD}, headers=CHINESE
    )
    assert saved.text == "Commit Status:Succeeded, Message:Data inserted successfully."
    again = client.post(
        "/save_data_to_mysql", json={"username": "李四", "password": PASSWORD}, headers=CHINESE
    )
    assert again.get_json()["detail"] == "Commit Status:Failed, Message:用户名已存在。"
    got = client.post("/get_json", json={"username": "李四", "password": "x"}, headers=CHINESE)
    assert got.text == "Data received. username:李四"
    assert client.get("/test_get?user_name=张三", headers=CHINESE).text == "Hello,张三"
    assert "Accept-Language" not in client.get("/test_get?user_name=张三", headers=CHINESE).vary
    missing = client.get("/test_get", headers=CHINESE)
    assert missing.status_code == 400 and missing.text.startswith("缺少查询参数 user_name")


def test_an_uncompiled_catalogue_is_reported_at_start_up(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, build_app: AppBuilder
) -> None:
    """An install that skipped the compile step says so, instead of quietly serving English."""
    uncompiled = i18n.Language("fr", "fr", "Français")  # no translations/fr/ in the package
    monkeypatch.setattr(i18n, "LANGUAGES", (*i18n.LANGUAGES, uncompiled))
    with caplog.at_level(logging.WARNING, logger="userhub"):
        app = build_app("sqlite://")
    assert "no compiled catalogue for fr" in caplog.text
    assert "zh-CN" not in caplog.text  # the real catalogue is compiled
    assert [language.tag for language in app.extensions[i18n.EXTENSION_KEY]] == ["en", "zh-CN"]


def test_a_language_without_a_compiled_catalogue_is_not_offered(
    tmp_path: Path, client: FlaskClient
) -> None:
    """An install without ``messages.mo`` (a wheel built before issue 23 had only the ``.po``)
    serves a Chinese reader English, and says so: ``<html lang="en">``, no 简体中文 to pick."""
    po_only = tmp_path / "zh_Hans_CN" / "LC_MESSAGES"
    po_only.mkdir(parents=True)
    (po_only / "messages.po").write_text("", encoding="utf-8")
    assert i18n.compiled_languages(tmp_path) == (i18n.DEFAULT,)
    app = client.application
    app.extensions[i18n.EXTENSION_KEY] = i18n.compiled_languages(tmp_path)
    page = client.get("/login", headers=CHINESE).text
    assert '<html lang="en">' in page and "Log in" in page and "简体中文" not in page
    client.set_cookie(i18n.COOKIE, "zh-CN")  # chosen when it was offered: English still
    assert '<html lang="en">' in client.get("/login").text
