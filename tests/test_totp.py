"""An authenticator app (``services/totp.py``): set up, confirmed by its first code, checked
with codes the test computes from the secret (pyotp, as a phone does) at times it controls
(time_machine), never accepting a code twice; its secret stored sealed. On SQLite and MySQL.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pyotp
import pytest
import sqlalchemy as sa
import time_machine
from flask import Flask

from tests.helpers import AppBuilder
from userhub.extensions import db
from userhub.models import SecurityEvent, TotpFactor, User
from userhub.services import factor_secrets, recovery_codes, security_log, totp, users
from userhub.services.errors import AlreadyEnrolled, NoEnrolment, WrongCode

# The start of a 30-second step, so that moving by whole steps stays inside each step.
START = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
STEP = timedelta(seconds=30)


@pytest.fixture
def clock() -> Iterator[time_machine.Traveller]:
    with time_machine.travel(START, tick=False) as traveller:
        yield traveller


@pytest.fixture
def ctx(app: Flask) -> Iterator[None]:
    with app.test_request_context():
        yield


@pytest.fixture
def user(ctx: None) -> User:
    return users.register_user("张三", "a long enough password", email="zs@example.com")


def code_at(secret: str, when: datetime) -> str:
    return pyotp.TOTP(secret).at(when)


def enrolled(user: User) -> str:
    """An authenticator app set up and confirmed for ``user`` now: its secret."""
    enrolment = totp.begin(user)
    totp.confirm(user, pyotp.TOTP(enrolment.secret).now())
    return enrolment.secret


def factor_row(user_id: int) -> dict[str, Any]:
    row = db.session.execute(
        sa.select(TotpFactor.__table__).where(TotpFactor.user_id == user_id)
    ).mappings()
    return dict(row.one())


def event_types(user_id: int) -> list[str]:
    return list(
        db.session.scalars(
            sa.select(SecurityEvent.type)
            .where(SecurityEvent.user_id == user_id)
            .order_by(SecurityEvent.id)
        )
    )


def test_enrol_confirm_verify_and_no_replay(user: User, clock: time_machine.Traveller) -> None:
    enrolment = totp.begin(user)
    assert not totp.enabled(user)
    assert not totp.verify(user, code_at(enrolment.secret, START))  # not confirmed yet

    codes = totp.confirm(user, code_at(enrolment.secret, START))
    assert totp.enabled(user)
    assert len(codes) == recovery_codes.COUNT == 10
    assert recovery_codes.remaining(user) == 10
    assert event_types(user.id)[-2:] == [
        security_log.TOTP_ENABLED,
        security_log.RECOVERY_CODES_GENERATED,
    ]
    # The confirming code was spent: it is refused at the log-in.
    assert not totp.verify(user, code_at(enrolment.secret, START))

    clock.shift(STEP)
    now = START + STEP
    assert totp.verify(user, code_at(enrolment.secret, now))
    assert not totp.verify(user, code_at(enrolment.secret, now)), "a replayed code"
    clock.shift(STEP)
    assert totp.verify(user, code_at(enrolment.secret, now + STEP)), "the next step's code"
    assert factor_row(user.id)["last_step"] == int((now + STEP).timestamp()) // 30


def test_one_step_either_side_is_accepted_not_two(
    user: User, clock: time_machine.Traveller
) -> None:
    secret = enrolled(user)
    clock.shift(10 * STEP)
    now = START + 10 * STEP
    assert not totp.verify(user, code_at(secret, now - 2 * STEP)), "two steps late"
    assert not totp.verify(user, code_at(secret, now + 2 * STEP)), "two steps early"
    assert totp.verify(user, code_at(secret, now - STEP)), "a step late"
    assert totp.verify(user, code_at(secret, now + STEP)), "a step early (the phone is ahead)"
    # The step just accepted is ahead of now: now's code is an older step, refused.
    assert not totp.verify(user, code_at(secret, now))


def test_a_code_of_a_step_before_the_last_accepted_is_refused(
    user: User, clock: time_machine.Traveller
) -> None:
    secret = enrolled(user)
    clock.shift(5 * STEP)
    now = START + 5 * STEP
    assert totp.verify(user, code_at(secret, now))
    assert not totp.verify(user, code_at(secret, now - STEP)), "older than the last one"


@pytest.mark.parametrize(
    "typed", ["", "12345", "1234567", "abcdef", "١٢٣٤٥٦", "12345a", "<b>123</b>", "12 34 5"]
)
def test_malformed_codes_are_refused(user: User, clock: time_machine.Traveller, typed: str) -> None:
    enrolled(user)
    assert totp.verify(user, typed) is False


def test_a_wrong_code_is_refused(user: User, clock: time_machine.Traveller) -> None:
    secret = enrolled(user)
    clock.shift(STEP)
    right = code_at(secret, START + STEP)
    wrong = f"{(int(right) + 1) % 1_000_000:06d}"
    assert not totp.verify(user, wrong)
    assert totp.verify(user, right)


def test_spaces_in_a_code_are_forgiven(user: User, clock: time_machine.Traveller) -> None:
    secret = enrolled(user)
    clock.shift(STEP)
    code = code_at(secret, START + STEP)
    assert totp.verify(user, f" {code[:3]} {code[3:]} ")


def test_a_wrong_first_code_does_not_confirm(user: User, clock: time_machine.Traveller) -> None:
    enrolment = totp.begin(user)
    right = code_at(enrolment.secret, START)
    with pytest.raises(WrongCode) as refused:
        totp.confirm(user, f"{(int(right) + 1) % 1_000_000:06d}")
    assert "clock" in refused.value.message
    assert refused.value.errors.keys() == {"code"}
    assert not totp.enabled(user)
    assert totp.confirm(user, right)


def test_confirming_needs_an_enrolment_and_only_once(
    user: User, clock: time_machine.Traveller
) -> None:
    with pytest.raises(NoEnrolment):
        totp.confirm(user, "123456")
    secret = enrolled(user)
    clock.shift(STEP)
    with pytest.raises(AlreadyEnrolled):
        totp.confirm(user, code_at(secret, START + STEP))
    with pytest.raises(AlreadyEnrolled):
        totp.begin(user)


def test_a_new_enrolment_replaces_one_not_confirmed(
    user: User, clock: time_machine.Traveller
) -> None:
    first = totp.begin(user)
    second = totp.begin(user)
    assert first.secret != second.secret
    assert db.session.scalar(sa.select(sa.func.count()).select_from(TotpFactor)) == 1
    with pytest.raises(WrongCode):
        totp.confirm(user, code_at(first.secret, START))
    totp.confirm(user, code_at(second.secret, START))


def test_the_otpauth_address_and_the_qr_code(user: User) -> None:
    enrolment = totp.begin(user)
    parts = urlsplit(enrolment.otpauth_uri)
    assert (parts.scheme, parts.netloc) == ("otpauth", "totp")
    assert unquote(parts.path) == "/userhub:张三"
    query = parse_qs(parts.query)
    assert query["secret"] == [enrolment.secret]
    assert query["issuer"] == ["userhub"]
    assert len(base64.b32decode(enrolment.secret)) == 20
    svg = totp.qr_svg(enrolment.otpauth_uri)
    assert svg.startswith("<?xml") or svg.startswith("<svg")
    assert 'role="img"' in svg and "aria-label=" in svg and "<title>" in svg
    assert "<script" not in svg and "http://www.w3.org/2000/svg" in svg
    assert enrolment.secret not in svg  # the address is drawn, not written


def test_the_secret_is_stored_sealed(user: User) -> None:
    enrolment = totp.begin(user)
    raw = base64.b32decode(enrolment.secret)
    row = factor_row(user.id)
    stored = bytes(row["secret"])
    assert raw not in stored and enrolment.secret.encode() not in stored
    for text in (repr(row), stored.hex(), base64.b64encode(stored).decode()):
        assert enrolment.secret not in text and raw.hex() not in text
    assert factor_secrets.unseal(user.id, stored) == raw


def test_a_sealed_secret_copied_to_another_account_does_not_open(user: User) -> None:
    other = users.register_user("李四", "a long enough password")
    enrolment = totp.begin(user)
    stored = bytes(factor_row(user.id)["secret"])
    with pytest.raises(factor_secrets.Unreadable):
        factor_secrets.unseal(other.id, stored)
    # Copied into the other account's row, it gives no working factor there.
    db.session.add(TotpFactor(user_id=other.id, secret=stored))
    db.session.commit()
    with pytest.raises(NoEnrolment):
        totp.confirm(other, pyotp.TOTP(enrolment.secret).now())
    assert not totp.enabled(other)


def test_a_rotated_secret_key_still_opens_old_secrets(
    build_app: AppBuilder, database_url: str
) -> None:
    old = build_app(database_url, SECRET_KEY="the old secret key of this test, long enough")
    with old.test_request_context():
        user = users.register_user("张三", "a long enough password")
        enrolment = totp.begin(user)
        totp.confirm(user, pyotp.TOTP(enrolment.secret).now())
        user_id = user.id
    rotated = build_app(
        database_url,
        SECRET_KEY="the new secret key of this test, long enough!",
        SECRET_KEY_FALLBACKS=["the old secret key of this test, long enough"],
    )
    forgotten = build_app(database_url, SECRET_KEY="another secret key altogether, long enough")
    with time_machine.travel(datetime.now(UTC) + 2 * STEP, tick=False):
        with rotated.test_request_context():
            found = db.session.get(User, user_id)
            assert found is not None and totp.verify(found, pyotp.TOTP(enrolment.secret).now())
        with forgotten.test_request_context():
            found = db.session.get(User, user_id)
            assert found is not None
            assert not totp.verify(user, pyotp.TOTP(enrolment.secret).at(START))


def test_two_instances_given_one_code_at_once_accept_it_once(
    app: Flask, build_app: AppBuilder, database_url: str, clock: time_machine.Traveller
) -> None:
    """Instance A has read the factor and is about to spend the code when instance B (another
    app on the same database) accepts the same code: A's conditional UPDATE changes nothing."""
    with app.test_request_context():
        user = users.register_user("张三", "a long enough password")
        secret = enrolled(user)
        user_id = user.id
    clock.shift(STEP)
    code = code_at(secret, START + STEP)
    other = build_app(database_url)
    accepted_by_other: list[bool] = []

    def other_instance_first(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith("UPDATE TOTP_FACTOR") and not accepted_by_other:
            with other.test_request_context():
                other_user = db.session.get(User, user_id)
                assert other_user is not None
                accepted_by_other.append(totp.verify(other_user, code))

    with app.test_request_context():
        here = db.session.get(User, user_id)
        assert here is not None
        sa.event.listen(db.engine, "before_cursor_execute", other_instance_first)
        try:
            accepted_here = totp.verify(here, code)
        finally:
            sa.event.remove(db.engine, "before_cursor_execute", other_instance_first)
    assert accepted_by_other == [True]
    assert accepted_here is False


def test_remove_deletes_the_factor_and_the_codes(user: User, clock: time_machine.Traveller) -> None:
    secret = enrolled(user)
    admin = users.register_user("admin", "a long enough password", is_admin=True)
    assert totp.remove(user, by=admin)
    assert not totp.enabled(user)
    assert recovery_codes.remaining(user) == 0
    assert db.session.scalar(sa.select(sa.func.count()).select_from(TotpFactor)) == 0
    event = db.session.scalars(
        sa.select(SecurityEvent).where(SecurityEvent.type == security_log.TOTP_DISABLED)
    ).one()
    assert (event.user_id, event.actor_id) == (user.id, admin.id)
    clock.shift(STEP)
    assert not totp.verify(user, code_at(secret, START + STEP))
    assert not totp.remove(user), "nothing left to remove"


def test_delete_leaves_the_event_to_the_caller(user: User) -> None:
    enrolled(user)
    totp.delete(user)
    db.session.commit()
    assert not totp.enabled(user)
    assert security_log.TOTP_DISABLED not in event_types(user.id)
