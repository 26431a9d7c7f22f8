"""Account mail end to end, in the app: verification, password reset, change of address,
notices, delivered over SMTP to a real server in its own process (the sink), on SQLite and
MariaDB. The links are read out of the delivered messages.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta

import pytest
import time_machine
from flask.testing import FlaskClient

from tests.helpers import PASSWORD, assert_problem, bearer, error_fields
from tests.mail_support import Mailbox, MailboxBuilder, html_of, links, text_of, token_in
from userhub.services.email_flows import RESET_ANSWER_SECONDS

ADDRESS = "zhangsan@example.com"
NEW_PASSWORD = "another-long-password"


@pytest.fixture
def client(mailbox: Mailbox) -> FlaskClient:
    return mailbox.app.test_client()


def register(client: FlaskClient, email: str | None = ADDRESS, **headers: str) -> dict[str, str]:
    """An account (with ``email``) and the headers of a token for it."""
    body = {"username": "张三", "password": PASSWORD, "email": email}
    created = client.post("/api/v1/users", json=body, headers=headers)
    assert created.status_code == 201, created.get_json()
    return bearer(token(client))


def token(client: FlaskClient, password: str = PASSWORD) -> str:
    answer = client.post("/api/v1/tokens", json={"username": "张三", "password": password})
    assert answer.status_code == 201, answer.get_json()
    return str(answer.get_json()["token"])


def me(client: FlaskClient, headers: dict[str, str]) -> dict[str, object]:
    answer = client.get("/api/v1/users/me", headers=headers)
    assert answer.status_code == 200
    return dict(answer.get_json())


def test_registering_mails_a_link_that_verifies_the_address_once(
    client: FlaskClient, mailbox: Mailbox
) -> None:
    headers = register(client)
    assert me(client, headers)["email_verified"] is False
    mail = mailbox.only(ADDRESS)
    assert mail["Subject"] == "Confirm your e-mail address"
    link_token = token_in(mail, "/email/verify")

    confirmed = client.post("/api/v1/email-verification", json={"token": link_token})
    assert confirmed.status_code == 200
    assert confirmed.get_json()["email_verified"] is True
    assert me(client, headers)["email_verified"] is True
    again = client.post("/api/v1/email-verification", json={"token": link_token})
    assert assert_problem(again, 400)["type"] == "/problems/invalid-link"


def test_a_mail_is_well_formed_and_carries_no_password_and_no_tracking(
    client: FlaskClient, mailbox: Mailbox
) -> None:
    register(client)
    [received] = mailbox.new_mail()
    mail = received.message
    assert mail["Message-ID"].startswith("<") and mail["Message-ID"].endswith(">")
    assert mail["Auto-Submitted"] == "auto-generated"
    assert mail["Date"] and mail["From"] and mail["To"] == ADDRESS
    assert mail.get_content_type() == "multipart/alternative"
    assert PASSWORD not in received.raw.decode("utf-8", "replace")
    assert PASSWORD not in text_of(mail) + html_of(mail)
    html = html_of(mail)
    assert "<img" not in html and "<script" not in html
    # Every link in the HTML part is one of the plain-text part's: nothing added to track.
    for link in links(mail):
        assert link.startswith(mailbox.app.config["USERHUB_PUBLIC_URL"])


def test_a_new_verification_link_replaces_the_old_one(
    client: FlaskClient, mailbox: Mailbox
) -> None:
    headers = register(client)
    first = token_in(mailbox.only(ADDRESS), "/email/verify")
    resent = client.post("/api/v1/users/me/email-verification", headers=headers)
    assert resent.status_code == 202
    second = token_in(mailbox.only(ADDRESS), "/email/verify")
    old = client.post("/api/v1/email-verification", json={"token": first})
    assert assert_problem(old, 400)["type"] == "/problems/invalid-link"
    assert client.post("/api/v1/email-verification", json={"token": second}).status_code == 200


def test_resending_without_an_address_says_what_to_do(
    client: FlaskClient, mailbox: Mailbox
) -> None:
    headers = register(client, email=None)
    answer = client.post("/api/v1/users/me/email-verification", headers=headers)
    assert assert_problem(answer, 409)["type"] == "/problems/no-email-address"
    assert mailbox.deliver() == 0


def test_a_password_reset_answers_alike_for_unknown_accounts_and_mails_only_real_ones(
    client: FlaskClient, mailbox: Mailbox
) -> None:
    register(client)
    mailbox.new_mail()  # the verification mail
    answers = {}
    for name, body in {
        "known address": {"email": ADDRESS.upper()},
        "unknown address": {"email": "nobody@example.com"},
        "known username": {"username": "张三"},
        "unknown username": {"username": "nobody"},
    }.items():
        started = time.monotonic()
        answer = client.post("/api/v1/password-reset", json=body)
        answers[name] = (answer.status_code, answer.get_json(), time.monotonic() - started)
    statuses_and_bodies = {(status, str(body)) for status, body, _ in answers.values()}
    assert len(statuses_and_bodies) == 1, answers
    assert next(iter(statuses_and_bodies))[0] == 202
    assert all(seconds >= RESET_ANSWER_SECONDS for _, _, seconds in answers.values()), answers
    mails = mailbox.new_mail(2)  # the two known ones only
    assert {tuple(m.rcpt_tos) for m in mails} == {(ADDRESS,)}


def test_a_reset_sets_the_password_ends_every_session_and_sends_a_notice(
    client: FlaskClient, mailbox: Mailbox
) -> None:
    headers = register(client)
    mailbox.new_mail()
    client.post("/api/v1/password-reset", json={"email": ADDRESS})
    reset_mail = mailbox.only(ADDRESS)
    assert reset_mail["Subject"] == "Reset your password"
    link_token = token_in(reset_mail, "/password/reset")

    done = client.post(
        "/api/v1/password-reset/complete", json={"token": link_token, "password": NEW_PASSWORD}
    )
    assert done.status_code == 204
    assert client.get("/api/v1/users/me", headers=headers).status_code == 401
    refused = client.post("/api/v1/tokens", json={"username": "张三", "password": PASSWORD})
    assert refused.status_code == 401
    fresh = bearer(token(client, NEW_PASSWORD))
    assert me(client, fresh)["email_verified"] is True  # the link reached the mailbox
    assert mailbox.only(ADDRESS)["Subject"] == "Your password was changed"
    reused = client.post(
        "/api/v1/password-reset/complete", json={"token": link_token, "password": PASSWORD}
    )
    assert assert_problem(reused, 400)["type"] == "/problems/invalid-link"


def test_a_reset_link_dies_when_the_password_changes_another_way(
    client: FlaskClient, mailbox: Mailbox
) -> None:
    headers = register(client)
    mailbox.new_mail()
    client.post("/api/v1/password-reset", json={"email": ADDRESS})
    link_token = token_in(mailbox.only(ADDRESS), "/password/reset")
    changed = client.patch(
        "/api/v1/users/me",
        json={"password": NEW_PASSWORD, "current_password": PASSWORD},
        headers=headers,
    )
    assert changed.status_code == 200
    assert mailbox.only(ADDRESS)["Subject"] == "Your password was changed"
    late = client.post(
        "/api/v1/password-reset/complete", json={"token": link_token, "password": PASSWORD}
    )
    assert assert_problem(late, 400)["type"] == "/problems/invalid-link"


def test_reset_links_expire(client: FlaskClient, mailbox: Mailbox) -> None:
    register(client)
    mailbox.new_mail()
    client.post("/api/v1/password-reset", json={"email": ADDRESS})
    link_token = token_in(mailbox.only(ADDRESS), "/password/reset")
    lifetime = mailbox.app.config["USERHUB_PASSWORD_RESET_TTL_SECONDS"]
    with time_machine.travel(timedelta(seconds=lifetime + 1), tick=True):
        late = client.post(
            "/api/v1/password-reset/complete",
            json={"token": link_token, "password": NEW_PASSWORD},
        )
    assert assert_problem(late, 400)["type"] == "/problems/expired-link"


@pytest.mark.parametrize(
    "tamper",
    [
        lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"),
        lambda t: t[:-1],
        lambda t: t + "x" * 300,
        lambda t: "' OR 1=1 --",
        lambda t: "张三",
    ],
    ids=["one-character", "cut", "too-long", "sql", "unicode"],
)
def test_a_tampered_link_is_refused_and_changes_nothing(
    client: FlaskClient, mailbox: Mailbox, tamper: Callable[[str], str]
) -> None:
    register(client)
    mailbox.new_mail()
    client.post("/api/v1/password-reset", json={"email": ADDRESS})
    link_token = token_in(mailbox.only(ADDRESS), "/password/reset")
    answer = client.post(
        "/api/v1/password-reset/complete",
        json={"token": tamper(link_token), "password": NEW_PASSWORD},
    )
    assert answer.status_code in (400, 422)
    token(client, PASSWORD)  # the old password still works


def test_a_new_address_takes_effect_only_through_its_link_and_the_old_one_is_told(
    client: FlaskClient, mailbox: Mailbox
) -> None:
    headers = register(client)
    mailbox.new_mail()
    changed = client.patch("/api/v1/users/me", json={"email": "new@example.com"}, headers=headers)
    assert changed.status_code == 200
    assert changed.get_json()["email"] == ADDRESS
    assert changed.get_json()["pending_email"] == "new@example.com"
    mails = {m.rcpt_tos[0]: m.message for m in mailbox.new_mail(2)}
    assert "new@example.com" in text_of(mails[ADDRESS])
    assert "/email/change/undo" in text_of(mails[ADDRESS])
    link_token = token_in(mails["new@example.com"], "/email/change/confirm")

    confirmed = client.post("/api/v1/email-change/confirm", json={"token": link_token})
    assert confirmed.status_code == 200
    account = me(client, headers)
    assert (account["email"], account["pending_email"], account["email_verified"]) == (
        "new@example.com",
        None,
        True,
    )


def test_this_was_not_me_restores_the_address_ends_sessions_and_mails_a_reset_link(
    client: FlaskClient, mailbox: Mailbox
) -> None:
    headers = register(client)
    mailbox.new_mail()
    client.patch("/api/v1/users/me", json={"email": "thief@example.com"}, headers=headers)
    mails = {m.rcpt_tos[0]: m.message for m in mailbox.new_mail(2)}
    undo = token_in(mails[ADDRESS], "/email/change/undo")
    confirm = token_in(mails["thief@example.com"], "/email/change/confirm")

    undone = client.post("/api/v1/email-change/undo", json={"token": undo})
    assert undone.status_code == 200
    assert (undone.get_json()["email"], undone.get_json()["pending_email"]) == (ADDRESS, None)
    assert client.get("/api/v1/users/me", headers=headers).status_code == 401
    assert mailbox.only(ADDRESS)["Subject"] == "Reset your password"
    late = client.post("/api/v1/email-change/confirm", json={"token": confirm})
    assert assert_problem(late, 400)["type"] == "/problems/invalid-link"


def test_a_first_address_is_set_at_once_and_verified_by_its_link(
    client: FlaskClient, mailbox: Mailbox
) -> None:
    headers = register(client, email=None)
    added = client.patch("/api/v1/users/me", json={"email": ADDRESS}, headers=headers)
    assert (added.get_json()["email"], added.get_json()["email_verified"]) == (ADDRESS, False)
    link_token = token_in(mailbox.only(ADDRESS), "/email/verify")
    assert client.post("/api/v1/email-verification", json={"token": link_token}).status_code == 200


def test_strangers_locking_an_account_mail_its_owner_one_unlock_link(
    build_mailbox: MailboxBuilder,
) -> None:
    mailbox = build_mailbox(
        RATELIMIT_ENABLED=True,
        RATELIMIT_STORAGE_URI="memory://",
    )
    client = mailbox.app.test_client()
    register(client)
    mailbox.new_mail()
    stranger = mailbox.app.test_client()
    statuses = [
        stranger.post(
            "/api/v1/tokens", json={"username": "张三", "password": "wrong-password"}
        ).status_code
        for _ in range(14)
    ]
    assert 429 in statuses
    mail = mailbox.only(ADDRESS)  # one mail, however many attempts
    assert mail["Subject"] == "Someone is trying to log in to your account"
    owner = mailbox.app.test_client()
    locked = owner.post("/api/v1/tokens", json={"username": "张三", "password": PASSWORD})
    assert locked.status_code == 429
    unlocked = owner.post("/api/v1/unlock", json={"token": token_in(mail, "/unlock")})
    assert unlocked.status_code == 204
    assert (
        owner.post("/api/v1/tokens", json={"username": "张三", "password": PASSWORD}).status_code
        == 201
    )
    assert mailbox.deliver() == 0


def test_required_verification_refuses_log_in_until_the_link_is_followed(
    build_mailbox: MailboxBuilder,
) -> None:
    mailbox = build_mailbox(USERHUB_REQUIRE_VERIFIED_EMAIL=True)
    client = mailbox.app.test_client()
    client.post("/api/v1/users", json={"username": "张三", "password": PASSWORD, "email": ADDRESS})
    refused = client.post("/api/v1/tokens", json={"username": "张三", "password": PASSWORD})
    assert assert_problem(refused, 403)["type"] == "/problems/email-not-verified"
    link_token = token_in(mailbox.only(ADDRESS), "/email/verify")
    client.post("/api/v1/email-verification", json={"token": link_token})
    token(client)


def test_mail_is_written_in_the_readers_language(client: FlaskClient, mailbox: Mailbox) -> None:
    register(client, **{"Accept-Language": "zh-CN,zh;q=0.9"})
    mail = mailbox.only(ADDRESS)
    assert mail["Content-Language"] == "zh-CN"
    assert mail["Subject"] != "Confirm your e-mail address"
    assert "邮" in mail["Subject"], mail["Subject"]


def test_reset_requests_are_limited_per_address_silently_and_per_ip_openly(
    build_mailbox: MailboxBuilder,
) -> None:
    mailbox = build_mailbox(
        RATELIMIT_ENABLED=True,
        RATELIMIT_STORAGE_URI="memory://",
        USERHUB_RATELIMIT_MAIL="8 per hour",
        USERHUB_RATELIMIT_MAIL_ADDRESS="3 per hour",
    )
    client = mailbox.app.test_client()
    client.post("/api/v1/users", json={"username": "张三", "password": PASSWORD, "email": ADDRESS})
    mailbox.new_mail()  # the verification mail (not a mail of this limit)
    answers = [
        client.post("/api/v1/password-reset", json={"email": ADDRESS}).status_code for _ in range(9)
    ]
    assert answers == [202] * 8 + [429]  # the address's limit shows in no answer
    assert len(mailbox.new_mail(3)) == 3
    time.sleep(1)
    assert mailbox.deliver() == 0 and mailbox.received() == []


def test_an_account_that_cannot_log_in_unverified_gets_a_new_link_by_name(
    build_mailbox: MailboxBuilder,
) -> None:
    mailbox = build_mailbox(USERHUB_REQUIRE_VERIFIED_EMAIL=True)
    client = mailbox.app.test_client()
    client.post("/api/v1/users", json={"username": "张三", "password": PASSWORD, "email": ADDRESS})
    mailbox.new_mail()  # the first link, lost
    answers = {
        str(body): client.post("/api/v1/email-verification/requests", json=body)
        for body in ({"username": "张三"}, {"username": "nobody"}, {"email": "no@example.com"})
    }
    assert {(a.status_code, str(a.get_json())) for a in answers.values()} == {
        (202, str(answers[str({"username": "nobody"})].get_json()))
    }
    link_token = token_in(mailbox.only(ADDRESS), "/email/verify")
    assert client.post("/api/v1/email-verification", json={"token": link_token}).status_code == 200
    token(client)
    neither = client.post("/api/v1/email-verification/requests", json={})
    assert error_fields(assert_problem(neither, 422)) == {"email", "username"}
