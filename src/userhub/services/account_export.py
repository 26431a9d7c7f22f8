"""Everything userhub holds about a person, as one JSON document (the right of access and
portability: GDPR articles 15 and 20), and as a ZIP to download.

``document(user)`` reads the account and every row that belongs to it, then records a
``data-exported`` event (committed on its own). Each section below says what it leaves out and
why: never a secret or anything a secret could be found from (a password hash, a token's, key's,
session's or mailed link's SHA-256, a sealed authenticator secret, a recovery code's digest, a
passkey's credential id, public key or the account's passkey handle), nor a mail's body (it may
hold a live link). Nothing of another account is in it: every row is chosen by the account's
id (mail queued before revision 0007, which has none, by the account's addresses). The schema is
described field by field in ``docs/export.md``; ``FORMAT`` names its version.
"""

from __future__ import annotations

import io
import json
import zipfile
from datetime import datetime
from typing import Any

from sqlalchemy import case, func, select

from ..extensions import db
from ..models import (
    ApiToken,
    BrowserSession,
    EmailLink,
    OutboxMessage,
    Passkey,
    RecoveryCode,
    SecurityEvent,
    TotpFactor,
    User,
    utc_iso,
    utcnow,
)
from . import account_status, outbox, security_log

FORMAT = "userhub-export/1"
JSON_NAME = "userhub-export.json"
README_NAME = "README.txt"
README = """\
userhub-export.json is everything userhub holds about your account, as JSON (UTF-8):
your profile, the links and mails sent to your addresses, your sessions, API keys and
log-in tokens, your security log and your second factors.

No secret is in it: no password or password hash, no token, key or session key or their
hashes, no authenticator app secret, no recovery code, no passkey's keys, no mail's text.

The format ("format": "userhub-export/1") is described field by field in docs/export.md
of userhub's documentation.
"""


def _time(value: datetime | None) -> str | None:
    return utc_iso(value) if value is not None else None


def document(user: User) -> dict[str, Any]:
    """The export of ``user`` (JSON values only), then its ``data-exported`` event, committed."""
    exported = {
        "format": FORMAT,
        "exported_at": utc_iso(utcnow()),
        "profile": profile(user),
        "email_history": email_history(user),
        "sessions": sessions(user),
        "api_keys": api_keys(user),
        "tokens": log_in_tokens(user),
        "security_events": security_events(user),
        "second_factors": second_factors(user),
    }
    security_log.record_now(security_log.DATA_EXPORTED, user.id)
    return exported


def profile(user: User) -> dict[str, Any]:
    """The account itself. Left out: the password hash (a secret), the username's
    comparison key (the username, normalised) and the passkey handle (a random id every passkey
    of the account carries, which could tie a stolen authenticator to this account)."""
    return {
        "id": user.id,
        "username": user.username,
        "display_name": user.display_name,
        "email": user.email,
        "email_verified_at": _time(user.email_verified_at),
        "pending_email": user.pending_email,
        "roles": {"is_admin": bool(user.is_admin), "is_support": bool(user.is_support)},
        "status": status(user),
        "created_at": utc_iso(user.created_at),
        "updated_at": utc_iso(user.updated_at),
    }


def status(user: User) -> dict[str, Any]:
    """``account_status.status_of``, with its time: ``deactivated`` since when, or
    ``pending-deletion`` until when."""
    state: dict[str, Any] = {"state": account_status.status_of(user)}
    if user.deletion_due_at is not None:
        state["due_at"] = utc_iso(user.deletion_due_at)
    elif user.deactivated_at is not None:
        state["since"] = utc_iso(user.deactivated_at)
    return state


def addresses(user: User) -> set[str]:
    """The addresses the account has or had, as far as userhub knows: its address, the one
    waiting for its link, and those its mailed links were about. An address another account
    holds now is not counted: its mail since is that account's."""
    known = {user.email, user.pending_email}
    known |= set(db.session.scalars(select(EmailLink.email).where(EmailLink.user_id == user.id)))
    mine = {address for address in known if address}
    others = db.session.scalars(
        select(User.email).where(User.id != user.id, User.email.in_(mine))
    ).all()
    return mine - set(others)


def email_history(user: User) -> dict[str, Any]:
    """The mailed links of the account, the mails to its addresses, and its changes of address.

    Left out: a link's token and its SHA-256 (a live link would work for whoever read the
    export), a reset link's password stamp (a digest of the password hash) and what an
    end-session link ends; a mail's body (it may hold a live link; a sent mail's is erased
    anyway), its sender's lease and its last delivery error (the mail server's words). Mail
    queued before revision 0007 names no account, so it is found by address (``addresses``)."""
    links = db.session.scalars(
        select(EmailLink).where(EmailLink.user_id == user.id).order_by(EmailLink.id)
    )
    mails = db.session.scalars(
        select(OutboxMessage)
        .where(outbox.mail_about(user.id, addresses(user)))
        .order_by(OutboxMessage.id)
    )
    changes = db.session.scalars(
        select(SecurityEvent)
        .where(SecurityEvent.user_id == user.id, SecurityEvent.type == security_log.EMAIL_CHANGED)
        .order_by(SecurityEvent.created_at, SecurityEvent.id)
    )
    return {
        "links": [
            {
                "id": link.id,
                "purpose": link.purpose,
                "email": link.email,
                "created_at": utc_iso(link.created_at),
                "expires_at": utc_iso(link.expires_at),
                "used_at": _time(link.used_at),
            }
            for link in links
        ],
        "mails": [
            {
                "id": mail.id,
                "kind": mail.kind,
                "recipient": mail.recipient,
                "status": mail.status,
                "created_at": utc_iso(mail.created_at),
                "sent_at": _time(mail.sent_at),
            }
            for mail in mails
        ],
        "address_changes": [event_record(event) for event in changes],
    }


def sessions(user: User) -> list[dict[str, Any]]:
    """Every browser session userhub holds for the account (live ones, and ended ones not yet
    pruned). Left out: the session's key and its SHA-256 (whoever has the key is logged in)."""
    rows = db.session.scalars(
        select(BrowserSession).where(BrowserSession.user_id == user.id).order_by(BrowserSession.id)
    )
    return [
        {
            "id": row.id,
            "created_at": utc_iso(row.created_at),
            "last_seen_at": utc_iso(row.last_seen_at),
            "expires_at": utc_iso(row.expires_at),
            "ip": row.ip,
            "user_agent": row.user_agent,
            "auth_method": row.auth_method,
            "authenticated_at": _time(row.authenticated_at),
        }
        for row in rows
    ]


def _credentials(user: User, *, keys: bool) -> list[ApiToken]:
    kind = ApiToken.name.is_not(None) if keys else ApiToken.name.is_(None)
    rows = db.session.scalars(
        select(ApiToken).where(ApiToken.user_id == user.id, kind).order_by(ApiToken.id)
    )
    return list(rows)


def api_keys(user: User) -> list[dict[str, Any]]:
    """The account's named API keys (expired ones until they are pruned). Left out: the key
    and its SHA-256 (the key works for whoever holds it); its first characters (``prefix``),
    which name it on the pages, are in."""
    return [
        {
            "id": key.id,
            "name": key.name,
            "scopes": sorted(key.scope_set or ()),
            "prefix": key.prefix,
            "created_at": utc_iso(key.created_at),
            "expires_at": utc_iso(key.expires_at),
            "last_used_at": _time(key.last_used_at),
        }
        for key in _credentials(user, keys=True)
    ]


def log_in_tokens(user: User) -> list[dict[str, Any]]:
    """The account's log-in tokens (``POST /api/v1/tokens``). Left out: the token and its
    SHA-256, for the same reason as a key's."""
    return [
        {
            "id": token.id,
            "created_at": utc_iso(token.created_at),
            "expires_at": utc_iso(token.expires_at),
            "last_used_at": _time(token.last_used_at),
        }
        for token in _credentials(user, keys=False)
    ]


def event_record(event: SecurityEvent) -> dict[str, Any]:
    """One event of the security log, its details as an object (they never hold a secret)."""
    return {
        "id": event.id,
        "type": event.type,
        "created_at": utc_iso(event.created_at),
        "ip": event.ip,
        "user_agent": event.user_agent,
        "session_id": event.session_id,
        "api_key_id": event.api_key_id,
        "actor_id": event.actor_id,
        "details": security_log.details_of(event),
    }


def security_events(user: User) -> list[dict[str, Any]]:
    """Every event of the account's security log, the oldest first (events older than the
    retention are already pruned). Left out: events of other accounts, even those this account
    caused as an administrator: they are about someone else."""
    rows = db.session.scalars(
        select(SecurityEvent)
        .where(SecurityEvent.user_id == user.id)
        .order_by(SecurityEvent.created_at, SecurityEvent.id)
    )
    return [event_record(event) for event in rows]


def second_factors(user: User) -> dict[str, Any]:
    """The authenticator app, the recovery codes and the passkeys.

    Left out: the app's secret, sealed or not (it makes every code) and the last step used; the
    recovery codes and their digests (each one logs in), only how many were made, how many are
    left and when; a passkey's credential id, public key and signature counter, and the
    account's passkey handle (they identify the authenticator and tie it to the account)."""
    factor = db.session.get(TotpFactor, user.id)
    made, left, made_at = db.session.execute(
        select(
            func.count(RecoveryCode.id),
            func.count(case((RecoveryCode.used_at.is_(None), 1))),
            func.min(RecoveryCode.created_at),
        ).where(RecoveryCode.user_id == user.id)
    ).one()
    passkeys = db.session.scalars(
        select(Passkey).where(Passkey.user_id == user.id).order_by(Passkey.id)
    )
    return {
        "authenticator_app": None
        if factor is None
        else {"created_at": utc_iso(factor.created_at), "confirmed_at": _time(factor.confirmed_at)},
        "recovery_codes": None
        if not made
        else {"made": made, "left": left, "created_at": _time(made_at)},
        "passkeys": [
            {
                "id": passkey.id,
                "name": passkey.name,
                "created_at": utc_iso(passkey.created_at),
                "last_used_at": _time(passkey.last_used_at),
                "backed_up": bool(passkey.backed_up),
                "transports": (passkey.transports or "").split(),
            }
            for passkey in passkeys
        ],
    }


def as_json(exported: dict[str, Any]) -> str:
    """The document as the ZIP holds it: indented, non-ASCII characters as they are."""
    return json.dumps(exported, ensure_ascii=False, indent=2) + "\n"


def zip_of(exported: dict[str, Any]) -> bytes:
    """A ZIP (deflated) of ``userhub-export.json`` (UTF-8) and a ``README.txt`` saying what it
    is and where its format is described."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(JSON_NAME, as_json(exported).encode())
        archive.writestr(README_NAME, README.encode())
    return buffer.getvalue()


def filename_stem(user: User, exported: dict[str, Any]) -> str:
    """``userhub-export-<username>-<date>``, the date the export's (UTC)."""
    return f"userhub-export-{user.username}-{exported['exported_at'][:10]}"
