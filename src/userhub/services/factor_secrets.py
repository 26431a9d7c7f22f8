"""Second factors' secrets at rest: an authenticator app's TOTP secret is sealed with
AES-256-GCM before it is stored, so a copy of the database (a backup, a replica, a dump sent
for support) does not hand out codes for every account.

The key is derived (HKDF-SHA256) from the app's secret key (``USERHUB_SECRET_KEY``), which never
lives in the database. A sealed value is a random 12-byte nonce followed by the ciphertext and
its tag; the account's id is its associated data, so a value copied into another account's row
does not open. Opening also tries ``SECRET_KEY_FALLBACKS``: after a rotation, secrets sealed
under the old key still open (and ``seal`` always uses the new one).
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from flask import current_app

INFO = b"userhub totp secret"
NONCE_BYTES = 12
KEY_BYTES = 32


class Unreadable(Exception):
    """The sealed secret does not open with the secret key or any fallback: the key changed
    with no fallback kept, the value was damaged, or it belongs to another account."""


def derived_keys(info: bytes) -> list[bytes]:
    """A 256-bit key for the purpose ``info`` from each of the app's secret keys (HKDF-SHA256):
    the current one's first, then the fallbacks', so a rotated secret still opens or matches
    what the old one made. Shared with the recovery codes' digests."""
    current: str | bytes = current_app.secret_key  # type: ignore[assignment]
    secret_keys = (current, *(current_app.config.get("SECRET_KEY_FALLBACKS") or ()))
    return [
        HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=None, info=info).derive(
            key if isinstance(key, bytes) else key.encode()
        )
        for key in secret_keys
    ]


def _associated_data(user_id: int) -> bytes:
    return b"user:%d" % user_id


def seal(user_id: int, secret: bytes) -> bytes:
    """``secret`` encrypted for the account ``user_id``: nonce + ciphertext + tag."""
    nonce = os.urandom(NONCE_BYTES)
    sealed = AESGCM(derived_keys(INFO)[0]).encrypt(nonce, secret, _associated_data(user_id))
    return nonce + sealed


def unseal(user_id: int, sealed: bytes) -> bytes:
    """The secret ``seal(user_id, ...)`` sealed; Unreadable if no secret key opens it for
    this account."""
    nonce, body = bytes(sealed[:NONCE_BYTES]), bytes(sealed[NONCE_BYTES:])
    for key in derived_keys(INFO):
        try:
            return AESGCM(key).decrypt(nonce, body, _associated_data(user_id))
        except InvalidTag:
            continue
    raise Unreadable(f"the second factor secret of user {user_id} cannot be opened")
