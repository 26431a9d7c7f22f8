"""Single-use recovery codes. TO BE WRITTEN (helper: totp)."""

from __future__ import annotations

from ..models import User


def use(user: User, code: str) -> bool:
    """Spend an unused recovery code of ``user`` (committed, with its event and notice mail)."""
    raise NotImplementedError


def delete_all(user: User) -> None:
    """Remove every code, in the caller's transaction (no event)."""
    raise NotImplementedError
