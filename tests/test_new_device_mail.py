"""The new-device mail, end to end on SQLite and MariaDB: a log-in from a client the account has
not used (no device cookie naming it), and not the account's first, mails its owner when, where
from and with what, through the outbox and a real SMTP server (the sink); the mail's link opens
a page whose button (a POST with its CSRF token) ends that browser session, or revokes that API
token, once. The mail is read only from what the sink received (``tests/mail_support.py``).
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from html import unescape
from urllib.parse import quote, quote_plus

import pytest
import time_machine
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from tests.helpers import PASSWORD, ApiActions, AuthActions, bearer, csrf_token, is_logged_in
from tests.mail_support import Mailbox, html_of, link_to, links, text_of
from tests.smtp_server import ReceivedMail

ADDRESS = "zhangsan@example.com"
SUBJECT = "A new log-in to your account"
FIREFOX = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0"
CHROME = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)
CURL = "curl/8.5.0"
OWNER_IP, STRANGER_IP = "198.51.100.20", "203.0.113.9"
WHEN = re.compile(r"When: (\d{4}-\d\d-\d\d \d\d:\d\d) UTC")


@pytest.fixture
def app(mailbox: Mailbox) -> Flask:
    """The app of these tests (and of ``api``): its mail goes to the sink of ``mailbox``."""
    return mailbox.app


def client_at(app: Flask, user_agent: str, ip: str) -> FlaskClient:
    """A client of its own (its own cookie jar: a device of its own) with this browser and
    address."""
    client = app.test_client()
    client.environ_base.update(HTTP_USER_AGENT=user_agent, REMOTE_ADDR=ip)
    return client


def browser(app: Flask, user_agent: str = FIREFOX, ip: str = STRANGER_IP) -> AuthActions:
    return AuthActions(client_at(app, user_agent, ip))


@pytest.fixture
def owner(app: Flask, mailbox: Mailbox) -> AuthActions:
    """The owner's browser: the account registered there with an address, and logged in there
    once, which mails nothing (a first log-in: every device is new then)."""
    first = browser(app, CHROME, OWNER_IP)
    first.register(email=ADDRESS)
    assert mailbox.only(ADDRESS)["Subject"] == "Confirm your e-mail address"
    assert first.login().status_code == 302
    assert mailbox.deliver() == 0
    return first


def press(client: FlaskClient, link: str) -> TestResponse:
    """The link's button: a POST with the browser's CSRF token (read from any of its forms: a
    used link's page has none)."""
    token = csrf_token(client.get("/password/forgot").text)
    return client.post(link, data={"csrf_token": token})


def flashes(client: FlaskClient, page: str) -> list[str]:
    found = re.findall(r'<p class="flash[^"]*" role="status">(.*?)</p>', client.get(page).text)
    return [unescape(message) for message in found]


def what_it_does(page: TestResponse) -> str:
    found = re.search(r'<p id="what-it-does">(.*?)</p>', page.text, re.S)
    assert found is not None, page.text
    return unescape(found[1]).strip()


def mailed_time(mail: EmailMessage) -> datetime:
    found = WHEN.search(text_of(mail))
    assert found is not None, text_of(mail)
    return datetime.strptime(found[1], "%Y-%m-%d %H:%M").replace(tzinfo=UTC)


def assert_near_now(when: datetime, started: datetime) -> None:
    """A time shown to the minute lies in the minutes of the test."""
    assert started.replace(second=0, microsecond=0) <= when <= datetime.now(UTC)


def events(api: ApiActions, kind: str) -> list[dict[str, object]]:
    return [row for row in api.rows("security_event") if row["type"] == kind]


def session_key(client: FlaskClient) -> str:
    """The key of the client's browser session, as its (signed) cookie carries it."""
    with client.session_transaction() as session:
        return str(session["_user_id"])


# --- Who gets a mail ---------------------------------------------------------------------------


def test_a_log_in_from_a_new_browser_mails_when_where_and_with_what(
    app: Flask, owner: AuthActions, mailbox: Mailbox
) -> None:
    started = datetime.now(UTC)
    stranger = browser(app)
    assert stranger.login().status_code == 302

    [received] = mailbox.new_mail()
    mail = received.message
    assert received.rcpt_tos == [ADDRESS]
    assert mail["Subject"] == SUBJECT
    text, html = text_of(mail), unescape(html_of(mail))
    for part in (text, html):
        assert "There was a new log-in to your account 张三" in part
        assert f"From: {STRANGER_IP}" in part
        assert "With: Firefox 133 on Windows" in part
        assert "Through: a browser" in part
        assert "If this was you, there is nothing to do." in part
        assert "If it was not you, end that session now" in part
    assert_near_now(mailed_time(mail), started)
    end = link_to(mail, "/email/end-session")
    assert f'<a href="{app.config["USERHUB_PUBLIC_URL"]}{end}">End that session</a>' in html
    assert f"{app.config['USERHUB_PUBLIC_URL']}/password/forgot" in links(mail)


def test_a_known_device_mails_nothing(app: Flask, owner: AuthActions, mailbox: Mailbox) -> None:
    """The owner's browser again, and a new one once it has logged in (its device cookie now
    names the account): no mail. The cookie is what counts, not the address or browser."""
    assert owner.login().status_code == 302
    other = browser(app, CHROME, OWNER_IP)  # the same browser and address, another cookie jar
    assert other.login().status_code == 302
    assert mailbox.only(ADDRESS)["Subject"] == SUBJECT
    assert other.login().status_code == 302
    assert owner.login().status_code == 302
    assert mailbox.deliver() == 0


def test_an_account_without_an_address_gets_no_mail_and_logs_in_as_usual(
    app: Flask, api: ApiActions, mailbox: Mailbox
) -> None:
    first = browser(app, CHROME, OWNER_IP)
    first.register()
    assert first.login().status_code == 302
    stranger = browser(app)
    assert stranger.login().status_code == 302
    reply = client_at(app, CURL, STRANGER_IP).post(
        "/api/v1/tokens", json={"username": "张三", "password": PASSWORD}
    )
    assert reply.status_code == 201
    assert is_logged_in(first.client) and is_logged_in(stranger.client)
    assert mailbox.deliver() == 0
    assert len(events(api, "logged-in")) == 3


# --- A browser's session, ended by the link -----------------------------------------------------


def test_the_links_button_ends_that_session_once(
    app: Flask, api: ApiActions, owner: AuthActions, mailbox: Mailbox
) -> None:
    started = datetime.now(UTC)
    stranger = browser(app)
    stranger.login()
    end = link_to(mailbox.only(ADDRESS), "/email/end-session")

    page = owner.client.get(end)
    assert page.status_code == 200
    shown = what_it_does(page)
    said = re.fullmatch(
        rf"Press the button to end the session of Firefox 133 on Windows from {STRANGER_IP} "
        r"that logged in to your account at (\S+ \S+) UTC: that browser is logged out at once\.",
        shown,
    )
    assert said is not None, shown
    logged_in_at = datetime.strptime(said[1], "%Y-%m-%d %H:%M").replace(tzinfo=UTC)
    assert_near_now(logged_in_at, started)
    assert f'<form method="post" action="{end}">' in unescape(page.text)
    owner.client.get(end)  # a mail scanner fetching it again
    assert owner.client.post(end).status_code == 400  # no CSRF token: refused
    assert is_logged_in(stranger.client)

    done = press(owner.client, end)
    assert done.status_code == 302 and done.location == "/password/forgot"
    assert flashes(owner.client, "/password/forgot") == [
        "That session is ended: its browser is logged out.",
        "If that log-in was not yours, someone knows your password: choose a new one.",
    ]
    assert not is_logged_in(stranger.client)
    assert is_logged_in(owner.client), "only that session ends"
    [ended] = events(api, "session-ended")
    assert json.loads(str(ended["details"])) == {
        "ended_session_id": ended_session_id(api, stranger_ip=STRANGER_IP),
        "via": "new-device-mail",
    }

    again = press(owner.client, end)
    assert again.status_code == 400
    assert "This link is not valid" in again.text
    assert "to see your account's sessions and end any of them" in unescape(again.text)
    assert 'href="/login?next=/account/sessions"' in unescape(again.text)
    assert len(events(api, "session-ended")) == 1


def ended_session_id(api: ApiActions, stranger_ip: str) -> int:
    """The session the stranger's log-in made (its ``logged-in`` event names it)."""
    [event] = [e for e in events(api, "logged-in") if e["ip"] == stranger_ip]
    return int(str(event["session_id"]))


def test_a_session_that_ended_meanwhile_has_nothing_left_to_end(
    app: Flask, api: ApiActions, owner: AuthActions, mailbox: Mailbox
) -> None:
    """Nor does it touch the owner's next session, which is a new row (session ids are never
    given again, on SQLite too: AUTOINCREMENT)."""
    stranger = browser(app)
    stranger.login()
    end = link_to(mailbox.only(ADDRESS), "/email/end-session")
    stranger.logout()
    owner.login()
    assert api.rows("user_session")[-1]["id"] > ended_session_id(api, STRANGER_IP)

    page = owner.client.get(end)
    assert page.status_code == 200
    assert what_it_does(page) == "That session has ended already: there is nothing left to end."
    assert "<button" not in page.text.split("<main", 1)[1]
    assert press(owner.client, end).location == "/password/forgot"
    assert flashes(owner.client, "/password/forgot")[0] == "That session had ended already."
    assert is_logged_in(owner.client)
    assert press(owner.client, end).status_code == 400  # spent all the same


def test_the_link_expires_after_seven_days(
    app: Flask, owner: AuthActions, mailbox: Mailbox
) -> None:
    stranger = browser(app)
    stranger.login()
    end = link_to(mailbox.only(ADDRESS), "/email/end-session")
    with time_machine.travel(timedelta(days=7, seconds=1), tick=True):
        page = owner.client.get(end)
    assert page.status_code == 400
    assert "This link has expired. Ask for a new one." in page.text
    assert '<a href="/password/forgot">ask for a link to reset your password</a>' in page.text


def test_a_sessions_link_revokes_no_token(app: Flask, owner: AuthActions, mailbox: Mailbox) -> None:
    """Each link has its purpose: on the other page it is not valid, and stays unused."""
    browser(app).login()
    end = link_to(mailbox.only(ADDRESS), "/email/end-session")
    wrong = end.replace("/email/end-session", "/email/end-token")
    assert owner.client.get(wrong).status_code == 400
    assert press(owner.client, wrong).status_code == 400
    assert owner.client.get(end).status_code == 200


# --- An API log-in's token, revoked by the link -------------------------------------------------


def test_an_api_log_in_mails_a_link_that_revokes_its_token(
    app: Flask, api: ApiActions, owner: AuthActions, mailbox: Mailbox
) -> None:
    started = datetime.now(UTC)
    script = client_at(app, CURL, STRANGER_IP)
    reply = script.post("/api/v1/tokens", json={"username": "张三", "password": PASSWORD})
    assert reply.status_code == 201
    token = reply.get_json()["token"]

    mail = mailbox.only(ADDRESS)
    text = text_of(mail)
    assert "With: curl 8" in text and "Through: the API (a log-in token)" in text
    assert "If it was not you, revoke that token now" in text
    assert_near_now(mailed_time(mail), started)
    end = link_to(mail, "/email/end-token")
    assert "/email/end-session" not in text

    page = owner.client.get(end)
    assert page.status_code == 200
    assert what_it_does(page).startswith(
        f"Press the button to revoke the API token that curl 8 from {STRANGER_IP} got at "
    )
    assert ">Revoke the token</button>" in page.text
    assert script.get("/api/v1/users/me", headers=bearer(token)).status_code == 200

    done = press(owner.client, end)
    assert done.status_code == 302 and done.location == "/password/forgot"
    assert flashes(owner.client, "/password/forgot")[0] == (
        "That token is revoked: it no longer works."
    )
    assert script.get("/api/v1/users/me", headers=bearer(token)).status_code == 401
    assert is_logged_in(owner.client)
    [revoked] = events(api, "token-revoked")
    assert json.loads(str(revoked["details"]))["via"] == "new-device-mail"
    assert press(owner.client, end).status_code == 400


def test_a_second_api_log_in_from_the_same_client_is_a_known_device(
    app: Flask, owner: AuthActions, mailbox: Mailbox
) -> None:
    """A client that keeps its cookies (requests.Session, Postman) is mailed about once."""
    script = client_at(app, CURL, STRANGER_IP)
    for _ in range(2):
        reply = script.post("/api/v1/tokens", json={"username": "张三", "password": PASSWORD})
        assert reply.status_code == 201
    assert mailbox.only(ADDRESS)["Subject"] == SUBJECT
    assert mailbox.deliver() == 0


# --- What the mail must not carry ---------------------------------------------------------------


def secret_forms(secret: str) -> set[str]:
    """A secret as it could leak: as is, JSON-escaped, URL-encoded."""
    return {secret, json.dumps(secret)[1:-1], quote(secret), quote_plus(secret)}


def mail_texts(received: ReceivedMail) -> str:
    """The mail as sent (its raw bytes) and as read (both parts, decoded): a body in base64 or
    quoted-printable hides nothing from the search."""
    mail = received.message
    return "\n".join(
        [received.raw.decode("utf-8", "replace"), text_of(mail), html_of(mail), str(mail)]
    )


def test_the_mail_carries_no_password_token_or_session_key(
    app: Flask, owner: AuthActions, mailbox: Mailbox
) -> None:
    stranger = browser(app)
    stranger.login()
    script = client_at(app, CURL, STRANGER_IP)
    token = script.post(
        "/api/v1/tokens", json={"username": "张三", "password": PASSWORD}
    ).get_json()["token"]
    secrets = {
        "the password": PASSWORD,
        "the token": token,
        "the token without its prefix": token.removeprefix("uh_"),
        "the session key": session_key(stranger.client),
    }
    for received in mailbox.new_mail(2):
        assert received.message["Subject"] == SUBJECT
        texts = mail_texts(received)
        assert "/email/end-" in texts  # the search is of the real mail
        found = [
            name for name, secret in secrets.items() for s in secret_forms(secret) if s in texts
        ]
        assert found == []


def test_a_made_up_browser_name_puts_no_link_in_the_mail(
    app: Flask, owner: AuthActions, mailbox: Mailbox
) -> None:
    """The browser summary is what the client says; a ``User-Agent`` with an address in it
    (which ua-parser passes on as a device name) must not become a link in a security mail."""
    crafted = "Mozilla/5.0 (Linux; Android 10; http://evil.example/reset) AppleWebKit/537.36"
    browser(app, crafted).login()
    mail = mailbox.only(ADDRESS)
    public = app.config["USERHUB_PUBLIC_URL"]
    assert all(link.startswith(public) for link in links(mail))
    assert "evil.example" not in text_of(mail) + html_of(mail)
    assert "With: Android 10 on Android (http evil example reset)" in text_of(mail)
