"""Write transactions run again when the database aborts them as a deadlock (1213) or a lock
wait timeout (1205): real ones, made on the real MariaDB/MySQL server."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable

import pytest
import sqlalchemy as sa
from flask import Flask
from sqlalchemy.exc import IntegrityError, OperationalError

from tests.helpers import PASSWORD, needs_mysql
from userhub import transactions
from userhub.extensions import db
from userhub.models import User
from userhub.services import tokens, users
from userhub.services.errors import NoSuchUser
from userhub.web import errors


def _two_users(app: Flask) -> tuple[int, int]:
    with app.app_context():
        first = users.register_user("张三", PASSWORD).id
        second = users.register_user("李四", PASSWORD).id
    return first, second


def _rename(user_id: int, name: str) -> None:
    db.session.execute(sa.update(User).where(User.id == user_id).values(display_name=name))


@needs_mysql
@pytest.mark.parametrize("backend", ["mysql"])
def test_both_sides_of_a_deadlock_commit(app: Flask) -> None:
    """Two transactions lock two rows in opposite orders: InnoDB aborts one with 1213, and
    ``committed`` runs it again, so both changes land."""
    first, second = _two_users(app)
    both_hold_one_lock = threading.Barrier(2, timeout=10)
    attempts: Counter[str] = Counter()
    errors: list[BaseException] = []

    def body(name: str, order: tuple[int, int]) -> Callable[[], None]:
        def run() -> None:
            attempts[name] += 1
            _rename(order[0], name)
            if attempts[name] == 1:
                both_hold_one_lock.wait()
            _rename(order[1], name)

        return run

    def worker(name: str, order: tuple[int, int]) -> None:
        with app.app_context():
            try:
                transactions.committed(body(name, order))
            except BaseException as exc:  # reported below, with the thread's name
                errors.append(exc)

    threads = [
        threading.Thread(target=worker, args=("A", (first, second))),
        threading.Thread(target=worker, args=("B", (second, first))),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    assert sorted(attempts.values()) == [1, 2]  # a real deadlock: one side ran twice
    with app.app_context():
        names = set(db.session.scalars(sa.select(User.display_name)))
    assert len(names) == 1  # the side that ran again wrote both rows last


@needs_mysql
@pytest.mark.parametrize("backend", ["mysql"])
def test_a_lock_wait_timeout_is_waited_out(app: Flask) -> None:
    """Another connection holds the row longer than the lock wait timeout (1 s here): the
    first attempt fails with 1205, a later one gets the row once it is released."""
    first, _ = _two_users(app)
    attempts = 0
    with app.app_context():
        holder = db.engine.connect()
        holder.execute(sa.select(User).where(User.id == first).with_for_update())

        def release_later() -> None:
            time.sleep(1.3)
            holder.rollback()

        releaser = threading.Thread(target=release_later)
        releaser.start()

        def rename() -> None:
            nonlocal attempts
            attempts += 1
            db.session.execute(sa.text("SET SESSION innodb_lock_wait_timeout = 1"))
            _rename(first, "after the wait")

        transactions.committed(rename)
        releaser.join()
        holder.close()
        renamed = db.session.get(User, first)
        assert renamed is not None and renamed.display_name == "after the wait"
    assert attempts == 2


def test_other_errors_are_not_retried(app: Flask) -> None:
    _two_users(app)
    attempts = 0

    def duplicate() -> None:
        nonlocal attempts
        attempts += 1
        db.session.add(User(username="张三", username_key="张三", password_hash="x"))

    with app.app_context():
        with pytest.raises(IntegrityError):
            transactions.committed(duplicate)
        assert db.session.scalar(sa.select(sa.func.count()).select_from(User)) == 2
    assert attempts == 1


@needs_mysql
@pytest.mark.parametrize("backend", ["mysql"])
def test_retries_are_bounded(app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    """A row locked for good: every attempt times out (1205), and after MAX_ATTEMPTS the
    error goes up (the API answers 503 with Retry-After) with nothing written."""
    first, _ = _two_users(app)
    attempts = 0
    monkeypatch.setattr(transactions, "backoff", lambda attempt: 0.0)

    def rename() -> None:
        nonlocal attempts
        attempts += 1
        db.session.execute(sa.text("SET SESSION innodb_lock_wait_timeout = 1"))
        _rename(first, "never")

    with app.app_context():
        with db.engine.connect() as holder:
            holder.execute(sa.select(User).where(User.id == first).with_for_update())
            with pytest.raises(OperationalError) as raised:
                transactions.committed(rename)
            holder.rollback()
        assert raised.value.orig.args[0] == transactions.LOCK_WAIT_TIMEOUT  # type: ignore[union-attr]
        unchanged = db.session.get(User, first)
        assert unchanged is not None and unchanged.display_name is None
    assert attempts == transactions.MAX_ATTEMPTS
    # What the client is told: a 503 that says why, and to come back soon.
    with app.test_request_context("/api/v1/users/me", method="PATCH"):
        response = errors.handle_database_unavailable(raised.value)
    assert response.status_code == 503  # type: ignore[union-attr]
    assert response.headers["Retry-After"] == "1"  # type: ignore[union-attr]
    assert "clashed" in response.get_json()["detail"]  # type: ignore[union-attr]


def _delete_behind_the_session(app: Flask, table: str, row_id: int) -> None:
    """Another client (another node) deletes a row this session has loaded."""
    other = sa.create_engine(app.config["SQLALCHEMY_DATABASE_URI"])
    with other.begin() as connection:
        connection.execute(sa.text(f"DELETE FROM {table} WHERE id = :id"), {"id": row_id})
    other.dispose()


def test_changing_an_account_deleted_meanwhile_says_so(app: Flask) -> None:
    """The UPDATE finds no row (or the retried body cannot reload it): NoSuchUser, which the
    API answers 404, never a 500."""
    first, _ = _two_users(app)
    with app.app_context():
        user = db.session.get(User, first)
        assert user is not None
        _delete_behind_the_session(app, "user", first)
        with pytest.raises(NoSuchUser):
            users.update_user(user, {"display_name": "too late"})


def test_deleting_an_account_deleted_meanwhile_is_done(app: Flask) -> None:
    first, second = _two_users(app)
    with app.app_context():
        admin = db.session.get(User, second)
        user = db.session.get(User, first)
        assert admin is not None and user is not None
        _delete_behind_the_session(app, "user", first)
        users.delete_user(user, by_admin=admin)
        assert db.session.scalar(sa.select(sa.func.count()).select_from(User)) == 1


def test_revoking_a_token_revoked_meanwhile_is_done(app: Flask) -> None:
    first, _ = _two_users(app)
    with app.app_context():
        user = db.session.get(User, first)
        assert user is not None
        issued = tokens.issue(user)
        api_token = tokens.find(issued.token)
        assert api_token is not None
        _delete_behind_the_session(app, "api_token", api_token.id)
        tokens.revoke(api_token)
        assert tokens.find(issued.token) is None


def test_the_backoff_is_jittered_and_capped() -> None:
    longest_wait = 0.0
    for attempt in range(1, transactions.MAX_ATTEMPTS):
        cap = min(transactions.FIRST_DELAY_CAP * 2 ** (attempt - 1), transactions.MAX_DELAY_CAP)
        delays = {transactions.backoff(attempt) for _ in range(50)}
        assert all(0 <= delay <= cap for delay in delays)
        assert len(delays) > 40  # random, so clashing clients do not clash again in step
        longest_wait += cap
    assert longest_wait < 1.5  # a request that gives up still answers well within nginx's 10 s
