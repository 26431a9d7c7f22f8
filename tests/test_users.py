"""The user service: username rules, password hashing, authentication."""

from __future__ import annotations

import pytest
from argon2 import PasswordHasher
from flask import Flask

from tests.helpers import PASSWORD
from userhub.extensions import db
from userhub.services import account_rules, users
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


@pytest.mark.parametrize("session_id", ["", "1", "x:1", "1:x", "999:1", "1:2", "-1:1"])
def test_invalid_session_ids_load_nobody(app: Flask, session_id: str) -> None:
    with app.app_context():
        users.register_user("张三", PASSWORD)
        assert users.load_session_user(session_id) is None
        assert users.load_session_user("1:1") is not None


def test_a_deleted_users_id_is_never_given_to_a_new_account(app: Flask) -> None:
    """Sessions name users by id: a new account must never inherit a deleted one's id."""
    import sqlalchemy as sa

    with app.app_context():
        users.register_user("first", PASSWORD)
        gone = users.register_user("second", PASSWORD).id
        db.session.execute(sa.text("DELETE FROM user WHERE id = :id"), {"id": gone})
        db.session.commit()
        assert users.register_user("third", PASSWORD).id > gone
