"""An authenticator app (TOTP, RFC 6238). TO BE WRITTEN (helper: totp)."""

from __future__ import annotations

from ..models import User


def enabled(user: User) -> bool:
    """Whether ``user`` has a confirmed authenticator app."""
    from sqlalchemy import select

    from ..extensions import db
    from ..models import TotpFactor

    return db.session.scalar(select(TotpFactor.confirmed_at).where(TotpFactor.user_id == user.id)) is not None


def verify(user: User, code: str) -> bool:
    """A right code of the confirmed factor, never accepted twice (committed when right)."""
    raise NotImplementedError


def delete(user: User) -> None:
    """Remove the factor, in the caller's transaction (no event)."""
    raise NotImplementedError
