"""The admin pages through the real routes, on SQLite and MariaDB: who may see them (a visitor
is sent to log in, a member gets 403, support sees every page and every button answers 403,
an administrator may do everything), the list's search, filters and pages, each button's
action and the security event naming the administrator, and the refusals (no CSRF token, an
administrator's own rights or account, bad filters, an account gone).

Each browser is a test client of its own; what a page says is checked in its HTML, what a
button did by what the database, the owner's browser or the SMTP server sees next."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pyotp
import pytest
import sqlalchemy as sa
import time_machine
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from tests.helpers import (
    PASSWORD,
    AppBuilder,
    AuthActions,
    browser_of,
    csrf_token,
    is_logged_in,
)
from tests.mail_support import Mailbox, link_to
from userhub.extensions import db
from userhub.models import ApiToken, BrowserSession, SecurityEvent, User
from userhub.services import api_keys, security_log, sessions, totp, users

ADMIN = "/admin"
CHINESE = {"Accept-Language": "zh-CN,zh;q=0.9"}
ADDRESS = "target@example.com"


@dataclass
class Staff:
    """The people of a test: an administrator, a support user and a member, each logged in in
    a browser of their own, and the account they look after (``target``), logged in too, with
    a log-in token, an API key and an authenticator app."""

    app: Flask
    admin: FlaskClient
    support: FlaskClient
    member: FlaskClient
    owner: FlaskClient
    admin_id: int
    target_id: int

    def user(self, user_id: int | None = None) -> User:
        """The account as the database holds it now (``target`` by default)."""
        with self.app.app_context():
            found = db.session.get(User, user_id or self.target_id)
            assert found is not None
            db.session.expunge(found)
            return found

    def events(self, kind: str) -> list[SecurityEvent]:
        """The target's events of this kind, oldest first."""
        with self.app.app_context():
            rows = db.session.scalars(
                sa.select(SecurityEvent)
                .where(SecurityEvent.user_id == self.target_id, SecurityEvent.type == kind)
                .order_by(SecurityEvent.id)
            ).all()
            db.session.expunge_all()
            return list(rows)

    def count(self, model: type[object], **where: object) -> int:
        with self.app.app_context():
            query = sa.select(sa.func.count()).select_from(model).filter_by(**where)
            return int(db.session.scalar(query) or 0)

    def snapshot(self) -> tuple[object, ...]:
        """What any button could change: the target's row, its sessions, tokens and events."""
        target = self.user()
        return (
            target.is_admin,
            target.is_support,
            target.deactivated_at,
            target.password_hash,
            self.count(BrowserSession, user_id=self.target_id),
            self.count(ApiToken, user_id=self.target_id),
            self.count(SecurityEvent),
            self.count(User),
            totp_enabled(self.app, self.target_id),
        )


def totp_enabled(app: Flask, user_id: int) -> bool:
    with app.app_context():
        found = db.session.get(User, user_id)
        return found is not None and totp.enabled(found)


def make_account(app: Flask, username: str, **fields: object) -> int:
    with app.test_request_context():
        return users.register_user(username, PASSWORD, **fields).id  # type: ignore[arg-type]


def account_id(app: Flask, username: str) -> int:
    with app.app_context():
        found = users.find_user(username)
        assert found is not None
        return found.id


def tokens_of(app: Flask, user_id: int) -> list[ApiToken]:
    with app.app_context():
        rows = db.session.scalars(sa.select(ApiToken).where(ApiToken.user_id == user_id)).all()
        db.session.expunge_all()
        return list(rows)


def give_support(app: Flask, user_id: int) -> None:
    with app.test_request_context():
        user = db.session.get(User, user_id)
        assert user is not None
        user.is_support = True
        db.session.commit()


def build_staff(app: Flask) -> Staff:
    admin_id = make_account(app, "boss", is_admin=True)
    give_support(app, make_account(app, "helper"))
    make_account(app, "member")
    target_id = make_account(app, "target", email=ADDRESS, display_name="Tar Get")
    owner = browser_of(app, "target")
    token = app.test_client().post(
        "/api/v1/tokens", json={"username": "target", "password": PASSWORD}
    )
    assert token.status_code == 201
    with app.test_request_context():
        user = db.session.get(User, target_id)
        assert user is not None
        api_keys.create(user, "backup script", ["read"], 3600)
        enrolment = totp.begin(user)
        totp.confirm(user, pyotp.TOTP(enrolment.secret).now())
    return Staff(
        app,
        admin=browser_of(app, "boss"),
        support=browser_of(app, "helper"),
        member=browser_of(app, "member"),
        owner=owner,
        admin_id=admin_id,
        target_id=target_id,
    )


@pytest.fixture
def people(app: Flask) -> Staff:
    return build_staff(app)


def page(client: FlaskClient, path: str, status: int = 200, **kwargs: Any) -> str:
    response = client.get(path, **kwargs)
    html = response.get_data(as_text=True)
    assert response.status_code == status, (path, response.status_code, html[:300])
    return html


def press(client: FlaskClient, path: str, page_path: str, **data: str) -> TestResponse:
    """Press a button of ``page_path`` (post its form, with the page's CSRF token)."""
    token = csrf_token(page(client, page_path))
    return client.post(path, data={"csrf_token": token, **data})


def user_page(people: Staff, user_id: int | None = None) -> str:
    return f"{ADMIN}/users/{user_id or people.target_id}"


def listed(html: str) -> list[str]:
    """The usernames the list's table shows, in its order."""
    return re.findall(r'<th scope="row"><a href="/admin/users/\d+">([^<]+)</a>', html)


def flashed(html: str) -> list[str]:
    return re.findall(r'<p class="flash[^"]*" role="status">([^<]+)</p>', html)


def session_ids(html: str) -> list[int]:
    return [int(found) for found in re.findall(r'/sessions/(\d+)/end"', html)]


def credential_ids(html: str) -> list[int]:
    return [int(found) for found in re.findall(r'/credentials/(\d+)/revoke"', html)]


# --- Who may do what -----------------------------------------------------------------------------


def test_a_visitor_is_sent_to_log_in(client: FlaskClient, people: Staff) -> None:
    for path in (ADMIN, user_page(people)):
        response = client.get(path)
        assert response.status_code == 302 and response.location.startswith("/login")


def test_a_member_gets_403_and_no_admin_link(people: Staff) -> None:
    assert 'href="/admin"' not in page(people.member, "/account")
    for path in (ADMIN, user_page(people)):
        html = page(people.member, path, 403)
        assert "These pages are for administrators and support staff." in html
        assert "target@example.com" not in html
    deactivate = f"{user_page(people)}/deactivate"
    assert press(people.member, deactivate, "/account").status_code == 403
    assert people.user().deactivated_at is None


def test_support_and_admins_see_the_pages_and_the_link(people: Staff) -> None:
    for browser in (people.support, people.admin):
        assert '<a href="/admin"' in page(browser, "/account")
        assert "target" in listed(page(browser, ADMIN))
        html = page(browser, user_page(people))
        assert "<h1>target</h1>" in html and ADDRESS in html and "Tar Get" in html


def every_action(people: Staff) -> list[str]:
    """The path of every button of the target's page (one session, one token or key)."""
    html = page(people.admin, user_page(people))
    base = user_page(people)
    return [
        f"{base}/deactivate",
        f"{base}/reactivate",
        *(
            f"{base}/roles/{role}/{change}"
            for role in ("admin", "support")
            for change in ("grant", "remove")
        ),
        f"{base}/password-reset",
        f"{base}/second-factors/reset",
        f"{base}/sessions/{session_ids(html)[0]}/end",
        f"{base}/sessions/end-all",
        f"{base}/credentials/{credential_ids(html)[0]}/revoke",
        f"{base}/delete",
    ]


def test_support_sees_everything_and_every_button_answers_403(people: Staff) -> None:
    before = people.snapshot()
    html = page(people.support, user_page(people))
    assert "You have the support role: you can see everything here, and change nothing." in html
    for path in every_action(people):
        refused = press(people.support, path, user_page(people), confirm="yes")
        text = refused.get_data(as_text=True)
        assert refused.status_code == 403, path
        assert "Your role can see users and their activity but change nothing." in text
    assert people.snapshot() == before
    assert is_logged_in(people.owner)


def test_the_refusal_is_in_the_readers_language(people: Staff) -> None:
    token = csrf_token(page(people.support, user_page(people)))
    refused = people.support.post(
        f"{user_page(people)}/deactivate", data={"csrf_token": token}, headers=CHINESE
    )
    assert refused.status_code == 403
    assert '<html lang="zh-CN">' in refused.get_data(as_text=True)
    assert "Your role" not in refused.get_data(as_text=True)


def test_every_action_needs_the_csrf_token(people: Staff) -> None:
    before = people.snapshot()
    for path in every_action(people):
        response = people.admin.post(path, data={"confirm": "yes"})
        assert response.status_code == 400, path
        assert "security token is missing" in response.get_data(as_text=True)
    assert people.snapshot() == before


@pytest.fixture
def mfa_app(build_app: AppBuilder, database_url: str) -> Flask:
    return build_app(database_url, USERHUB_REQUIRE_MFA_FOR_ADMINS=True)


def test_staff_without_a_second_factor_are_told_to_add_one(mfa_app: Flask) -> None:
    people = build_staff(mfa_app)
    for browser in (people.admin, people.support):
        html = page(browser, ADMIN, 403)
        assert "must add a second factor" in html
        assert '<a href="/account/two-factor">Add a second factor</a>' in html
    assert press(people.admin, f"{user_page(people)}/deactivate", "/account").status_code == 403
    assert people.user().deactivated_at is None
    with mfa_app.test_request_context():  # the administrator adds an authenticator app
        boss = db.session.get(User, people.admin_id)
        assert boss is not None
        totp.confirm(boss, pyotp.TOTP(totp.begin(boss).secret).now())
    assert "target" in listed(page(people.admin, ADMIN))
    page(people.support, ADMIN, 403)


# --- The list ------------------------------------------------------------------------------------


@pytest.fixture
def crowd(app: Flask, people: Staff) -> FlaskClient:
    """Besides the staff and the target: accounts of every kind, made on known days."""
    with time_machine.travel(datetime(2024, 3, 10, 23, 30), tick=False):
        make_account(app, "old_timer", email="old@example.com")
    with time_machine.travel(datetime(2024, 3, 11, 0, 30), tick=False):
        make_account(app, "next_day")
    with app.test_request_context():
        verified = users.register_user("verified_one", PASSWORD, email="Found@Example.com")
        verified.confirm_address()
        gone = users.register_user("leaving", PASSWORD)
        gone.deletion_due_at = datetime(2099, 1, 1)
        off = users.register_user("switched_off", PASSWORD)
        off.deactivated_at = datetime(2025, 1, 1)
        db.session.commit()
    return people.admin


@pytest.mark.parametrize(
    ("query", "names"),
    [
        ("q=TARGET", ["target"]),
        ("q=found%40example", ["verified_one"]),
        ("q=%25", []),
        ("role=admin", ["boss"]),
        ("role=support", ["helper"]),
        (
            "role=none&status=active&q=e",
            ["member", "target", "old_timer", "next_day", "verified_one"],
        ),
        ("status=deactivated", ["switched_off"]),
        ("status=pending-deletion", ["leaving"]),
        ("verified=yes", ["verified_one"]),
        ("verified=no&q=t", ["target", "old_timer", "next_day", "switched_off"]),
        ("created_from=2024-03-10&created_to=2024-03-10", ["old_timer"]),
        ("created_from=2024-03-11&created_to=2024-03-11", ["next_day"]),
        ("created_to=2024-03-11", ["old_timer", "next_day"]),
        (
            "created_from=2024-03-11&role=none&status=active",
            ["member", "target", "next_day", "verified_one"],
        ),
    ],
)
def test_search_and_filters_choose_the_rows(
    crowd: FlaskClient, query: str, names: list[str]
) -> None:
    html = page(crowd, f"{ADMIN}?{query}")
    assert sorted(listed(html)) == sorted(names)
    assert f"{len(names)} account" in html


def test_the_table_says_what_each_account_is(crowd: FlaskClient) -> None:
    html = page(crowd, f"{ADMIN}?q=verified_one")
    row = html[html.index('<th scope="row">') :]
    assert "found@example.com" in row and '<span class="tag tag-ok">confirmed</span>' in row
    assert "No role" in row and "Active" in row
    html = page(crowd, f"{ADMIN}?q=switched")
    assert "Deactivated" in html[html.index("<tbody>") :]


def test_the_list_comes_fifty_a_page_keeping_the_filters(app: Flask, people: Staff) -> None:
    for number in range(55):
        make_account(app, f"bulk{number:02}")
    first = page(people.admin, f"{ADMIN}?q=bulk&role=none")
    assert listed(first) == [f"bulk{number:02}" for number in range(50)]
    assert "55 accounts" in first and "Page 1 of 2" in first
    found = re.search(r'<a href="([^"]+)" rel="next">', first)
    assert found is not None
    following = found.group(1).replace("&amp;", "&")
    assert "q=bulk" in following and "role=none" in following and "page=2" in following
    second = page(people.admin, following)
    assert listed(second) == [f"bulk{number:02}" for number in range(50, 55)]
    assert 'rel="prev"' in second and 'rel="next"' not in second
    page(people.admin, f"{ADMIN}?q=bulk&page=3", 404)
    page(people.admin, f"{ADMIN}?page=0", 404)


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("role=owner", "Choose a role from the list."),
        ("status=asleep", "Choose a status from the list."),
        ("verified=maybe", "Choose yes, no or any."),
        ("created_from=2024-13-01", "Give a date as year-month-day"),
        ("created_to=yesterday", "Give a date as year-month-day"),
        ("created_from=0999-12-31", "Give a date as year-month-day"),
        ("created_from=2024-03-02&created_to=2024-03-01", "This day is before the first one."),
        ("q=" + "x" * 300, "At most 254 characters."),
    ],
)
def test_a_bad_filter_is_a_400_that_says_what_to_fix(
    people: Staff, query: str, message: str
) -> None:
    html = page(people.admin, f"{ADMIN}?{query}", 400)
    assert "Some filters are not right" in html and message in html
    assert listed(html) == []


def test_far_dates_and_odd_searches_are_fine(people: Staff) -> None:
    html = page(people.admin, f"{ADMIN}?created_from=1000-01-01&created_to=9999-12-31&q=%00")
    assert listed(html) == []
    assert "target" in listed(page(people.admin, f"{ADMIN}?created_to=9999-12-31"))


# --- The user's page and its buttons -------------------------------------------------------------


def test_the_users_page_shows_profile_factors_sessions_keys_and_events(people: Staff) -> None:
    html = page(people.admin, user_page(people))
    assert "not confirmed yet" in html and "No role" in html and "Active" in html
    facts = re.sub(r"\s+", " ", html)
    assert "<dt>Authenticator app</dt><dd>Yes</dd>" in facts
    assert "<dt>Recovery codes left</dt><dd>10</dd>" in facts
    assert "<dt>Passkeys</dt><dd>0</dd>" in facts
    assert len(session_ids(html)) == 1 and len(credential_ids(html)) == 2
    assert "backup script" in html and "Log-in token" in html and "<code>uh_" in html
    assert "Authenticator app added" in html and "API key created: backup script" in html
    assert "Mail a password-reset link" in html and "Remove the second factors" in html


def test_an_unknown_account_is_a_404(people: Staff) -> None:
    for user_id in (999_999, 2**70):
        page(people.admin, f"{ADMIN}/users/{user_id}", 404)
        assert press(people.admin, f"{ADMIN}/users/{user_id}/deactivate", ADMIN).status_code == 404


def only_event(people: Staff, kind: str) -> SecurityEvent:
    [event] = people.events(kind)
    assert event.actor_id == people.admin_id
    return event


def done(people: Staff, action: str, **data: str) -> str:
    """Press the target page's button for ``action``: it returns to the page; the page then."""
    response = press(people.admin, f"{user_page(people)}/{action}", user_page(people), **data)
    assert response.status_code == 302 and response.location == user_page(people)
    return page(people.admin, user_page(people))


def test_deactivate_logs_the_owner_out_and_reactivate_lets_them_back(people: Staff) -> None:
    html = done(people, "deactivate")
    assert "target is deactivated and logged out." in flashed(html)
    assert "Deactivated on" in html and "Reactivate the account" in html
    assert not is_logged_in(people.owner)
    assert people.count(ApiToken, user_id=people.target_id) == 0
    only_event(people, security_log.ACCOUNT_DEACTIVATED)
    assert "Account deactivated by an administrator" in html and "by boss" in html
    assert "target was already deactivated." in flashed(done(people, "deactivate"))

    assert AuthActions(people.app.test_client()).login("target").status_code == 403

    assert "target can log in again." in flashed(done(people, "reactivate"))
    assert people.user().deactivated_at is None
    only_event(people, security_log.ACCOUNT_REACTIVATED)
    logging_in = AuthActions(people.app.test_client()).login("target")
    assert logging_in.status_code == 302 and logging_in.location == "/login/second-step"
    assert "target was not deactivated." in flashed(done(people, "reactivate"))


def test_roles_are_granted_and_removed(people: Staff) -> None:
    assert "target is now an administrator." in flashed(done(people, "roles/admin/grant"))
    assert people.user().is_admin
    assert "target now has the support role." in flashed(done(people, "roles/support/grant"))
    assert people.user().is_support
    done(people, "roles/admin/remove")
    html = done(people, "roles/support/remove")
    assert "target no longer has the support role." in flashed(html)
    target = people.user()
    assert not target.is_admin and not target.is_support
    events = people.events(security_log.ACCOUNT_UPDATED)
    assert len(events) == 4 and {event.actor_id for event in events} == {people.admin_id}


def test_an_admin_cannot_remove_their_own_admin_rights(people: Staff) -> None:
    mine = user_page(people, people.admin_id)
    html = page(people.admin, mine)
    assert "Remove the admin rights" not in html and "Delete the account" not in html
    assert "Deactivate the account" not in html  # not offered for oneself either
    refused = press(people.admin, f"{mine}/roles/admin/remove", mine)
    assert refused.status_code == 409
    assert "You cannot remove your own admin rights" in refused.get_data(as_text=True)
    assert people.user(people.admin_id).is_admin


def test_an_admin_cannot_delete_their_own_account(people: Staff) -> None:
    mine = user_page(people, people.admin_id)
    refused = press(people.admin, f"{mine}/delete", mine, confirm="yes")
    assert refused.status_code == 409
    assert "You cannot delete your own account" in refused.get_data(as_text=True)
    assert people.user(people.admin_id).is_admin


def test_a_password_reset_link_is_mailed(mailbox: Mailbox) -> None:
    people = build_staff(mailbox.app)
    mailbox.deliver()
    mailbox.sink.clear()
    html = done(people, "password-reset")
    assert f"A password-reset link was mailed to {ADDRESS}." in flashed(html)
    assert not is_logged_in(people.owner)
    only_event(people, security_log.PASSWORD_RESET_SENT)
    link = link_to(mailbox.only(ADDRESS), "/password/reset")
    assert page(people.owner, link)


def test_no_reset_button_without_an_address(people: Staff) -> None:
    member = user_page(people, account_id(people.app, "member"))
    assert "Mail a password-reset link" not in page(people.admin, member)
    refused = press(people.admin, f"{member}/password-reset", member)
    assert refused.status_code == 409


def test_second_factors_are_reset(people: Staff) -> None:
    html = done(people, "second-factors/reset")
    assert "target logs in with the password alone now." in flashed(html)
    assert not totp_enabled(people.app, people.target_id)
    assert "Remove the second factors" not in html
    only_event(people, security_log.FACTORS_RESET)


def test_one_session_and_all_sessions_end(app: Flask, people: Staff) -> None:
    with app.test_request_context():  # another browser's log-in
        target = db.session.get(User, people.target_id)
        assert target is not None
        sessions.start(target)
    html = page(people.admin, user_page(people))
    assert len(session_ids(html)) == 2
    first = session_ids(html)[0]
    after = done(people, f"sessions/{first}/end")
    assert "The session was ended: that browser is logged out." in flashed(after)
    assert session_ids(after) == [found for found in session_ids(html) if found != first]
    assert only_event(people, security_log.SESSION_ENDED)
    assert "That session had already ended." in flashed(done(people, f"sessions/{first}/end"))

    html = done(people, "sessions/end-all")
    assert "target was logged out of every browser." in flashed(html)
    assert not is_logged_in(people.owner)
    assert people.count(BrowserSession, user_id=people.target_id) == 0
    assert session_ids(html) == [] and len(credential_ids(html)) == 2
    everyone = people.events(security_log.SESSION_ENDED)[-1]
    assert everyone.actor_id == people.admin_id and "Every session logged out" in html
    assert "target had no sessions." in flashed(done(people, "sessions/end-all"))


def test_tokens_and_keys_are_revoked(people: Staff) -> None:
    html = page(people.admin, user_page(people))
    for token_id in credential_ids(html):
        assert "Revoked: it no longer works." in flashed(
            done(people, f"credentials/{token_id}/revoke")
        )
    assert people.count(ApiToken, user_id=people.target_id) == 0
    only_event(people, security_log.TOKEN_REVOKED)
    only_event(people, security_log.API_KEY_REVOKED)
    again = done(people, f"credentials/{credential_ids(html)[0]}/revoke")
    assert "That token or key was already revoked or has expired." in flashed(again)


def test_another_accounts_token_is_not_revoked_through_this_one(app: Flask, people: Staff) -> None:
    boss_token = app.test_client().post(
        "/api/v1/tokens", json={"username": "boss", "password": PASSWORD}
    )
    assert boss_token.status_code == 201
    [token_id] = [row.id for row in tokens_of(app, people.admin_id)]
    refused = done(people, f"credentials/{token_id}/revoke")
    assert "That token or key was already revoked or has expired." in flashed(refused)
    assert people.count(ApiToken, user_id=people.admin_id) == 1


def test_deleting_needs_the_box_ticked(people: Staff) -> None:
    refused = press(people.admin, f"{user_page(people)}/delete", user_page(people))
    html = refused.get_data(as_text=True)
    assert refused.status_code == 400 and "Tick the box to confirm the deletion." in html
    assert people.count(User, id=people.target_id) == 1

    deleted = press(people.admin, f"{user_page(people)}/delete", user_page(people), confirm="yes")
    assert deleted.status_code == 302 and deleted.location == ADMIN
    assert "The account target was deleted." in flashed(page(people.admin, ADMIN))
    assert people.count(User, id=people.target_id) == 0
    assert not is_logged_in(people.owner)
    [event] = people.events(security_log.ACCOUNT_DELETED)
    assert event.actor_id == people.admin_id
    page(people.admin, user_page(people), 404)
    assert press(people.admin, f"{user_page(people)}/deactivate", ADMIN).status_code == 404


def test_an_event_by_an_administrator_who_is_gone_says_so(app: Flask, people: Staff) -> None:
    done(people, "second-factors/reset")
    with app.test_request_context():
        other = users.register_user("second_boss", PASSWORD, is_admin=True)
        boss = db.session.get(User, people.admin_id)
        assert boss is not None
        users.delete_user(boss, by_admin=other)
        second = browser_of(app, "second_boss")
    html = page(second, user_page(people))
    assert "Second factors removed" in html and "by an administrator" in html
    assert "by boss" not in html


# --- Language and caching ------------------------------------------------------------------------


def test_the_pages_are_in_chinese_for_a_chinese_reader(people: Staff) -> None:
    listing = page(people.admin, f"{ADMIN}?q=target", headers=CHINESE)
    assert '<html lang="zh-CN">' in listing and "用户" in listing
    assert "Username" not in listing and "Search" not in listing
    html = page(people.admin, user_page(people), headers=CHINESE)
    assert "停用账户" in html and "Deactivate" not in html


def test_the_admin_pages_are_not_stored(people: Staff) -> None:
    for path in (ADMIN, user_page(people)):
        assert people.admin.get(path).headers["Cache-Control"] == "no-store"
