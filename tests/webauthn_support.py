"""A software WebAuthn authenticator for tests that have no browser: it answers registration
and authentication options the way a real platform authenticator does (``none`` attestation,
an ES256 key, a counter), through the same JSON a browser's ``credential.toJSON()`` sends.

It is not a stand-in for the server's checks: userhub verifies these answers with py_webauthn
exactly as it verifies a browser's. The browser tests use Chromium's virtual authenticator.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import struct
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from webauthn.helpers import base64url_to_bytes, bytes_to_base64url
from webauthn.helpers.encode_cbor import encode_cbor

UP, UV, BE, BS, AT = 0x01, 0x04, 0x08, 0x10, 0x40


def b64(data: bytes) -> str:
    return bytes_to_base64url(data)


@dataclass
class SoftPasskey:
    """One credential of the authenticator: its id, private key, user handle and counter."""

    rp_id: str
    user_handle: bytes
    credential_id: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )
    sign_count: int = 0

    def cose_public_key(self) -> bytes:
        numbers = self.key.public_key().public_numbers()
        return encode_cbor(
            {
                1: 2,
                3: -7,
                -1: 1,
                -2: numbers.x.to_bytes(32, "big"),
                -3: numbers.y.to_bytes(32, "big"),
            }
        )


@dataclass
class SoftAuthenticator:
    """Answers ``navigator.credentials.create`` and ``.get`` for ``origin``."""

    origin: str
    user_verified: bool = True
    passkeys: list[SoftPasskey] = field(default_factory=list)

    def _client_data(self, kind: str, challenge: str, origin: str | None) -> bytes:
        data = {
            "type": kind,
            "challenge": challenge,
            "origin": origin or self.origin,
            "crossOrigin": False,
        }
        return json.dumps(data).encode()

    def _flags(self, *extra: int) -> int:
        flags = UP | (UV if self.user_verified else 0)
        for bit in extra:
            flags |= bit
        return flags

    def create(
        self,
        options: str | dict[str, Any],
        *,
        origin: str | None = None,
        again: SoftPasskey | None = None,
    ) -> dict[str, Any]:
        """A registration answer (RegistrationResponseJSON) to creation options (JSON): a new
        credential, or ``again`` one made before (as a buggy or hostile client might)."""
        opts = json.loads(options) if isinstance(options, str) else options
        handle = base64url_to_bytes(opts["user"]["id"])
        passkey = again or SoftPasskey(rp_id=opts["rp"]["id"], user_handle=handle)
        passkey.sign_count += 1
        attested = (
            bytes(16)  # AAGUID: none
            + struct.pack(">H", len(passkey.credential_id))
            + passkey.credential_id
            + passkey.cose_public_key()
        )
        auth_data = (
            hashlib.sha256(passkey.rp_id.encode()).digest()
            + bytes([self._flags(AT)])
            + struct.pack(">I", passkey.sign_count)
            + attested
        )
        attestation = encode_cbor({"fmt": "none", "attStmt": {}, "authData": auth_data})
        client_data = self._client_data("webauthn.create", opts["challenge"], origin)
        if again is None:
            self.passkeys.append(passkey)
        return {
            "id": b64(passkey.credential_id),
            "rawId": b64(passkey.credential_id),
            "type": "public-key",
            "authenticatorAttachment": "platform",
            "clientExtensionResults": {},
            "response": {
                "clientDataJSON": b64(client_data),
                "attestationObject": b64(attestation),
                "transports": ["internal"],
            },
        }

    def get(
        self,
        options: str | dict[str, Any],
        *,
        passkey: SoftPasskey | None = None,
        origin: str | None = None,
    ) -> dict[str, Any]:
        """An authentication answer (AuthenticationResponseJSON) to request options (JSON), by
        ``passkey`` (default: the newest this authenticator made)."""
        opts = json.loads(options) if isinstance(options, str) else options
        passkey = passkey or self.passkeys[-1]
        passkey.sign_count += 1
        auth_data = (
            hashlib.sha256(opts["rpId"].encode()).digest()
            + bytes([self._flags()])
            + struct.pack(">I", passkey.sign_count)
        )
        client_data = self._client_data("webauthn.get", opts["challenge"], origin)
        signature = passkey.key.sign(
            auth_data + hashlib.sha256(client_data).digest(), ec.ECDSA(hashes.SHA256())
        )
        return {
            "id": b64(passkey.credential_id),
            "rawId": b64(passkey.credential_id),
            "type": "public-key",
            "authenticatorAttachment": "platform",
            "clientExtensionResults": {},
            "response": {
                "clientDataJSON": b64(client_data),
                "authenticatorData": b64(auth_data),
                "signature": b64(signature),
                "userHandle": b64(passkey.user_handle),
            },
        }
