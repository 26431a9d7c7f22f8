"""Passkeys (WebAuthn). TO BE WRITTEN (helper: passkeys)."""

from __future__ import annotations

from ..models import User


def count(user: User) -> int:
    """How many passkeys ``user`` has."""
    raise NotImplementedError


def delete_all(user: User) -> None:
    """Remove every passkey, in the caller's transaction (no event)."""
    raise NotImplementedError
