"""The second step of a log-in: the password was right, and the account has a second factor,
so no session or token exists yet. The client holds a challenge (``challenges.py``: 5 minutes,
single use, dead after a few wrong codes) and answers it with a code from the authenticator
app, a recovery code, or a passkey; only then is the session started or the token issued.

The browser keeps the challenge's key in its signed session cookie (``pages/second_step.py``);
an API client gets it in the ``mfa-required`` problem and sends it back
(``POST /api/v1/tokens``). Both go through here.
"""

from __future__ import annotations

from dataclasses import dataclass

from .. import transactions
from ..extensions import db
from ..models import AuthChallenge, User
from . import account_status, challenges, second_factors


@dataclass(frozen=True)
class Pending:
    """A log-in waiting for its second factor (what it knew when it began: the row may be
    spent or expired by a commit meanwhile)."""

    challenge: AuthChallenge
    user: User
    known_device: bool


def begin(user: User, *, known_device: bool) -> str:
    """The password of ``user`` was right: the challenge key the client must send back with
    its second factor."""
    return challenges.begin(challenges.SECOND_STEP, user_id=user.id, known_device=known_device)


def pending(key: str | None) -> Pending | None:
    """The log-in waiting behind ``key``, or None (unknown, used, expired, too many wrong
    codes, or its account deleted meanwhile)."""
    challenge = challenges.find(key, challenges.SECOND_STEP)
    if challenge is None or challenge.user_id is None:
        return None
    user = db.session.get(User, challenge.user_id)
    return Pending(challenge, user, challenge.known_device) if user is not None else None


def check_code(step: Pending, code: str, *, device: str | None) -> str | None:
    """A code typed at the second step: the method it proved (``totp`` or ``recovery-code``),
    or None, counted against the challenge and the account's limit on failures."""
    method = second_factors.check_code(step.user, code, device=device)
    if method is None:
        challenges.failed(step.challenge)
    return method


def complete(step: Pending) -> bool:
    """Use the challenge up (committed): True for the one request that may now log in.
    AccountInactive if the account was deactivated (or its deletion asked) since the password."""
    account_status.check_can_log_in(step.user)
    return transactions.committed(lambda: challenges.spend(step.challenge))


def session_method(method: str) -> str:
    """How a log-in in two steps is recorded (a session's method, the log-in event)."""
    return f"password+{method}"
