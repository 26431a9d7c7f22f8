"""An account's second factors together: which it has, checking a code typed at the second
step of a log-in or a re-authentication, and an administrator's reset.

The factors themselves live in their own modules: an authenticator app (``totp.py``), its
single-use recovery codes (``recovery_codes.py``) and passkeys (``passkeys.py``). A code is
checked behind the account's limit on wrong passwords (``login_limits.attempt``, the same
buckets), so guessing codes is as slow as guessing the password; each wrong one is a
``second-factor-failed`` event.
"""

from __future__ import annotations

from .. import transactions
from ..models import User
from . import login_limits, passkeys, recovery_codes, security_log, totp

TOTP = "totp"
RECOVERY_CODE = "recovery-code"
PASSKEY = "passkey"


def methods(user: User) -> list[str]:
    """The second factors ``user`` can log in with: ``totp`` and/or ``passkey``."""
    found = []
    if totp.enabled(user):
        found.append(TOTP)
    if passkeys.count(user):
        found.append(PASSKEY)
    return found


def has_any(user: User) -> bool:
    return bool(methods(user))


def check_code(user: User, code: str, *, device: str | None) -> str | None:
    """Whether ``code`` is a right authenticator code or an unused recovery code of ``user``:
    the method it was (the code is then spent), or None (counted as a failed attempt of this
    client, ``device`` as ``login_limits.attempt`` takes it). Raises TooManyFailures while the
    client's bucket is full."""
    code = (code or "").strip()
    used: list[str] = []

    def check() -> bool:
        if totp.verify(user, code):
            used.append(TOTP)
        elif recovery_codes.use(user, code):
            used.append(RECOVERY_CODE)
        return bool(used)

    if login_limits.attempt(user.username_key, device, check):
        return used[0]
    security_log.record_now(security_log.SECOND_FACTOR_FAILED, user.id)
    return None


def reset(user: User, *, by: User) -> None:
    """An administrator removes every second factor of ``user`` (who lost them all), committed
    with a ``factors-reset`` event naming the administrator."""

    def remove_all() -> None:
        totp.delete(user)
        recovery_codes.delete_all(user)
        passkeys.delete_all(user)
        security_log.record(security_log.FACTORS_RESET, user.id, actor_id=by.id)

    transactions.committed(remove_all)
