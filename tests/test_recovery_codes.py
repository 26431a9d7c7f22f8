"""Recovery codes (``services/recovery_codes.py``): ten with each authenticator app, each good
once, stored only as keyed digests, replaced all at once; using one mails the owner a notice,
through the real SMTP server. On SQLite and MySQL.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pyotp
import pytest
import sqlalchemy as sa
from flask import Flask

from tests.mail_support import Mailbox, text_of
from userhub.extensions import db
from userhub.models import RecoveryCode, SecurityEvent, User
from userhub.services import recovery_codes, security_log, totp, users
from userhub.services.errors import TotpNotEnabled

ADDRESS = "zhangsan@example.com"
CODE = re.compile(r"[0-9a-hjkmnp-tv-z]{5}-[0-9a-hjkmnp-tv-z]{5}")


@pytest.fixture
def app(mailbox: Mailbox) -> Flask:
    return mailbox.app


@pytest.fixture
def ctx(app: Flask) -> Iterator[None]:
    with app.test_request_context():
        yield


def with_totp(user: User) -> list[str]:
    """Set up and confirm an authenticator app: the recovery codes it came with."""
    enrolment = totp.begin(user)
    return totp.confirm(user, pyotp.TOTP(enrolment.secret).now())


@pytest.fixture
def user(ctx: None, mailbox: Mailbox) -> User:
    made = users.register_user("张三", "a long enough password", email=ADDRESS)
    mailbox.deliver()
    mailbox.sink.clear()
    return made


def used_events(user_id: int) -> list[SecurityEvent]:
    return list(
        db.session.scalars(
            sa.select(SecurityEvent).where(
                SecurityEvent.user_id == user_id,
                SecurityEvent.type == security_log.RECOVERY_CODE_USED,
            )
        )
    )


def test_ten_codes_each_good_once(user: User, mailbox: Mailbox) -> None:
    codes = with_totp(user)
    assert len(codes) == len(set(codes)) == 10
    assert all(CODE.fullmatch(code) for code in codes), codes
    assert recovery_codes.remaining(user) == 10

    assert recovery_codes.use(user, codes[0])
    assert recovery_codes.remaining(user) == 9
    assert not recovery_codes.use(user, codes[0]), "a code is good once"
    assert recovery_codes.remaining(user) == 9
    assert recovery_codes.use(user, codes[1])
    assert recovery_codes.remaining(user) == 8
    [first, second] = used_events(user.id)
    assert security_log.details_of(first) == {"remaining": 9}
    assert security_log.details_of(second) == {"remaining": 8}


@pytest.mark.parametrize(
    "typed",
    [
        lambda c: c.upper(),
        lambda c: c.replace("-", ""),
        lambda c: f"  {c[:3]} {c[3:]} ",
        lambda c: c.replace("0", "o").replace("1", "l"),
    ],
    ids=["upper case", "no dash", "spaces", "o for 0, l for 1"],
)
def test_codes_are_forgiven_how_they_are_typed(user: User, typed: object) -> None:
    codes = with_totp(user)
    code = next((c for c in codes if "0" in c or "1" in c), codes[0])
    assert callable(typed)
    assert recovery_codes.use(user, typed(code))


@pytest.mark.parametrize(
    "typed", ["", "abc", "zzzzz-zzzzz-z", "uuuuu-uuuuu", "<b>x</b>", "码" * 10]
)
def test_what_cannot_be_a_code_is_refused(user: User, typed: str) -> None:
    with_totp(user)
    assert recovery_codes.use(user, typed) is False
    assert recovery_codes.remaining(user) == 10


def test_another_accounts_code_does_not_work(user: User) -> None:
    other = users.register_user("李四", "a long enough password")
    theirs = with_totp(other)
    with_totp(user)
    assert not recovery_codes.use(user, theirs[0])
    assert recovery_codes.remaining(other) == 10


def test_new_codes_void_the_old_ones(user: User) -> None:
    old = with_totp(user)
    recovery_codes.use(user, old[0])
    new = recovery_codes.regenerate(user)
    assert recovery_codes.remaining(user) == 10
    assert not set(old) & set(new)
    assert not any(recovery_codes.use(user, code) for code in old)
    assert recovery_codes.use(user, new[0])
    kinds = db.session.scalars(
        sa.select(SecurityEvent.type).where(
            SecurityEvent.type == security_log.RECOVERY_CODES_GENERATED
        )
    ).all()
    assert len(kinds) == 2


def test_new_codes_need_an_authenticator_app(user: User) -> None:
    with pytest.raises(TotpNotEnabled):
        recovery_codes.regenerate(user)
    assert recovery_codes.remaining(user) == 0


def test_only_keyed_digests_are_stored(user: User) -> None:
    codes = with_totp(user)
    rows = db.session.execute(sa.select(RecoveryCode.__table__)).mappings().all()
    assert len(rows) == 10
    text = repr([dict(row) for row in rows])
    for code in codes:
        normal = code.replace("-", "")
        assert code not in text and normal not in text and normal.upper() not in text
    assert all(re.fullmatch(r"[0-9a-f]{64}", row["code_hash"]) for row in rows)


def test_using_a_code_mails_the_owner_how_many_are_left(user: User, mailbox: Mailbox) -> None:
    codes = with_totp(user)
    assert mailbox.deliver() == 0, "setting up mails nothing"
    assert recovery_codes.use(user, codes[3])
    message = mailbox.only(ADDRESS)
    assert message["Subject"] == "A recovery code of your account was used"
    body = text_of(message)
    assert "recovery codes left: 9" in body
    assert "If this was not you" in body
    assert "/forgot-password" in body or "forgot" in body.lower()
    for code in codes:
        assert code not in message.as_string()


def test_no_mail_for_an_account_without_an_address(ctx: None, mailbox: Mailbox) -> None:
    user = users.register_user("李四", "a long enough password")
    codes = with_totp(user)
    assert recovery_codes.use(user, codes[0])
    assert mailbox.deliver() == 0
    assert len(used_events(user.id)) == 1


def test_removing_the_app_removes_the_codes(user: User) -> None:
    codes = with_totp(user)
    assert totp.remove(user)
    assert recovery_codes.remaining(user) == 0
    assert not recovery_codes.use(user, codes[0])
