"""Single-use recovery codes: the way in when the phone with the authenticator app is lost.

An account with an authenticator app has ``COUNT`` (10) of them, made when the app is
confirmed and again on demand (which voids the old ones); each works once. A code is 10
characters of Crockford's base32 (``xxxxx-xxxxx``, 50 random bits): digits and lowercase
letters without i, l, o and u, and typed input is forgiven its case, spaces, dashes, and an
``o``, ``i`` or ``l`` for ``0`` or ``1``.

Only an HMAC-SHA-256 of each code (and its account's id) is stored, keyed with a key derived
from the app's secret key, so a copy of the table alone cannot be searched for the codes. Not
argon2, as passwords are: a code is 50 random bits, not a word a person chose, so a fast keyed
digest is already out of reach of guessing; and a code is checked against all ten of the
account's at each try, which with argon2 (~50 ms each) would cost half a second per try and
make every wrong code a cheap way to load the server. After a rotation of the secret key,
codes made under an old one (``SECRET_KEY_FALLBACKS``) still work.

Using one is a ``recovery-code-used`` event and, for an account with an address, a mail saying
how many are left: a code used by someone else is how a thief would get past the second factor.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from sqlalchemy import delete, func, select, update

from .. import transactions
from ..extensions import db
from ..models import RecoveryCode, TotpFactor, User, utcnow
from . import account_mail, factor_secrets, security_log
from .errors import TotpNotEnabled

COUNT = 10
ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"  # Crockford's base32: 5 bits a character
HALF = 5  # characters on each side of the dash
# What a person may type for a character of the alphabet.
READS_AS = str.maketrans({"o": "0", "i": "1", "l": "1"})
KEY_INFO = b"userhub recovery codes"


def _keys() -> list[bytes]:
    """The digest keys: the current secret key's first, then the fallbacks'."""
    return factor_secrets.derived_keys(KEY_INFO)


def _digest(key: bytes, user_id: int, normal: str) -> str:
    return hmac.new(key, f"{user_id}:{normal}".encode(), hashlib.sha256).hexdigest()


def normalise(code: str) -> str | None:
    """A code as typed, in its stored form (10 characters of the alphabet), or None if it
    cannot be one."""
    if not isinstance(code, str):
        return None
    normal = "".join(code.split()).replace("-", "").lower().translate(READS_AS)
    if len(normal) != 2 * HALF or not all(c in ALPHABET for c in normal):
        return None
    return normal


def _new_code() -> str:
    text = "".join(secrets.choice(ALPHABET) for _ in range(2 * HALF))
    return f"{text[:HALF]}-{text[HALF:]}"


def generate(user: User) -> list[str]:
    """``COUNT`` new codes for ``user``, replacing every code before, in the caller's
    transaction, with a ``recovery-codes-generated`` event. The codes, to show once."""
    codes = [_new_code() for _ in range(COUNT)]
    key = _keys()[0]
    delete_all(user)
    now = utcnow()
    for code in codes:
        normal = normalise(code)
        assert normal is not None
        db.session.add(
            RecoveryCode(user_id=user.id, code_hash=_digest(key, user.id, normal), created_at=now)
        )
    security_log.record(security_log.RECOVERY_CODES_GENERATED, user.id)
    return codes


def regenerate(user: User) -> list[str]:
    """New codes in place of the old ones (all void now), committed. TotpNotEnabled for an
    account without an authenticator app (its codes come with it)."""

    def write() -> list[str]:
        if not _has_totp(user):
            raise TotpNotEnabled()
        return generate(user)

    return transactions.committed(write)


def _has_totp(user: User) -> bool:
    found = db.session.scalar(
        select(TotpFactor.user_id).where(
            TotpFactor.user_id == user.id, TotpFactor.confirmed_at.is_not(None)
        )
    )
    return found is not None


def use(user: User, code: str) -> bool:
    """Spend an unused recovery code of ``user`` (committed, with its event and notice mail):
    whether it was one. A code is spent once, however many requests bring it at once."""
    normal = normalise(code)
    if normal is None:
        return False
    digests = [_digest(key, user.id, normal) for key in _keys()]

    def spend() -> bool:
        result = db.session.execute(
            update(RecoveryCode)
            .where(
                RecoveryCode.user_id == user.id,
                RecoveryCode.code_hash.in_(digests),
                RecoveryCode.used_at.is_(None),
            )
            .values(used_at=utcnow())
            .execution_options(synchronize_session=False)
        )
        if result.rowcount != 1:  # type: ignore[attr-defined]
            return False
        left = remaining(user)
        security_log.record(security_log.RECOVERY_CODE_USED, user.id, remaining=left)
        if user.email is not None:
            account_mail.recovery_code_used(user, left)
        return True

    return transactions.committed(spend)


def remaining(user: User) -> int:
    """How many of ``user``'s codes are still unused."""
    count = db.session.scalar(
        select(func.count())
        .select_from(RecoveryCode)
        .where(RecoveryCode.user_id == user.id, RecoveryCode.used_at.is_(None))
    )
    return int(count or 0)


def delete_all(user: User) -> None:
    """Remove every code, in the caller's transaction (no event)."""
    db.session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
