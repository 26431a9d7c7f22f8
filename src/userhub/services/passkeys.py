"""Passkeys (WebAuthn): register one, log in with one (passwordless, or as a second factor
after the password), list, rename and remove them.

The relying party is ``USERHUB_PUBLIC_URL``: its host is the RP id, its origin the only origin
a browser's answer may come from. Browsers accept an RP id that is a domain name, never an IP
address, and only in a secure context: ``https://``, or ``http://localhost``. So passkeys work
at ``https://userhub.example.com`` or ``http://localhost:5000``, not at ``http://127.0.0.1:5000``.

Every ceremony keeps its WebAuthn challenge server-side (``challenges.py``): the browser gets
the options and a random key, and sends the key back with its answer; the challenge is spent
(deleted) by the one answer that succeeds, and dies after a few wrong ones or
``USERHUB_MFA_CHALLENGE_SECONDS``. Passkeys are made discoverable (resident keys) so that a
log-in can start without a username; such a log-in requires user verification (a PIN or a
fingerprint on the authenticator), which makes the passkey two factors in one.

Only the public key is stored, never a secret; a passkey is found by the SHA-256 of its
credential id. The account's WebAuthn user handle (``User.passkey_handle``) is random, so no
personal data reaches an authenticator.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Any
from urllib.parse import urlsplit

from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import (
    base64url_to_bytes,
    bytes_to_base64url,
    parse_authentication_credential_json,
    parse_registration_credential_json,
)
from webauthn.helpers.structs import (
    AuthenticationCredential,
    AuthenticatorSelectionCriteria,
    AuthenticatorTransport,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from .. import transactions
from ..extensions import db
from ..models import PASSKEY_NAME_MAX_LENGTH, AuthChallenge, Passkey, User, utcnow
from . import account_status, challenges, security_log
from .account_rules import is_invisible, raise_if_any
from .errors import PasskeyNotRegistered, PasskeyRefused, PasskeyTaken

RP_NAME = "userhub"
METHOD = "passkey"  # a session's way of logging in: a passkey alone
HANDLE_BYTES = 32
MAX_CREDENTIAL_JSON = 64 * 1024  # an answer is a few hundred bytes; more is not one
TRANSPORTS = frozenset(t.value for t in AuthenticatorTransport)

Credential = str | dict[str, Any]


def relying_party() -> tuple[str, str]:
    """The RP id (``USERHUB_PUBLIC_URL``'s host) and the origin answers must come from."""
    parts = urlsplit(current_app.config["USERHUB_PUBLIC_URL"])
    host = (parts.hostname or "").lower()
    default_port = {"http": 80, "https": 443}.get(parts.scheme)
    port = f":{parts.port}" if parts.port and parts.port != default_port else ""
    return host, f"{parts.scheme}://{host}{port}"


def credential_key(credential_id: bytes) -> str:
    return hashlib.sha256(credential_id).hexdigest()


def count(user: User) -> int:
    """How many passkeys ``user`` has."""
    found = db.session.scalar(select(func.count()).where(Passkey.user_id == user.id))
    return int(found or 0)


def listed(user: User) -> list[Passkey]:
    """The passkeys of ``user``, the newest first."""
    rows = db.session.scalars(
        select(Passkey)
        .where(Passkey.user_id == user.id)
        .order_by(Passkey.created_at.desc(), Passkey.id.desc())
    )
    return list(rows)


def find(user: User, passkey_id: int) -> Passkey | None:
    """One passkey of ``user``; None for another account's, or none."""
    row = db.session.get(Passkey, passkey_id)
    return row if row is not None and row.user_id == user.id else None


def _descriptors(rows: list[Passkey]) -> list[PublicKeyCredentialDescriptor]:
    return [
        PublicKeyCredentialDescriptor(
            id=row.credential_id,
            transports=[AuthenticatorTransport(t) for t in (row.transports or "").split()],
        )
        for row in rows
    ]


def _timeout_ms() -> int:
    return int(current_app.config["USERHUB_MFA_CHALLENGE_SECONDS"]) * 1000


def user_handle(user: User) -> str:
    """The account's WebAuthn user handle, made (committed) the first time it is asked for.
    A conditional write: two tabs registering at once agree on one handle."""
    if user.passkey_handle is None:
        handle = bytes_to_base64url(secrets.token_bytes(HANDLE_BYTES))
        user_id = user.id
        transactions.committed(
            lambda: db.session.execute(
                update(User)
                .where(User.id == user_id, User.passkey_handle.is_(None))
                .values(passkey_handle=handle)
                .execution_options(synchronize_session=False)
            )
        )
        db.session.refresh(user, ["passkey_handle"])
    assert user.passkey_handle is not None
    return user.passkey_handle


def registration_options(user: User) -> tuple[str, str]:
    """Begin registering a passkey: the challenge's key and the options for
    ``navigator.credentials.create`` (PublicKeyCredentialCreationOptionsJSON, as a string)."""
    rp_id, _origin = relying_party()
    options = generate_registration_options(
        rp_id=rp_id,
        rp_name=RP_NAME,
        user_name=user.username,
        user_id=base64url_to_bytes(user_handle(user)),
        user_display_name=user.display_name or user.username,
        timeout=_timeout_ms(),
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.REQUIRED,
            user_verification=UserVerificationRequirement.PREFERRED,
        ),
        exclude_credentials=_descriptors(listed(user)),
    )
    key = challenges.begin(
        challenges.PASSKEY_REGISTRATION,
        user_id=user.id,
        webauthn_challenge=bytes_to_base64url(options.challenge),
    )
    return key, options_to_json(options)


def name_problems(name: str) -> list[str]:
    if len(name) > PASSKEY_NAME_MAX_LENGTH:
        return [_("At most 100 characters.")]
    if any(map(is_invisible, name)):
        return [_("A passkey's name must not contain control or invisible characters.")]
    return []


def _checked_name(name: str | None, *, default: bool) -> str:
    """A name as stored (without surrounding white space); InvalidUserInput if it breaks a
    rule. Empty: today's default name, or (``default`` False) a problem."""
    name = (name or "").strip()
    problems = name_problems(name)
    if not name and not default:
        problems = [_("Give the passkey a name, e.g. the device it is on.")]
    raise_if_any({"name": problems} if problems else {})
    return name or _("Passkey %(day)s", day=utcnow().date().isoformat())


def _small(credential: Any) -> bool:
    """Whether ``credential`` is a JSON answer of a sane size (a string, or a parsed object)."""
    if isinstance(credential, str):
        return len(credential) <= MAX_CREDENTIAL_JSON
    return isinstance(credential, dict)


def register(
    user: User, challenge_key: str, credential_json: Credential, name: str | None = None
) -> Passkey:
    """Finish registering: check the browser's answer against the challenge of
    ``registration_options`` (spent by this answer), store the passkey, committed with its
    ``passkey-added`` event, named ``name`` (None: "Passkey <today>"). InvalidUserInput for a
    bad name (blank, long, with control characters), PasskeyNotRegistered for an
    answer that fails (it counts against the challenge), PasskeyTaken for a credential
    registered already."""
    name = _checked_name(name, default=name is None)
    challenge = challenges.find(challenge_key, challenges.PASSKEY_REGISTRATION)
    if challenge is None or challenge.user_id != user.id or not _small(credential_json):
        raise PasskeyNotRegistered()
    rp_id, origin = relying_party()
    try:
        parsed = parse_registration_credential_json(credential_json)
        verified = verify_registration_response(
            credential=parsed,
            expected_challenge=base64url_to_bytes(challenge.webauthn_challenge or ""),
            expected_rp_id=rp_id,
            expected_origin=origin,
        )
    except Exception:  # noqa: BLE001 (every way an answer can be wrong is the same refusal)
        challenges.failed(challenge)
        raise PasskeyNotRegistered() from None
    transports = [t.value for t in parsed.response.transports or [] if t.value in TRANSPORTS]
    row = Passkey(
        user_id=user.id,
        credential_key=credential_key(verified.credential_id),
        credential_id=verified.credential_id,
        public_key=verified.credential_public_key,
        sign_count=verified.sign_count,
        name=name,
        transports=" ".join(sorted(set(transports)))[:100] or None,
        backed_up=verified.credential_backed_up,
        created_at=utcnow(),
    )

    def insert() -> Passkey:
        taken = db.session.scalar(
            select(Passkey.id).where(Passkey.credential_key == row.credential_key)
        )
        if taken is not None:
            raise PasskeyTaken()
        if not challenges.spend(challenge):
            raise PasskeyNotRegistered()
        db.session.add(row)
        db.session.flush()
        security_log.record(security_log.PASSKEY_ADDED, user.id, passkey_id=row.id, name=name)
        return row

    try:
        return transactions.committed(insert)
    except IntegrityError:  # registered by a request that raced this one
        raise PasskeyTaken() from None


def authentication_options(
    user: User | None = None, *, known_device: bool = False
) -> tuple[str, str]:
    """Begin a log-in (or re-authentication) with a passkey: the challenge's key and the options
    for ``navigator.credentials.get`` (PublicKeyCredentialRequestOptionsJSON, as a string).
    ``user`` None: passwordless, any discoverable passkey of this site may answer (user
    verification required); else only ``user``'s passkeys."""
    rp_id, _origin = relying_party()
    options = generate_authentication_options(
        rp_id=rp_id,
        timeout=_timeout_ms(),
        allow_credentials=_descriptors(listed(user)) if user is not None else [],
        user_verification=(
            UserVerificationRequirement.PREFERRED
            if user is not None
            else UserVerificationRequirement.REQUIRED
        ),
    )
    key = challenges.begin(
        challenges.PASSKEY_ASSERTION,
        user_id=user.id if user is not None else None,
        known_device=known_device,
        webauthn_challenge=bytes_to_base64url(options.challenge),
    )
    return key, options_to_json(options)


def challenge_of(challenge_key: str) -> AuthChallenge | None:
    """The live passkey log-in challenge behind ``challenge_key`` (its ``known_device``...)."""
    return challenges.find(challenge_key, challenges.PASSKEY_ASSERTION)


def _owner(passkey: Passkey, parsed: AuthenticationCredential, user: User | None) -> User | None:
    """The account the answer logs in to, or None if it is not the one it must be: ``user``'s
    own passkey; or, passwordless, the owner whose user handle the authenticator returned."""
    owner = db.session.get(User, passkey.user_id)
    if owner is None:
        return None
    if user is not None:
        return owner if owner.id == user.id else None
    handle = parsed.response.user_handle
    if not handle or owner.passkey_handle is None:
        return None
    return (
        owner if secrets.compare_digest(handle, base64url_to_bytes(owner.passkey_handle)) else None
    )


def _record_refusal(user: User | None, passkey: Passkey | None) -> None:
    """A refused answer, in the log of the account it was meant for, where one is known: the
    account that had to answer (a log-in's second step, a re-authentication), or else the
    owner of the passkey a passwordless log-in named. An answer naming no passkey of this
    server names no account, and is only counted (the log-in limit, the challenge)."""
    if user is not None:
        security_log.record_now(security_log.SECOND_FACTOR_FAILED, user.id, method=METHOD)
    elif passkey is not None:
        security_log.record_now(security_log.LOGIN_FAILED, passkey.user_id, method=METHOD)


def authenticate(
    challenge_key: str, credential_json: Credential, *, user: User | None = None
) -> tuple[User, Passkey]:
    """Check a passkey's answer to the challenge of ``authentication_options``: the account it
    proves and the passkey, whose use is recorded (sign count, last used; committed, the
    challenge spent). ``user``: the account that must answer (a second step, a
    re-authentication); None: passwordless, which requires user verification. Any failure
    is PasskeyRefused (and counts against the challenge), and is in the account's security
    log where the account is known (``_record_refusal``)."""
    challenge = challenges.find(challenge_key, challenges.PASSKEY_ASSERTION)
    if challenge is None or not _small(credential_json):
        raise PasskeyRefused()
    expected_user_id = user.id if user is not None else None
    rp_id, origin = relying_party()
    passkey: Passkey | None = None
    try:
        if challenge.user_id != expected_user_id:
            raise ValueError("the challenge was made for another log-in")
        parsed = parse_authentication_credential_json(credential_json)
        passkey = db.session.scalar(
            select(Passkey).where(Passkey.credential_key == credential_key(parsed.raw_id))
        )
        owner = _owner(passkey, parsed, user) if passkey is not None else None
        if passkey is None or owner is None:
            raise ValueError("no such passkey for this log-in")
        verified = verify_authentication_response(
            credential=parsed,
            expected_challenge=base64url_to_bytes(challenge.webauthn_challenge or ""),
            expected_rp_id=rp_id,
            expected_origin=origin,
            credential_public_key=passkey.public_key,
            credential_current_sign_count=passkey.sign_count,
            require_user_verification=user is None,
        )
    except Exception:  # noqa: BLE001 (every way an answer can be wrong is the same refusal)
        challenges.failed(challenge)
        _record_refusal(user, passkey)
        raise PasskeyRefused() from None

    passkey_id = passkey.id

    def used() -> None:
        if not challenges.spend(challenge):
            raise PasskeyRefused()
        db.session.execute(
            update(Passkey)
            .where(Passkey.id == passkey_id)
            .values(
                sign_count=verified.new_sign_count,
                last_used_at=utcnow(),
                backed_up=verified.credential_backed_up,
            )
            .execution_options(synchronize_session=False)
        )

    transactions.committed(used)
    db.session.refresh(passkey)
    if user is None:  # passwordless: the passkey proved its holder (its challenge is spent),
        account_status.check_can_log_in(owner)  # who may not log in now
    return owner, passkey


def rename(user: User, passkey_id: int, name: str) -> Passkey | None:
    """Give one of ``user``'s passkeys a new name, committed; None if it has no such passkey.
    InvalidUserInput for a blank or long name."""
    name = _checked_name(name, default=False)

    def write() -> Passkey | None:
        row = find(user, passkey_id)
        if row is not None:
            row.name = name
        return row

    return transactions.committed(write)


def remove(user: User, passkey_id: int, *, by: User | None = None) -> bool:
    """Remove one of ``user``'s passkeys, committed with its ``passkey-removed`` event (naming
    the administrator ``by``, if one acted); False if there is none."""

    def delete_it() -> bool:
        row = find(user, passkey_id)
        if row is None:
            return False
        name = row.name
        transactions.delete_where(Passkey, Passkey.id == passkey_id)
        security_log.record(
            security_log.PASSKEY_REMOVED,
            user.id,
            actor_id=by.id if by else None,
            passkey_id=passkey_id,
            name=name,
        )
        return True

    return transactions.committed(delete_it)


def delete_all(user: User) -> None:
    """Remove every passkey, in the caller's transaction (no event)."""
    transactions.delete_where(Passkey, Passkey.user_id == user.id)
