"""The user service: username rules, password hashing, authentication."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa
from argon2 import PasswordHasher
from flask import Flask

from tests.helpers import PASSWORD
from userhub.extensions import db
from userhub.models import BrowserSession, utcnow
from userhub.services import account_rules, sessions, users
from userhub.services.errors import UsernameTaken
from userhub.services.passwords import passwords


@pytest.mark.parametrize(
    "name", ["张三", "a", "Zhang San", "x" * 20, "Ünïcödé", "user.name-1_2", "مرحبا", "🙂"]
)
def test_acceptable_usernames(name: str) -> None:
    assert account_rules.username_problems(name) == []


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("", "Username is required."),
        ("x" * 21, "at most 20 characters"),
        (" lead", "spaces"),
        ("trail ", "spaces"),
        ("a:b", ":"),
        ("tab\there", "control"),
        ("nul\x00", "control"),
        ("zero\u200bwidth", "invisible"),
    ],
)
def test_unacceptable_usernames_say_why(name: str, problem: str) -> None:
    problems = account_rules.username_problems(name)
    assert problems and problem in " ".join(problems)


@pytest.mark.parametrize(
    ("a", "b"), [("Alice", "ALICE"), ("ｚｈａｎｇ", "zhang"), ("Straße", "STRASSE")]
)
def test_username_keys_ignore_case_and_width(a: str, b: str) -> None:
    assert account_rules.username_key(a) == account_rules.username_key(b)


@pytest.mark.parametrize(
    ("password", "ok"),
    [("1234567", False), ("12345678", True), ("x" * 128, True), ("x" * 129, False)],
)
def test_password_length_policy(password: str, ok: bool) -> None:
    assert (account_rules.password_problems(password) == []) is ok


@pytest.mark.real_hashing
def test_passwords_are_stored_as_argon2id_at_owasp_strength(app: Flask) -> None:
    with app.app_context():
        user = users.register_user("张三", PASSWORD)
        params = user.password_hash.split("$")
        assert params[1] == "argon2id"
        settings = dict(item.split("=") for item in params[3].split(","))
        assert int(settings["m"]) >= 19 * 1024
        assert int(settings["t"]) >= 2
        assert int(settings["p"]) >= 1
        assert PasswordHasher().verify(user.password_hash, PASSWORD)


@pytest.mark.real_hashing
def test_same_password_gets_different_hashes(app: Flask) -> None:
    with app.app_context():
        first = users.register_user("one", PASSWORD).password_hash
        second = users.register_user("two", PASSWORD).password_hash
    assert first != second


def test_authenticate(app: Flask) -> None:
    with app.app_context():
        users.register_user("张三", PASSWORD)
        assert users.authenticate("张三", PASSWORD) is not None
        assert users.authenticate("张三", PASSWORD + "x") is None
        assert users.authenticate("nobody", PASSWORD) is None
        assert users.authenticate("", PASSWORD) is None


@pytest.mark.real_hashing
def test_an_unknown_user_costs_a_full_password_check(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    original = PasswordHasher.verify

    def counting_verify(self: PasswordHasher, hash: str, password: str) -> bool:
        calls.append(hash)
        return original(self, hash, password)

    monkeypatch.setattr(PasswordHasher, "verify", counting_verify)
    with app.app_context():
        users.register_user("张三", PASSWORD)
        users.authenticate("张三", "wrong password")
        users.authenticate("nobody", "wrong password")
    assert len(calls) == 2
    assert all(call.startswith("$argon2id$") for call in calls)


@pytest.mark.real_hashing
def test_outdated_hash_is_upgraded_at_log_in(app: Flask) -> None:
    weak = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1).hash(PASSWORD)
    with app.app_context():
        user = users.register_user("张三", PASSWORD)
        user.password_hash = weak
        db.session.commit()
        assert users.authenticate("张三", PASSWORD) is not None
        db.session.expire_all()
        upgraded = users.find_user("张三")
        assert upgraded is not None and upgraded.password_hash != weak
        assert not passwords().needs_rehash(upgraded.password_hash)


def test_duplicate_registration_is_decided_by_the_database(app: Flask) -> None:
    with app.app_context():
        users.register_user("张三", PASSWORD)
        with pytest.raises(UsernameTaken):
            users.register_user("张三", PASSWORD)
        # the session is usable again after the failed insert
        assert users.find_user("张三") is not None


def start_a_session() -> tuple[str, int]:
    """A new account's browser session, started as a log-in starts it: the key its cookie
    carries, and the row's id."""
    user = users.register_user("张三", PASSWORD)
    row = sessions.start(user)
    key = user.get_id()
    assert key is not None
    return key, row.id


def set_session_times(session_id: int, **times: datetime) -> None:
    db.session.execute(
        sa.update(BrowserSession).where(BrowserSession.id == session_id).values(times)
    )
    db.session.commit()


@pytest.mark.parametrize(
    "key", ["", "1", "1:1", "-1:1", "x" * 43, "uh_" + "x" * 43, "x" * 5000, "\0"]
)
def test_keys_of_no_live_session_load_nobody(app: Flask, key: str) -> None:
    with app.app_context():
        real, session_id = start_a_session()
        assert sessions.find(key) is None
        found = sessions.find(real)
        assert found is not None and found.id == session_id
        assert found.user.username == "张三"
        assert found.user.get_id() == real  # what Flask-Login keeps in the cookie


def test_the_session_key_is_random_and_only_its_digest_is_stored(app: Flask) -> None:
    with app.app_context():
        key, session_id = start_a_session()
        other = sessions.start(users.find_user("张三"))  # type: ignore[arg-type]
        stored = db.session.get(BrowserSession, session_id)
        assert stored is not None and key not in stored.key_hash
        assert stored.key_hash == hashlib.sha256(key.encode()).hexdigest()
        assert len(key) >= 43 and other.key_hash != stored.key_hash


def test_a_session_ends_after_its_idle_time_and_at_its_absolute_end(app: Flask) -> None:
    idle = timedelta(seconds=app.config["USERHUB_SESSION_IDLE_SECONDS"])
    with app.app_context():
        key, session_id = start_a_session()
        now = utcnow()
        set_session_times(session_id, last_seen_at=now - idle - timedelta(seconds=1))
        assert sessions.find(key) is None, "idle too long"
        set_session_times(session_id, last_seen_at=now - idle + timedelta(minutes=1))
        assert sessions.find(key) is not None, "idle, but not for long enough"
        set_session_times(session_id, last_seen_at=now, expires_at=now - timedelta(seconds=1))
        assert sessions.find(key) is None, "in use, but past its absolute end"


def test_a_session_whose_row_is_deleted_loads_nobody(app: Flask) -> None:
    with app.app_context():
        key, session_id = start_a_session()
        db.session.execute(sa.delete(BrowserSession).where(BrowserSession.id == session_id))
        db.session.commit()
        assert sessions.find(key) is None


def test_a_deleted_users_id_is_never_given_to_a_new_account(app: Flask) -> None:
    """The security log names users by id and outlives them: a new account must never inherit
    a deleted one's id (and with it, its log)."""
    with app.app_context():
        users.register_user("first", PASSWORD)
        gone = users.register_user("second", PASSWORD).id
        db.session.execute(sa.text("DELETE FROM user WHERE id = :id"), {"id": gone})
        db.session.commit()
        assert users.register_user("third", PASSWORD).id > gone
