"""An authenticator app (TOTP, RFC 6238): set up, confirmed, checked, removed.

Codes are what every phone app makes: 6 digits, a new one every 30 seconds, HMAC-SHA-1 (the
defaults of Google Authenticator, Microsoft Authenticator, FreeOTP, Aegis, 1Password...). A
code of the current step or of one step either side is accepted (a phone's clock a little off,
a code typed as it changed), and never a code of a step at or before the last one accepted:
``last_step`` moves forward with a conditional UPDATE, committed, so two instances given the
same code at the same moment let only one through (a code seen over a shoulder or phished is
spent by its owner's use).

Setting one up takes two steps: ``begin`` stores a new secret, not yet counted, and gives its
``otpauth://`` address (as a QR code for the phone, and as text for typing); ``confirm`` with
the first right code makes it count, and gives the account's ten recovery codes. The issuer
the phone shows is ``ISSUER`` ("userhub"), the account name the username. The secret is stored
sealed (``factor_secrets.py``), never in the clear, and never logged.
"""

from __future__ import annotations

import base64
import hmac
import io
import logging
import os
import re
import time
from dataclasses import dataclass
from datetime import timedelta

import pyotp
import segno
from flask_babel import gettext as _
from sqlalchemy import delete as _delete
from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError

from .. import transactions
from ..extensions import db
from ..models import TotpFactor, User, utcnow
from . import factor_secrets, recovery_codes, security_log
from .errors import AlreadyEnrolled, NoEnrolment, WrongCode

log = logging.getLogger("userhub")

ISSUER = "userhub"
DIGITS = 6
INTERVAL = 30  # seconds
SECRET_BYTES = 20  # 160 bits, RFC 4226's recommendation (32 characters of base32)
TOLERANCE = 1  # steps accepted either side of the current one
CODE = re.compile(rf"[0-9]{{{DIGITS}}}")
# A set-up whose first code never came is forgotten after this: its secret was shown on a
# screen, and is kept no longer than a person takes to finish (``prune``).
ABANDONED_AFTER = timedelta(days=1)


@dataclass(frozen=True)
class Enrolment:
    """A new authenticator app, not yet confirmed: what the user gives the phone."""

    secret: str  # base32, as phone apps take it typed
    otpauth_uri: str


def enabled(user: User) -> bool:
    """Whether ``user`` has a confirmed authenticator app."""
    found = db.session.scalar(
        select(TotpFactor.user_id).where(
            TotpFactor.user_id == user.id, TotpFactor.confirmed_at.is_not(None)
        )
    )
    return found is not None


def _text(secret: bytes) -> str:
    return base64.b32encode(secret).decode("ascii").rstrip("=")


def begin(user: User) -> Enrolment:
    """A new secret for ``user``'s authenticator app, stored unconfirmed (replacing one not
    confirmed), committed. AlreadyEnrolled if a confirmed one exists: it is removed first."""
    secret = os.urandom(SECRET_BYTES)

    def store() -> None:
        confirmed = db.session.scalar(
            select(TotpFactor.confirmed_at).where(TotpFactor.user_id == user.id)
        )
        if confirmed is not None:
            raise AlreadyEnrolled()
        delete(user)
        db.session.add(
            TotpFactor(
                user_id=user.id, secret=factor_secrets.seal(user.id, secret), created_at=utcnow()
            )
        )

    try:
        transactions.committed(store)
    except IntegrityError:  # another begin of this account inserted first: replace it
        transactions.committed(store)
    return _enrolment(user, secret)


def pending(user: User) -> Enrolment | None:
    """The app ``begin`` set up for ``user`` and not confirmed yet, to show again (a page that
    is reloaded, a first code mistyped); None if there is none (or it was sealed under a
    secret key since forgotten: begin again)."""
    sealed = db.session.scalar(
        select(TotpFactor.secret).where(
            TotpFactor.user_id == user.id, TotpFactor.confirmed_at.is_(None)
        )
    )
    if sealed is None:
        return None
    try:
        secret = _open(user, sealed)
    except factor_secrets.Unreadable:
        return None
    return _enrolment(user, secret)


def prune() -> int:
    """Forget set-ups never confirmed ``ABANDONED_AFTER`` after they began (housekeeping);
    how many went. A confirmed app stays, however old."""
    abandoned = (TotpFactor.confirmed_at.is_(None)) & (
        TotpFactor.created_at <= utcnow() - ABANDONED_AFTER
    )
    return transactions.delete_in_batches(TotpFactor, abandoned)


def _enrolment(user: User, secret: bytes) -> Enrolment:
    uri = _totp(secret).provisioning_uri(name=user.username, issuer_name=ISSUER)
    return Enrolment(secret=_text(secret), otpauth_uri=uri)


def qr_svg(uri: str) -> str:
    """``uri`` as a QR code: an SVG document (made here, no script, no outside address), black
    on white with a quiet zone, titled for screen readers."""
    qr = segno.make(uri, error="m")
    out = io.BytesIO()
    title = _("QR code to scan with your authenticator app")
    qr.save(out, kind="svg", scale=5, border=4, dark="#000", light="#fff", title=title)
    svg = out.getvalue().decode("utf-8")
    return svg.replace("<svg ", f'<svg role="img" aria-label="{_escape(title)}" ', 1)


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;")


def confirm(user: User, code: str) -> list[str]:
    """The first code of the app set up by ``begin``: if right, the app counts from now on
    (a ``totp-enabled`` event) and the account gets ten new recovery codes, returned (shown
    once), all committed. WrongCode for a wrong code, NoEnrolment when nothing is being set
    up, AlreadyEnrolled when it was confirmed already."""
    row = db.session.execute(
        select(TotpFactor.secret, TotpFactor.confirmed_at).where(TotpFactor.user_id == user.id)
    ).first()
    if row is None:
        raise NoEnrolment()
    if row.confirmed_at is not None:
        raise AlreadyEnrolled()
    try:
        secret = _open(user, row.secret)
    except factor_secrets.Unreadable:  # the secret key changed since: begin again
        log.error("the authenticator secret of user %d cannot be opened", user.id)
        raise NoEnrolment() from None
    step = _matching_step(secret, code)
    if step is None:
        raise WrongCode()

    def activate() -> list[str]:
        result = db.session.execute(
            update(TotpFactor)
            .where(
                TotpFactor.user_id == user.id,
                TotpFactor.confirmed_at.is_(None),
                TotpFactor.secret == row.secret,  # not one a later begin put in its place
            )
            .values(confirmed_at=utcnow(), last_step=step)
            .execution_options(synchronize_session=False)
        )
        if result.rowcount != 1:  # type: ignore[attr-defined]
            raise NoEnrolment()
        security_log.record(security_log.TOTP_ENABLED, user.id)
        return recovery_codes.generate(user)

    return transactions.committed(activate)


def verify(user: User, code: str) -> bool:
    """A right code of the confirmed factor, never accepted twice (committed when right)."""
    row = db.session.execute(
        select(TotpFactor.secret, TotpFactor.last_step).where(
            TotpFactor.user_id == user.id, TotpFactor.confirmed_at.is_not(None)
        )
    ).first()
    if row is None:
        return False
    try:
        secret = _open(user, row.secret)
    except factor_secrets.Unreadable:
        log.error("the authenticator secret of user %d cannot be opened", user.id)
        return False
    step = _matching_step(secret, code)
    if step is None or (row.last_step is not None and step <= row.last_step):
        return False

    def spend() -> int:
        result = db.session.execute(
            update(TotpFactor)
            .where(
                TotpFactor.user_id == user.id,
                TotpFactor.confirmed_at.is_not(None),
                or_(TotpFactor.last_step.is_(None), TotpFactor.last_step < step),
            )
            .values(last_step=step)
            .execution_options(synchronize_session=False)
        )
        return int(result.rowcount)  # type: ignore[attr-defined]

    return transactions.committed(spend) == 1


def remove(user: User, *, by: User | None = None) -> bool:
    """Remove ``user``'s authenticator app and its recovery codes, committed with a
    ``totp-disabled`` event (naming ``by``, an administrator, when it is not the owner).
    Whether there was a confirmed one (an enrolment not finished goes silently)."""

    def write() -> bool:
        confirmed = db.session.scalar(
            select(TotpFactor.confirmed_at).where(TotpFactor.user_id == user.id)
        )
        delete(user)
        recovery_codes.delete_all(user)
        if confirmed is None:
            return False
        security_log.record(
            security_log.TOTP_DISABLED, user.id, actor_id=by.id if by is not None else None
        )
        return True

    return transactions.committed(write)


def delete(user: User) -> None:
    """Remove the factor, in the caller's transaction (no event)."""
    db.session.execute(_delete(TotpFactor).where(TotpFactor.user_id == user.id))


def _open(user: User, sealed: bytes) -> bytes:
    return factor_secrets.unseal(user.id, sealed)


def _totp(secret: bytes) -> pyotp.TOTP:
    return pyotp.TOTP(_text(secret), digits=DIGITS, interval=INTERVAL, issuer=ISSUER)


def normalise(code: str) -> str:
    """A code as typed: spaces (some apps show ``123 456``) dropped."""
    return "".join(code.split()) if isinstance(code, str) else ""


def _matching_step(secret: bytes, code: str) -> int | None:
    """The time step (of now, or one either side) whose code ``code`` is; None if none."""
    code = normalise(code)
    if not CODE.fullmatch(code):
        return None
    totp = _totp(secret)
    now = int(time.time()) // INTERVAL
    for step in (now, now - TOLERANCE, now + TOLERANCE):
        if hmac.compare_digest(totp.generate_otp(step), code):
            return step
    return None
