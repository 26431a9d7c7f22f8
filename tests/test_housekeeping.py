"""Housekeeping: sessions past either lifetime, security events past their retention, expired
tokens and keys, sent mail and dead links are deleted, and nothing still alive is; by
``housekeeping.prune_all``, by ``flask --app userhub prune``, and by the background thread of
every ``userhub serve`` worker, which runs it with no mail configured too.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask_migrate import upgrade

from tests.helpers import BACKENDS, PASSWORD, AppBuilder, own_database
from tests.live_server import running_server
from userhub import transactions
from userhub.extensions import db
from userhub.models import (
    ApiToken,
    AuthChallenge,
    BrowserSession,
    EmailLink,
    SecurityEvent,
    TotpFactor,
    User,
    utcnow,
)
from userhub.services import (
    api_keys,
    challenges,
    email_links,
    housekeeping,
    security_log,
    sessions,
    tokens,
    totp,
    users,
)
from userhub.services.housekeeping import Pruned

# Well inside or past a limit: the test's own seconds never tip a row over.
MARGIN = timedelta(minutes=10)


@dataclass(frozen=True)
class Alive:
    """The ids of the rows housekeeping must keep."""

    sessions: set[int]
    events: set[int]
    tokens: set[int]
    challenges: set[int]
    totp_set_ups: set[int]


def set_times(model: Any, row_id: int, **times: Any) -> None:
    db.session.execute(sa.update(model).where(model.id == row_id).values(times))


def old_event(user_id: int, age: timedelta) -> int:
    """A security event written ``age`` ago (as if it had been)."""
    event = SecurityEvent(user_id=user_id, type=security_log.LOGGED_IN, created_at=utcnow() - age)
    db.session.add(event)
    db.session.flush()
    return event.id


def fill(app: Flask) -> Alive:
    """An account with two sessions, four events, two tokens, a dead link and an abandoned
    log-in step that must go, and an authenticator app set up and left, beside one of each
    that must stay (inside an app context)."""
    idle = timedelta(seconds=app.config["USERHUB_SESSION_IDLE_SECONDS"])
    retention = timedelta(days=app.config["USERHUB_SECURITY_LOG_RETENTION_DAYS"])
    user = users.register_user("张三", PASSWORD)  # its "registered" event stays
    idle_too_long, past_the_end, live, nearly_idle = (sessions.start(user).id for _ in range(4))
    login_token = tokens.issue(user)
    live_token = tokens.find(tokens.issue(user).token)
    key = api_keys.create(user, "backup script", [api_keys.READ])
    live_key = api_keys.create(user, "monitoring", [api_keys.READ])
    email_links.make(user, email_links.UNLOCK)
    # A log-in's second step never finished, and one under way.
    abandoned, under_way = (
        challenges.begin(challenges.SECOND_STEP, user_id=user.id) for _ in range(2)
    )
    now = utcnow()
    db.session.execute(
        sa.update(AuthChallenge)
        .where(AuthChallenge.key_hash == tokens.token_hash(abandoned))
        .values(expires_at=now - timedelta(seconds=1))
    )
    set_times(BrowserSession, idle_too_long, last_seen_at=now - idle - MARGIN)
    set_times(BrowserSession, past_the_end, last_seen_at=now, expires_at=now - MARGIN)
    set_times(BrowserSession, nearly_idle, last_seen_at=now - idle + MARGIN)
    expired = tokens.find(login_token.token)
    assert expired is not None and live_token is not None
    for token_id in (expired.id, key.row.id):
        set_times(ApiToken, token_id, expires_at=now - timedelta(seconds=1))
    db.session.execute(sa.update(EmailLink).values(expires_at=now - timedelta(days=2)))
    old_event(user.id, retention + MARGIN)
    old_event(user.id + 1000, retention + timedelta(days=400))  # of an account long gone
    kept_event = old_event(user.id, retention - MARGIN)
    # An authenticator app set up over a day ago and never confirmed; one begun today; and an
    # old one confirmed, which is a factor, never pruned.
    set_ups = {name: users.register_user(name, PASSWORD) for name in ("李四", "王五", "赵六")}
    for set_up in set_ups.values():
        totp.begin(set_up)
    db.session.execute(
        sa.update(TotpFactor)
        .where(TotpFactor.user_id.in_([set_ups["李四"].id, set_ups["赵六"].id]))
        .values(created_at=now - totp.ABANDONED_AFTER - MARGIN)
    )
    db.session.execute(
        sa.update(TotpFactor)
        .where(TotpFactor.user_id == set_ups["赵六"].id)
        .values(confirmed_at=now - timedelta(days=30))
    )
    db.session.commit()
    recent = set(
        db.session.scalars(
            sa.select(SecurityEvent.id).where(SecurityEvent.created_at > now - MARGIN)
        )
    )
    return Alive(
        sessions={live, nearly_idle},
        events=recent | {kept_event},
        tokens={live_token.id, live_key.row.id},
        challenges=set(
            db.session.scalars(
                sa.select(AuthChallenge.id).where(
                    AuthChallenge.key_hash == tokens.token_hash(under_way)
                )
            )
        ),
        totp_set_ups={set_ups["王五"].id, set_ups["赵六"].id},
    )


def remaining(app: Flask) -> Alive:
    with app.app_context():
        return Alive(
            sessions=set(db.session.scalars(sa.select(BrowserSession.id))),
            events=set(db.session.scalars(sa.select(SecurityEvent.id))),
            tokens=set(db.session.scalars(sa.select(ApiToken.id))),
            challenges=set(db.session.scalars(sa.select(AuthChallenge.id))),
            totp_set_ups=set(db.session.scalars(sa.select(TotpFactor.user_id))),
        )


GONE = Pruned(
    mail_and_links=1, sessions=2, security_events=2, tokens=2, challenges=1, totp_set_ups=1
)


def test_prune_all_forgets_what_has_served_its_time_and_nothing_else(app: Flask) -> None:
    with app.app_context():
        alive = fill(app)
        assert housekeeping.prune_all() == GONE
        assert housekeeping.prune_all() == Pruned(0, 0, 0, 0, 0, 0)  # nothing left to forget
        assert db.session.scalar(sa.select(sa.func.count()).select_from(EmailLink)) == 0
        assert db.session.scalar(sa.select(sa.func.count()).select_from(User)) == 4
    assert remaining(app) == alive


def test_prune_goes_on_batch_after_batch(app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    """A batch is a short transaction; however many rows there are, each goes in some batch."""
    monkeypatch.setattr(transactions, "PRUNE_BATCH", 1)  # the one batch size every prune uses
    with app.app_context():
        alive = fill(app)
        assert housekeeping.prune_all() == GONE
    assert remaining(app) == alive


def test_the_prune_command_says_how_many_of_each_went(app: Flask) -> None:
    with app.app_context():
        alive = fill(app)
    runner = app.test_cli_runner()
    result = runner.invoke(args=["prune"])
    assert result.exit_code == 0, result.output
    assert result.output == (
        "sent mail and dead links: 1\n"
        "ended sessions: 2\n"
        "old security events: 2\n"
        "expired tokens and keys: 2\n"
        "unfinished log-in steps and passkey ceremonies: 1\n"
        "authenticator apps never confirmed: 1\n"
        "accounts deleted after their grace period: 0\n"
    )
    assert remaining(app) == alive
    again = runner.invoke(args=["prune"])
    assert again.exit_code == 0 and again.output.count(": 0\n") == 7


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_server_prunes_in_the_background_without_mail_configured(
    backend: str, tmp_path: Path, build_app: AppBuilder
) -> None:
    """No cron job and no ``USERHUB_MAIL_URL``: each worker's background thread does it."""
    database = own_database(backend, tmp_path, "housekeeping")
    app = build_app(database)
    with app.app_context():
        upgrade()
        alive = fill(app)
    with running_server("production", database, tmp_path) as server:
        deadline = time.monotonic() + 30
        while remaining(app) != alive and time.monotonic() < deadline:
            time.sleep(0.2)
        assert remaining(app) == alive, server.log()
        assert "USERHUB_MAIL_URL is not set" in server.log()
