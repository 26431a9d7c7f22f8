"""Short-lived steps of an authentication in progress, stored server-side:

- the **second step** of a log-in: the password was right, the account has a second factor,
  and the client holds this challenge until it sends a code or a passkey's answer;
- a **WebAuthn ceremony**: the random challenge a passkey must sign, kept until the browser
  answers (registering a passkey, logging in with one, re-authenticating with one);
- the proof that the log-in form was given the right password of an account waiting to be
  deleted, which its "Keep my account" button spends (``account_deletion.py``).

The client holds a random key (256 bits); the table keeps its SHA-256, like a token's. A
challenge lives ``USERHUB_MFA_CHALLENGE_SECONDS`` (5 min by default), is spent once (deleted: on
several instances only one request can spend it), and dies after ``MAX_FAILURES`` wrong codes,
so the second step is not a place to guess at codes (they also count in the account's limit on
wrong passwords, ``login_limits.py``). Expired rows are pruned by the housekeeping.
"""

from __future__ import annotations

import secrets
from datetime import timedelta

from flask import current_app
from sqlalchemy import select, update

from .. import transactions
from ..extensions import db
from ..models import AuthChallenge, stored_id, utcnow
from .tokens import token_hash

KEY_BYTES = 32
MAX_KEY_LENGTH = 100  # a real key is 43 characters
MAX_FAILURES = 5

SECOND_STEP = "second-step"  # a log-in waiting for its second factor
PASSKEY_REGISTRATION = "passkey-register"
PASSKEY_ASSERTION = "passkey-assert"  # log in, second step or re-authenticate with a passkey
CANCEL_DELETION = "cancel-deletion"  # the right password of an account waiting to be deleted


def begin(
    purpose: str,
    *,
    user_id: int | None = None,
    known_device: bool = False,
    webauthn_challenge: str | None = None,
) -> str:
    """A new challenge, committed; the key its client must send back."""
    key = secrets.token_urlsafe(KEY_BYTES)
    now = utcnow()
    row = AuthChallenge(
        key_hash=token_hash(key),
        purpose=purpose,
        user_id=user_id,
        known_device=known_device,
        webauthn_challenge=webauthn_challenge,
        failures=0,
        created_at=now,
        expires_at=now + timedelta(seconds=current_app.config["USERHUB_MFA_CHALLENGE_SECONDS"]),
    )
    transactions.committed(lambda: db.session.add(row))
    return key


def find(key: str | None, purpose: str) -> AuthChallenge | None:
    """The live challenge of ``purpose`` behind ``key``, or None (unknown, spent, expired, or
    given up after too many failures)."""
    if not key or not isinstance(key, str) or len(key) > MAX_KEY_LENGTH:
        return None
    row: AuthChallenge | None = db.session.scalar(
        select(AuthChallenge).where(
            AuthChallenge.key_hash == token_hash(key),
            AuthChallenge.purpose == purpose,
            AuthChallenge.expires_at > utcnow(),
            AuthChallenge.failures < MAX_FAILURES,
        )
    )
    return row


def failed(challenge: AuthChallenge) -> None:
    """Count a wrong answer to ``challenge``, committed (at ``MAX_FAILURES`` it is dead)."""
    challenge_id = stored_id(challenge)
    transactions.committed(
        lambda: db.session.execute(
            update(AuthChallenge)
            .where(AuthChallenge.id == challenge_id)
            .values(failures=AuthChallenge.failures + 1)
            .execution_options(synchronize_session=False)
        )
    )


def spend(challenge: AuthChallenge) -> bool:
    """Use ``challenge`` up, in the caller's transaction: True for the one request that deleted
    it, False if another had already (a replay, or a second tab)."""
    challenge_id = stored_id(challenge)
    return transactions.delete_where(AuthChallenge, AuthChallenge.id == challenge_id) == 1


def prune() -> int:
    """Forget expired challenges; how many went."""
    return transactions.delete_in_batches(AuthChallenge, AuthChallenge.expires_at <= utcnow())
