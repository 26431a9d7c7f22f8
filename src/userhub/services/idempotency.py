"""Idempotency keys: a POST retried with the same key gets the first answer, not a second act.

A client that sent ``POST /api/v1/users`` and lost the answer (a load balancer's 502, a
timeout, a dropped connection) cannot tell whether the account was made. With an
``Idempotency-Key`` header it sends the same request again with the same key: if the first was
committed, it gets the first answer again (marked ``Idempotent-Replayed: true``); if not, the
request runs now. The same key with a different request is refused (422): a key names one
request. Keys are kept ``TTL`` (24 h) from their first use.

Only a success is kept. It is written in the same transaction as the account or token it
reports (the services' ``before_commit``), so a crash leaves both or neither, and a replay
never reports an account that was not committed. A failed request wrote nothing, so its retry
simply runs again. Two requests with one key at once: the second one's transaction clashes
with the first (a UNIQUE index on the record, or on the username it also inserts), and it
answers with the first one's record.

What is stored, and why none of it in the clear: the request holds a password, and the answer
to ``POST /api/v1/tokens`` holds a token that the database otherwise keeps only as a SHA-256.
So ``lookup`` is a SHA-256 of the operation and the key; ``fingerprint`` is an HMAC of the whole
request under the app's secret key (no offline password guessing from a copy of the table);
and the answer is encrypted (AES-256-GCM) with a key derived from the request and the secret,
so only a retry of the very request can read it; the status and headers are authenticated
with it. Changing ``USERHUB_SECRET_KEY`` makes every stored key unusable (its retries answer
422): rotate it when no retry is pending.

A key is one client's name for one request, so it must be unique: a UUID. Keys are not kept per
caller (registering has no caller yet), so two clients that pick the same key within 24 hours
get 422 for the second request. A replay repeats the first answer as it was, even if the token
it holds was revoked since or the account deleted: it reports what that request did.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import re
from dataclasses import dataclass
from datetime import timedelta

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from flask_babel import lazy_gettext as _l
from sqlalchemy import delete, select

from .. import transactions
from ..extensions import db
from ..models import IdempotencyRecord, utcnow
from .errors import KeyReused, MalformedKey, UnreadableRecord

log = logging.getLogger("userhub")

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
KEY_MAX_LENGTH = 255
# Visible ASCII, spaces inside only: HTTP drops a header value's leading and trailing spaces.
KEY = re.compile(rf"[\x21-\x7e](?:[\x20-\x7e]{{0,{KEY_MAX_LENGTH - 2}}}[\x21-\x7e])?")
TTL = timedelta(hours=24)
NONCE_BYTES = 12
# The operations that accept the header (the OpenAPI document describes it on each).
OPERATIONS = ("POST /api/v1/users", "POST /api/v1/tokens")

BAD_KEY = _l(
    "Idempotency-Key must be 1–%(max)d characters of printable ASCII, such as a UUID.",
    max=KEY_MAX_LENGTH,
)
KEY_REUSED = _l(
    "This Idempotency-Key was used in the last 24 hours for a different request. Send a new "
    "key with a new request; a retry must repeat the first request exactly."
)
UNREADABLE = _l(
    "The answer kept for this Idempotency-Key cannot be read back (the server's secret key "
    "changed, or the record was damaged). Send the request again with a new key."
)


@dataclass(frozen=True)
class StoredResponse:
    status: int
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True)
class Attempt:
    """One request with a key: how it is found again, recognised, and its answer sealed."""

    lookup: str
    fingerprint: str
    sealing_key: bytes

    @classmethod
    def of(cls, operation: str, key: str, request: bytes, secret: str | bytes) -> Attempt:
        """``request``: the parts that make two requests the same (see ``canonical_request``).
        Raises MalformedKey for a key that breaks the rules."""
        if not KEY.fullmatch(key):
            raise MalformedKey(str(BAD_KEY))
        named = f"{operation}\0{key}".encode()
        secret_bytes = secret if isinstance(secret, bytes) else secret.encode()
        return cls(
            lookup=hashlib.sha256(named).hexdigest(),
            fingerprint=_mac(secret_bytes, b"fingerprint", named, request).hexdigest(),
            sealing_key=_mac(secret_bytes, b"sealing key", named, request).digest(),
        )


def _mac(secret: bytes, purpose: bytes, *parts: bytes) -> hmac.HMAC:
    message = b"\0".join((b"userhub idempotency", purpose, *parts))
    return hmac.new(secret, message, hashlib.sha256)


def canonical_request(authorization: str | None, body: bytes) -> bytes:
    """What must match for a retry: the body, JSON compared as data (key order and spacing
    aside), anything else byte for byte; and the credentials header where it carries the
    request's meaning (HTTP Basic log-ins), else None."""
    try:
        data = json.loads(body) if body else None
        shown = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        content = shown.encode("utf-8", "surrogatepass")
    except ValueError:
        content = body
    return (authorization or "").encode("latin-1", "replace") + b"\0" + content


def earlier(attempt: Attempt) -> StoredResponse | None:
    """The answer an earlier request with this key got, within ``TTL``; KeyReused if that
    request was a different one."""
    record = db.session.scalar(
        select(IdempotencyRecord).where(
            IdempotencyRecord.lookup == attempt.lookup,
            IdempotencyRecord.created_at > utcnow() - TTL,
        )
    )
    if record is None:
        return None
    if not hmac.compare_digest(record.fingerprint, attempt.fingerprint):
        raise KeyReused(str(KEY_REUSED))
    nonce, sealed = record.body[:NONCE_BYTES], record.body[NONCE_BYTES:]
    context = _associated_data(attempt, record.status_code, record.headers)
    try:
        body = AESGCM(attempt.sealing_key).decrypt(nonce, sealed, context)
        return StoredResponse(record.status_code, json.loads(record.headers), body)
    except (InvalidTag, ValueError) as exc:
        log.error("an idempotency record cannot be read back (secret key changed, or damaged)")
        raise UnreadableRecord(str(UNREADABLE)) from exc


def _associated_data(attempt: Attempt, status: int, headers: str) -> bytes:
    """What the seal authenticates besides the body: a changed status or header fails it."""
    return b"\0".join((attempt.lookup.encode(), str(status).encode(), headers.encode()))


def record(attempt: Attempt, response: StoredResponse) -> None:
    """Add the answer to the session, in the caller's transaction (which commits it), and
    flush, so a twin request with the same key clashes here rather than at commit."""
    db.session.execute(
        delete(IdempotencyRecord).where(
            IdempotencyRecord.lookup == attempt.lookup,
            IdempotencyRecord.created_at <= utcnow() - TTL,
        )
    )
    headers = json.dumps(response.headers)
    nonce = os.urandom(NONCE_BYTES)
    sealed = AESGCM(attempt.sealing_key).encrypt(
        nonce, response.body, _associated_data(attempt, response.status, headers)
    )
    db.session.add(
        IdempotencyRecord(
            lookup=attempt.lookup,
            fingerprint=attempt.fingerprint,
            status_code=response.status,
            headers=headers,
            body=nonce + sealed,
        )
    )
    db.session.flush()


SWEEP_BATCH = 500


def sweep() -> int:
    """Delete up to ``SWEEP_BATCH`` expired records, committed; how many went."""
    expired = select(IdempotencyRecord.id).where(IdempotencyRecord.created_at <= utcnow() - TTL)
    ids = list(db.session.scalars(expired.order_by(IdempotencyRecord.id).limit(SWEEP_BATCH)))
    if ids:
        transactions.committed(
            lambda: db.session.execute(
                delete(IdempotencyRecord).where(IdempotencyRecord.id.in_(ids))
            )
        )
    return len(ids)
