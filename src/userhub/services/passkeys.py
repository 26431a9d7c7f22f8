"""Passkeys (WebAuthn). TO BE WRITTEN (helper: passkeys)."""

from __future__ import annotations

from ..models import User


def count(user: User) -> int:
    """How many passkeys ``user`` has."""
    from sqlalchemy import func, select

    from ..extensions import db
    from ..models import Passkey

    return int(db.session.scalar(select(func.count()).where(Passkey.user_id == user.id)) or 0)


def delete_all(user: User) -> None:
    """Remove every passkey, in the caller's transaction (no event)."""
    raise NotImplementedError


def authentication_options(user: User | None) -> tuple[str, str]:
    """A passkey ceremony: the challenge's key and the options JSON for the browser."""
    raise NotImplementedError


def authenticate(challenge_key: str, credential: object, *, user: User | None = None) -> object:
    """The passkey's answer verified (ServiceError when refused)."""
    raise NotImplementedError
