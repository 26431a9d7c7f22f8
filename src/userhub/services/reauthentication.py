"""Re-authentication: what could lock the owner out or let a thief stay (a new password or
address, a second factor added or removed, an API key made, the account deleted) needs a proof
of identity within the last ``USERHUB_REAUTHENTICATION_SECONDS`` (5 min by default), not just a
live session or token.

Each browser session and each API token records when its holder last proved who they are
(``authenticated_at``): a session's log-in, a log-in token's issue (``POST /api/v1/tokens``), or
a re-authentication with it (a password, an authenticator code, a recovery code or a passkey).
A personal API key is never authenticated when made: it must re-authenticate before it can do
any of these. The time is read only when such an action is asked for, so ordinary requests pay
nothing for it.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import select, update

from .. import transactions
from ..extensions import db
from ..models import ApiToken, BrowserSession, User, utcnow
from . import second_factors, security_log, users

PASSWORD = "password"  # noqa: S105 (a method, not a secret)


def reauthenticate(
    user: User,
    *,
    password: str | None = None,
    code: str | None = None,
    device: str | None,
    session_id: int | None = None,
    token_id: int | None = None,
) -> bool:
    """Check the password, or else a code (authenticator or recovery), behind the account's
    limit on failures (``device`` as ``login_limits.attempt`` takes it; TooManyFailures when
    over it); if right, ``renew`` the session or token. Whether it was right."""
    if password:
        method = (
            PASSWORD
            if users.check_password(user.username_key, user, password, device=device)
            else None
        )
    elif code:
        method = second_factors.check_code(user, code, device=device)
    else:
        return False
    if method is None:
        return False
    renew(user, method, session_id=session_id, token_id=token_id)
    return True


def is_recent(authenticated_at: datetime | None) -> bool:
    """Whether a proof of identity at ``authenticated_at`` is recent enough."""
    window = timedelta(seconds=current_app.config["USERHUB_REAUTHENTICATION_SECONDS"])
    return authenticated_at is not None and authenticated_at > utcnow() - window


def session_is_recent(session_id: int) -> bool:
    return is_recent(
        db.session.scalar(
            select(BrowserSession.authenticated_at).where(BrowserSession.id == session_id)
        )
    )


def token_is_recent(token_id: int) -> bool:
    return is_recent(
        db.session.scalar(select(ApiToken.authenticated_at).where(ApiToken.id == token_id))
    )


def renew(
    user: User, method: str, *, session_id: int | None = None, token_id: int | None = None
) -> None:
    """The holder of this session or token just proved who they are with ``method``: record
    it, committed, with a ``reauthenticated`` event."""
    now = utcnow()

    def write() -> None:
        held: tuple[tuple[type[BrowserSession] | type[ApiToken], int | None], ...] = (
            (BrowserSession, session_id),
            (ApiToken, token_id),
        )
        for model, row_id in held:
            if row_id is not None:
                db.session.execute(
                    update(model)
                    .where(model.id == row_id)
                    .values(authenticated_at=now)
                    .execution_options(synchronize_session=False)
                )
        security_log.record(security_log.REAUTHENTICATED, user.id, method=method)

    transactions.committed(write)
