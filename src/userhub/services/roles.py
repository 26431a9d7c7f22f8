"""Who may look after other accounts: the one place pages and the API ask.

* an administrator (``is_admin``) sees every account and its activity, and changes them;
* support (``is_support``) sees the same, and changes nothing (read-only help desk);
* everyone else sees only their own account.

An API key acts in a role only with the ``admin`` scope (``api_keys.py``), as it always has for
administrators; a log-in token or a browser session acts in the account's role.
"""

from __future__ import annotations

from flask import current_app

from ..models import User
from . import second_factors
from .errors import ReadOnlyRole

ADMIN = "admin"
SUPPORT = "support"
NO_ROLE = "none"  # how lists and the command line name an account without a role


def role_of(user: User) -> str | None:
    """``admin``, ``support``, or None (an ordinary account)."""
    if user.is_admin:
        return ADMIN
    if user.is_support:
        return SUPPORT
    return None


def can_view_users(user: User) -> bool:
    """Whether ``user`` may see other accounts, their sessions, keys and security log."""
    return role_of(user) is not None


def can_manage_users(user: User) -> bool:
    """Whether ``user`` may change other accounts (deactivate, delete, roles, factors...)."""
    return role_of(user) == ADMIN


def lacks_required_factor(user: User) -> bool:
    """Whether ``USERHUB_REQUIRE_MFA_FOR_ADMINS`` keeps ``user`` (staff) out of their role until
    their own account has a second factor: staff see other people's data."""
    return bool(
        current_app.config["USERHUB_REQUIRE_MFA_FOR_ADMINS"]
        and role_of(user) is not None
        and not second_factors.has_any(user)
    )


def require_manager(user: User) -> None:
    """Raise ReadOnlyRole unless ``user`` may change other accounts."""
    if not can_manage_users(user):
        raise ReadOnlyRole()
