"""The errors the services raise: what went wrong, in words for the user, and a machine code.

They know no HTTP. ``web/errors.py`` is the one place that turns each into a status and a
problem document (or an error page); ``code`` becomes the problem's ``type``
(``/problems/<code>``), so a client can tell one refusal from another without reading words.
A view catches one of these only to show it inside its own form (a page's field messages).
"""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar

from flask_babel import gettext as _

from ..models import utc_minute


class ServiceError(Exception):
    """A request the services refuse; nothing was written. ``errors`` maps field → messages."""

    code: ClassVar[str] = "invalid-fields"

    def __init__(self, message: str, errors: dict[str, list[str]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.errors = errors or {}


class UserError(ServiceError):
    """A request about an account that cannot be carried out."""


class InvalidUserInput(UserError):
    """Some fields break the rules."""

    code = "invalid-fields"


class Conflict(UserError):
    """The change clashes with other data, or would lock someone out."""

    code = "conflict"


class UsernameTaken(Conflict):
    """Another account already has this username (compared case-insensitively)."""

    code = "username-taken"

    def __init__(self) -> None:
        message = _("Username already exists.")
        super().__init__(message, {"username": [message]})


class EmailTaken(Conflict):
    """Another account already uses this e-mail address."""

    code = "email-taken"

    def __init__(self) -> None:
        message = _("This e-mail address is already used by another account.")
        super().__init__(message, {"email": [message]})


class OwnAdminRights(Conflict):
    """An administrator tried to take away their own admin rights (nobody might be left)."""

    code = "own-admin-rights"

    def __init__(self) -> None:
        super().__init__(
            _("You cannot remove your own admin rights; ask another administrator."),
            {"is_admin": [_("You cannot remove your own admin rights.")]},
        )


class OwnAccount(Conflict):
    """An administrator tried to delete their own account through the admin route."""

    code = "own-account"

    def __init__(self) -> None:
        super().__init__(_("You cannot delete your own account; ask another administrator."))


class OwnDeactivation(Conflict):
    """An administrator tried to deactivate their own account (they would be locked out)."""

    code = "own-deactivation"

    def __init__(self) -> None:
        super().__init__(
            _("You cannot deactivate your own account; ask another administrator."),
            {"is_active": [_("You cannot deactivate your own account.")]},
        )


class ReadOnlyRole(ServiceError):
    """A support user (read-only) tried to change something an administrator may."""

    code = "forbidden"

    def __init__(self) -> None:
        super().__init__(_("Your role can see users and their activity but change nothing."))


class NoSuchUser(UserError):
    """The account was deleted (by an administrator, on any node) while this change ran."""

    code = "account-gone"

    def __init__(self) -> None:
        super().__init__(_("This account no longer exists."))


class InsufficientScope(ServiceError):
    """An API key asked for something its scopes do not cover (a key stronger than itself)."""

    code = "insufficient-scope"


class TooManyFailures(ServiceError):
    """This account had too many failed log-ins lately; it may try again in ``retry_after``
    seconds. The password was not checked."""

    code = "too-many-failed-log-ins"

    def __init__(self, retry_after: int) -> None:
        super().__init__(
            _(
                "Too many failed log-ins for this account. Try again in %(seconds)d seconds, "
                "or reset your password with an administrator's help.",
                seconds=retry_after,
            )
        )
        self.retry_after = retry_after


class IdempotencyError(ServiceError):
    """An ``Idempotency-Key`` that cannot be honoured."""


class MalformedKey(IdempotencyError):
    code = "idempotency-key-malformed"


class KeyReused(IdempotencyError):
    """The key was used before with another request."""

    code = "idempotency-key-reused"


class UnreadableRecord(IdempotencyError):
    """The record's answer does not decrypt, or its parts do not parse."""

    code = "idempotency-record-unreadable"


class LinkError(ServiceError):
    """A mailed link that cannot be used; nothing was changed."""

    code = "invalid-link"


class InvalidLink(LinkError):
    """Not a link we sent, already used, or replaced by a newer one."""

    code = "invalid-link"

    def __init__(self) -> None:
        super().__init__(
            _(
                "This link is not valid: it was used already, a newer one was sent, or it was "
                "copied incompletely. Ask for a new one."
            )
        )


class ExpiredLink(LinkError):
    """A link we sent, past its lifetime."""

    code = "expired-link"

    def __init__(self) -> None:
        super().__init__(_("This link has expired. Ask for a new one."))


class EmailNotVerified(ServiceError):
    """Log-in refused: ``USERHUB_REQUIRE_VERIFIED_EMAIL`` is on and the address is unverified."""

    code = "email-not-verified"

    def __init__(self) -> None:
        super().__init__(
            _(
                "Confirm your e-mail address first: follow the link we mailed you, or ask for "
                "a new one."
            )
        )


class AccountInactive(ServiceError):
    """Log-in refused after the right password (or passkey): the account may not log in now.
    Said only to whoever proved they hold it, so it tells a stranger nothing."""

    code = "forbidden"


class AccountDeactivated(AccountInactive):
    """An administrator deactivated the account: its data is kept, and it cannot log in."""

    code = "account-deactivated"

    def __init__(self) -> None:
        super().__init__(
            _(
                "This account has been deactivated by an administrator and cannot log in. "
                "Contact the administrators of this site to have it reactivated."
            )
        )


class AccountPendingDeletion(AccountInactive):
    """The owner asked for the account's deletion: it cannot log in until they cancel, and
    is deleted for good at ``due``. ``user_id``: the account, for the log-in page's "Keep my
    account" button (never in the answer)."""

    code = "account-pending-deletion"

    def __init__(self, due: datetime, user_id: int | None = None) -> None:
        self.due, self.user_id = due, user_id
        super().__init__(
            _(
                "This account is to be deleted for good on %(due)s, as its owner asked. To "
                "keep it, cancel the deletion: confirm on the log-in page, follow the link we "
                'mailed you, or send the log-in again with "cancel_deletion": true '
                "(POST /api/v1/tokens).",
                due=utc_minute(due),
            )
        )


class NoAddress(UserError):
    """The account has no e-mail address to send a link to."""

    code = "no-email-address"

    def __init__(self) -> None:
        super().__init__(
            _(
                "This account has no e-mail address. Add one first: on the account page, or "
                "with PATCH /api/v1/users/me."
            )
        )


class SecondFactorError(ServiceError):
    """A change of an account's second factors that cannot be made now; nothing was written."""


class AlreadyEnrolled(SecondFactorError, Conflict):
    """An authenticator app is already set up: it must be removed before another is."""

    code = "totp-already-enabled"

    def __init__(self) -> None:
        super().__init__(
            _(
                "An authenticator app is already set up for this account. Remove it first "
                "(DELETE /api/v1/users/me/totp, or the two-factor page), then set up the new one."
            )
        )


class NoEnrolment(SecondFactorError, Conflict):
    """A code was sent to confirm an authenticator app that nobody began to set up."""

    code = "no-totp-enrolment"

    def __init__(self) -> None:
        super().__init__(
            _(
                "No authenticator app is being set up for this account. Start again "
                "(POST /api/v1/users/me/totp, or the two-factor page) and scan the new QR code."
            )
        )


class TotpNotEnabled(SecondFactorError, Conflict):
    """What needs an authenticator app (recovery codes) was asked of an account without one."""

    code = "totp-not-enabled"

    def __init__(self) -> None:
        super().__init__(
            _(
                "This account has no authenticator app, so it has no recovery codes. Set up an "
                "authenticator app first: its recovery codes come with it."
            )
        )


class WrongCode(SecondFactorError, InvalidUserInput):
    """The code typed to confirm an authenticator app is not the one it shows now."""

    code = "wrong-code"

    def __init__(self) -> None:
        message = _(
            "This code is not right. Type the 6 digits your authenticator app shows now; if it "
            "still fails, check that your phone's clock is set automatically."
        )
        super().__init__(message, {"code": [message]})


class PasskeyRefused(ServiceError):
    """A passkey's answer to a log-in or re-authentication could not be verified: an unknown,
    used or expired challenge, a passkey not registered (to this account), a wrong signature,
    origin or user handle, a malformed answer. One error for every cause, so a caller learns
    nothing about which accounts or passkeys exist."""

    code = "passkey-refused"

    def __init__(self) -> None:
        super().__init__(_("This passkey could not be verified; try again or use your password."))


class PasskeyNotRegistered(ServiceError):
    """A new passkey's answer could not be verified: an unknown, used or expired challenge, or
    an answer that is malformed or made for another site."""

    code = "passkey-not-registered"

    def __init__(self) -> None:
        super().__init__(
            _(
                "The passkey could not be added: its answer was not valid, or took too long. "
                "Try again."
            )
        )


class PasskeyTaken(Conflict):
    """The authenticator's credential is registered already (to this or another account)."""

    code = "passkey-taken"

    def __init__(self) -> None:
        super().__init__(_("This passkey is registered already."))
