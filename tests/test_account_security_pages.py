"""The account's security pages, through the real routes on SQLite and MariaDB: the sessions
(end one, end the others, end this one), the activity log, the API keys (a secret shown once).

Each browser is a test client of its own (its own cookie jar); what a page says is checked in
its HTML, what it did by what the other browser, the API or the database sees next."""

from __future__ import annotations

import re

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from tests.helpers import (
    ME,
    PASSWORD,
    AuthActions,
    bearer,
    csrf_token,
    is_logged_in,
)
from userhub.extensions import db
from userhub.models import SecurityEvent
from userhub.pages.account_security import EVENTS_PER_PAGE
from userhub.services import security_log
from userhub.services.users import find_user, register_user, update_user

SESSIONS = "/account/sessions"
ACTIVITY = "/account/activity"
KEYS = "/account/api-keys"
CHROME = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)
FIREFOX = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0"


def browser(app: Flask, username: str = "张三", user_agent: str = CHROME) -> AuthActions:
    """Another browser (a cookie jar of its own), logged in as ``username``."""
    client = app.test_client()
    client.environ_base["HTTP_USER_AGENT"] = user_agent
    auth = AuthActions(client)
    assert auth.login(username).status_code == 302
    return auth


def page(client: FlaskClient, path: str) -> str:
    response = client.get(path)
    assert response.status_code == 200, (path, response.status_code)
    return response.get_data(as_text=True)


def post(client: FlaskClient, path: str, page_path: str, **data: object) -> TestResponse:
    """Press a button (post a form) of ``page_path``, with that page's CSRF token."""
    token = csrf_token(page(client, page_path))
    return client.post(path, data={"csrf_token": token, **data})


def session_ids(html: str) -> list[int]:
    """The sessions the page lists, by their End (or Log out) buttons."""
    return [int(found) for found in re.findall(r'action="/account/sessions/(\d+)/end"', html)]


def this_device(html: str) -> int:
    """The session the page marks as this browser's."""
    found = re.search(r'id="session-(\d+)">[^<]*<span class="tag tag-ok">This device', html)
    assert found, "no session is marked as this device"
    return int(found.group(1))


def api_status(client: FlaskClient) -> int:
    """What ``GET /api/v1/users/me`` answers to this browser's cookie."""
    return client.get(ME).status_code


@pytest.fixture
def two_browsers(app: Flask, auth: AuthActions) -> tuple[AuthActions, AuthActions]:
    """张三 logged in twice: here (Chrome) and elsewhere (Firefox)."""
    auth.register()
    return browser(app), browser(app, user_agent=FIREFOX)


# --- Sessions ----------------------------------------------------------------------------------


def test_the_sessions_page_lists_both_browsers_and_marks_this_one(
    two_browsers: tuple[AuthActions, AuthActions],
) -> None:
    here, elsewhere = two_browsers
    html = page(here.client, SESSIONS)
    assert len(session_ids(html)) == 2
    assert html.count("This device") == 1
    assert "Chrome 131 on Linux" in html and "Firefox 133 on Windows" in html
    assert "127.0.0.1" in html and "Password" in html
    assert re.search(r'<time datetime="\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ">\w+ \d+, \d{4}', html)
    assert this_device(html) != this_device(page(elsewhere.client, SESSIONS))


def test_ending_the_other_session_logs_that_browser_out_of_pages_and_api(
    two_browsers: tuple[AuthActions, AuthActions],
) -> None:
    here, elsewhere = two_browsers
    assert api_status(elsewhere.client) == 200
    html = page(here.client, SESSIONS)
    mine = this_device(html)
    [other] = [found for found in session_ids(html) if found != mine]

    ended = post(here.client, f"{SESSIONS}/{other}/end", SESSIONS)
    assert ended.status_code == 302 and ended.location == SESSIONS
    after = page(here.client, SESSIONS)
    assert "The session was ended" in after
    assert session_ids(after) == [mine]

    response = elsewhere.client.get("/account")
    assert response.status_code == 302 and response.location.startswith("/login")
    assert api_status(elsewhere.client) == 401
    assert is_logged_in(here.client, SESSIONS) and api_status(here.client) == 200


def test_ending_this_session_from_the_list_logs_out(
    two_browsers: tuple[AuthActions, AuthActions],
) -> None:
    here, elsewhere = two_browsers
    mine = this_device(page(here.client, SESSIONS))
    response = post(here.client, f"{SESSIONS}/{mine}/end", SESSIONS)
    assert response.status_code == 302 and response.location == "/"
    assert "You have been logged out." in page(here.client, "/")
    assert not is_logged_in(here.client, SESSIONS)
    assert is_logged_in(elsewhere.client, SESSIONS)


def test_log_out_everywhere_else_keeps_this_browser_and_the_api_keys(
    app: Flask, auth: AuthActions
) -> None:
    auth.register()
    here, second, third = browser(app), browser(app), browser(app, user_agent=FIREFOX)
    key = create_key(here.client, "backup")
    assert "Log out everywhere else" in page(here.client, SESSIONS)

    response = post(here.client, f"{SESSIONS}/end-others", SESSIONS)
    assert response.status_code == 302 and response.location == SESSIONS
    html = page(here.client, SESSIONS)
    assert "Your other sessions were logged out." in html
    assert len(session_ids(html)) == 1 and "Log out everywhere else" not in html
    assert not is_logged_in(second.client) and not is_logged_in(third.client)
    assert here.client.get(ME, headers=bearer(key)).status_code == 200
    [event] = events_of(app, security_log.SESSION_ENDED)
    assert security_log.details_of(event) == {"ended_sessions": 2}
    assert "Other sessions logged out" in page(here.client, ACTIVITY)

    again = post(here.client, f"{SESSIONS}/end-others", SESSIONS)
    assert again.status_code == 302
    assert "You had no other sessions." in page(here.client, SESSIONS)
    assert len(events_of(app, security_log.SESSION_ENDED)) == 1


def test_a_cookie_copied_before_log_out_is_refused_afterwards(
    app: Flask, client: FlaskClient, auth: AuthActions
) -> None:
    auth.register()
    auth.login()
    cookie = client.get_cookie(app.config["SESSION_COOKIE_NAME"])
    assert cookie is not None and is_logged_in(client, SESSIONS)
    assert auth.logout().status_code == 302

    replay = app.test_client()
    replay.set_cookie(app.config["SESSION_COOKIE_NAME"], cookie.value)
    response = replay.get(SESSIONS)
    assert response.status_code == 302 and response.location.startswith("/login")
    assert api_status(replay) == 401


def test_nobody_ends_someone_elses_session_by_its_id(app: Flask, auth: AuthActions) -> None:
    auth.register()
    auth.register("李四")
    victim = browser(app, "李四")
    theirs = this_device(page(victim.client, SESSIONS))
    attacker = browser(app)

    response = post(attacker.client, f"{SESSIONS}/{theirs}/end", SESSIONS)
    assert response.status_code == 302
    assert "That session had already ended." in page(attacker.client, SESSIONS)
    assert is_logged_in(victim.client, SESSIONS) and theirs in session_ids(
        page(victim.client, SESSIONS)
    )
    assert theirs not in session_ids(page(attacker.client, SESSIONS))
    assert events_of(app, security_log.SESSION_ENDED) == []


def test_the_pages_need_a_log_in(client: FlaskClient) -> None:
    for path in (SESSIONS, ACTIVITY, KEYS):
        response = client.get(path)
        assert response.status_code == 302, path
        assert response.location.startswith("/login"), path


# --- CSRF --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "action", ["end-other", "end-this", "end-others", "create-key", "revoke-key"]
)
def test_every_button_needs_the_csrf_token(
    app: Flask, two_browsers: tuple[AuthActions, AuthActions], action: str
) -> None:
    """Without the token, or with a forged one: 400, and nothing changed."""
    here, elsewhere = two_browsers
    create_key(here.client, "kept")
    html = page(here.client, SESSIONS)
    mine = this_device(html)
    [other] = [found for found in session_ids(html) if found != mine]
    [key_id] = re.findall(r'action="/account/api-keys/(\d+)/revoke"', page(here.client, KEYS))
    path, data = {
        "end-other": (f"{SESSIONS}/{other}/end", {}),
        "end-this": (f"{SESSIONS}/{mine}/end", {}),
        "end-others": (f"{SESSIONS}/end-others", {}),
        "create-key": (KEYS, {"name": "forged", "scopes": "write", "lifetime": "30"}),
        "revoke-key": (f"{KEYS}/{key_id}/revoke", {}),
    }[action]
    for token in ({}, {"csrf_token": "forged"}):
        response = here.client.post(path, data={**data, **token})
        assert response.status_code == 400, (action, token)
        assert "security token" in response.get_data(as_text=True)
    assert is_logged_in(here.client, SESSIONS) and is_logged_in(elsewhere.client, SESSIONS)
    keys = page(here.client, KEYS)
    assert "kept" in keys and "forged" not in keys


# --- Activity ----------------------------------------------------------------------------------


def events_of(app: Flask, kind: str) -> list[SecurityEvent]:
    with app.app_context():
        events, _total = security_log.page(1, 100, kind=kind)
        db.session.expunge_all()
        return events


def test_the_activity_page_shows_log_ins_and_failed_ones(
    app: Flask, client: FlaskClient, auth: AuthActions
) -> None:
    auth.register()
    assert auth.login(password="not the password").status_code == 200
    client.environ_base["HTTP_USER_AGENT"] = CHROME
    auth.login()
    html = page(client, ACTIVITY)
    logged_in = html.index("Logged in")
    failed = html.index("Failed log-in: wrong password")
    created = html.index("Account created")
    assert logged_in < failed < created  # the newest first
    assert "Chrome 131 on Linux" in html and "127.0.0.1" in html
    assert "by an administrator" not in html


def test_the_activity_page_says_what_an_administrator_did(
    app: Flask, client: FlaskClient, auth: AuthActions
) -> None:
    auth.register()
    with app.app_context():
        admin = register_user("admin", PASSWORD, is_admin=True)
        user = find_user("张三")
        assert user is not None
        security_log.record_now(security_log.API_KEY_REVOKED, user.id, actor_id=admin.id, name="x")
    auth.login()
    html = page(client, ACTIVITY)
    assert "API key revoked: x" in html and "by an administrator" in html


def test_the_activity_is_paginated(app: Flask, client: FlaskClient, auth: AuthActions) -> None:
    auth.register()
    for _ in range(EVENTS_PER_PAGE):
        auth.login(password="wrong password")
    auth.login()  # 1 registration + 20 failures + 1 log-in: two pages
    first = page(client, ACTIVITY)
    assert first.count('class="card"') == EVENTS_PER_PAGE
    assert "Page 1 of 2" in first and 'href="/account/activity?page=2"' in first
    second = page(client, f"{ACTIVITY}?page=2")
    assert second.count('class="card"') == 2 and "Account created" in second
    assert 'href="/account/activity?page=1"' in second and "Account created" not in first
    for beyond in ("3", "0", "-1", str(2**63), "1" + "0" * 30):
        assert client.get(f"{ACTIVITY}?page={beyond}").status_code == 404
    assert client.get(f"{ACTIVITY}?page=x").status_code == 200  # the first page


# --- API keys ----------------------------------------------------------------------------------


def create_key(client: FlaskClient, name: str, *scopes: str, lifetime: str = "30") -> str:
    """Make a key through the page; its secret, read from the one answer that shows it."""
    response = post(
        client, KEYS, KEYS, name=name, scopes=list(scopes or ["write"]), lifetime=lifetime
    )
    assert response.status_code == 201, response.get_data(as_text=True)[-2000:]
    found = re.search(
        r'<textarea id="secret" class="secret"[^>]*>([^<]+)</textarea>', response.text
    )
    assert found, "the answer shows no key"
    return found.group(1)


def test_a_new_key_is_shown_once_and_works_as_its_scopes_say(
    app: Flask, client: FlaskClient, auth: AuthActions
) -> None:
    auth.register()
    auth.login()
    response = post(client, KEYS, KEYS, name="backup script", scopes=["read"], lifetime="90")
    assert response.status_code == 201
    assert response.headers["Cache-Control"] == "no-store"
    secret = re.search(r">(uh_[^<]+)</textarea>", response.text)
    assert secret is not None
    key = secret.group(1)
    assert "shown only this once" in response.text

    listed = page(client, KEYS)
    assert key not in listed and "backup script" in listed
    assert f"<code>{key[:11]}</code>" in listed  # its start, to recognise it by
    assert "never" in listed  # not used yet
    assert key not in page(client, ACTIVITY) and key not in page(client, "/account")
    assert key not in get_session_cookie(app, client)

    assert client.get(ME, headers=bearer(key)).status_code == 200
    write = client.patch(ME, json={"display_name": "x"}, headers=bearer(key))
    assert write.status_code == 403  # a read key
    assert "API key created: backup script" in page(client, ACTIVITY)


def get_session_cookie(app: Flask, client: FlaskClient) -> str:
    """What the session cookie holds, decoded (it is signed, not encrypted)."""
    cookie = client.get_cookie(app.config["SESSION_COOKIE_NAME"])
    assert cookie is not None
    serializer = app.session_interface.get_signing_serializer(app)  # type: ignore[attr-defined]
    return str(serializer.loads(cookie.value))


def test_a_revoked_key_stops_working(app: Flask, client: FlaskClient, auth: AuthActions) -> None:
    auth.register()
    auth.login()
    key = create_key(client, "old", "write")
    kept = create_key(client, "kept", "read")
    html = page(client, KEYS)
    ids = dict(re.findall(r'<h2 id="key-(\d+)">([^<]+)</h2>', html))
    old = next(key_id for key_id, name in ids.items() if name == "old")

    response = post(client, f"{KEYS}/{old}/revoke", KEYS)
    assert response.status_code == 302 and response.location == KEYS
    after = page(client, KEYS)
    assert "The API key was revoked" in after
    assert '<h2 id="key-' + old not in after and "kept" in after
    assert client.get(ME, headers=bearer(key)).status_code == 401
    assert client.get(ME, headers=bearer(kept)).status_code == 200
    assert "API key revoked: old" in page(client, ACTIVITY)

    again = post(client, f"{KEYS}/{old}/revoke", KEYS)
    assert again.status_code == 302
    assert "That API key was already revoked or has expired." in page(client, KEYS)


def test_nobody_revokes_someone_elses_key(app: Flask, auth: AuthActions) -> None:
    auth.register()
    auth.register("李四")
    owner = browser(app, "李四")
    key = create_key(owner.client, "theirs")
    [key_id] = re.findall(r'action="/account/api-keys/(\d+)/revoke"', page(owner.client, KEYS))
    attacker = browser(app)
    post(attacker.client, f"{KEYS}/{key_id}/revoke", KEYS)
    assert "That API key was already revoked" in page(attacker.client, KEYS)
    assert owner.client.get(ME, headers=bearer(key)).status_code == 200
    assert "theirs" in page(owner.client, KEYS)


def test_html_in_a_key_name_or_browser_shows_as_text(app: Flask, auth: AuthActions) -> None:
    auth.register()
    # ua-parser names this browser "b>bot": a header can put markup into the summary.
    here = browser(app, user_agent="Mozilla/5.0 (compatible; <b>bot</b>/1.0; +http://x)")
    name = '<img src=x onerror="alert(1)">'
    response = post(here.client, KEYS, KEYS, name=name, scopes=["read"], lifetime="30")
    assert response.status_code == 201
    escaped = "&lt;img src=x onerror=&#34;alert(1)&#34;&gt;"
    for html in (response.text, page(here.client, KEYS), page(here.client, ACTIVITY)):
        assert name not in html and escaped in html
    with app.app_context():  # whatever a stored summary holds
        user = find_user("张三")
        assert user is not None
        db.session.add(SecurityEvent(user_id=user.id, type="logged-in", user_agent="<i>x</i>"))
        db.session.commit()
    for path in (SESSIONS, ACTIVITY):
        html = page(here.client, path)
        assert "b&gt;bot" in html and "b>bot" not in html
    activity = page(here.client, ACTIVITY)
    assert "&lt;i&gt;x&lt;/i&gt;" in activity and "<i>x</i>" not in activity


def test_a_key_needs_a_name_and_a_scope(client: FlaskClient, auth: AuthActions) -> None:
    auth.register()
    auth.login()
    empty = post(client, KEYS, KEYS, name="", scopes=["read"], lifetime="30")
    assert empty.status_code == 400
    assert "Give the key a name" in empty.text and 'aria-invalid="true"' in empty.text
    no_scope = post(client, KEYS, KEYS, name="nothing", lifetime="30")
    assert no_scope.status_code == 422
    assert "Choose at least one scope" in no_scope.text and 'id="scopes-error"' in no_scope.text
    odd_lifetime = post(client, KEYS, KEYS, name="forever", scopes=["read"], lifetime="9999")
    assert odd_lifetime.status_code == 422
    assert "You have no API keys." in page(client, KEYS)


def test_only_staff_are_offered_the_admin_scope(
    app: Flask, client: FlaskClient, auth: AuthActions
) -> None:
    auth.register()
    auth.login()
    offered = page(client, KEYS)
    assert '<input checked id="scopes-0" name="scopes" type="checkbox" value="read">' in offered
    assert 'type="checkbox" value="write"' in offered and 'value="admin"' not in offered
    refused = post(client, KEYS, KEYS, name="sneaky", scopes=["read", "admin"], lifetime="30")
    assert refused.status_code == 422
    assert "Only an administrator or a support account can make a key with the admin scope." in (
        refused.text
    )

    with app.app_context():
        register_user("root", PASSWORD, is_admin=True)
    admin = browser(app, "root")
    assert 'value="admin"' in page(admin.client, KEYS)
    create_key(admin.client, "ops", "read", "admin", lifetime="365")
    assert "read and admin" in page(admin.client, KEYS)

    with app.app_context():  # support: its role's reads, through a key as through the page
        helpdesk, root = register_user("helpdesk", PASSWORD), find_user("root")
        update_user(helpdesk, {"is_support": True}, by_admin=root)
    support = browser(app, "helpdesk")
    assert 'value="admin"' in page(support.client, KEYS)
    create_key(support.client, "tickets", "read", "admin", lifetime="30")
    assert "read and admin" in page(support.client, KEYS)


def test_the_account_page_links_to_the_security_pages(
    client: FlaskClient, auth: AuthActions
) -> None:
    auth.register()
    auth.login()
    html = page(client, "/account")
    for path in (SESSIONS, ACTIVITY, KEYS):
        assert f'href="{path}"' in html


def test_the_log_keeps_details_too_long_for_their_column_readable(
    app: Flask, client: FlaskClient, auth: AuthActions
) -> None:
    """A detail whose JSON is over the column's 500 characters (300 quotes take 600): the event
    keeps the start of the value rather than JSON cut short, which the page could not read.
    (Key names are refused with control characters and cut at 100, so this is the log's own
    guard, tried directly.)"""
    auth.register()
    auth.login()
    with app.app_context():
        user = find_user("张三")
        assert user is not None
        security_log.record_now(security_log.API_KEY_CREATED, user.id, name='"' * 300)
    assert "API key created: &#34;&#34;&#34;" in page(client, ACTIVITY)
