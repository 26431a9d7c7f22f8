"""HTML forms (Flask-WTF: each carries a CSRF token).

Field names are the tutorial's (``username``, ``password``), so its form posts unchanged. The
account rules themselves live in the user service; forms only check that fields are there.
"""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta
from typing import Any

from flask import request
from flask_babel import LazyString
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import (
    EmailField,
    HiddenField,
    PasswordField,
    SelectField,
    SelectMultipleField,
    StringField,
)
from wtforms.fields.choices import SelectChoice
from wtforms.validators import AnyOf, DataRequired, EqualTo, Length, Optional, ValidationError
from wtforms.widgets import CheckboxInput, DateInput, ListWidget

from ..models import (
    API_KEY_NAME_MAX_LENGTH,
    EMAIL_MAX_LENGTH,
    PASSKEY_NAME_MAX_LENGTH,
    USERNAME_MAX_LENGTH,
)
from ..services import api_keys, roles, users
from ..services.account_rules import PASSWORD_MAX_LENGTH, PASSWORD_MIN_LENGTH


class TextForm(FlaskForm):  # type: ignore[misc]
    """A form of text fields read from the posted form only.

    Flask-WTF would also feed uploaded files and JSON bodies into the fields; a file where a
    username belongs is not a username, so those are ignored (the field is then missing).
    """

    class Meta:
        def wrap_formdata(self, form: Any, formdata: Any) -> Any:
            if request.method in {"POST", "PUT", "PATCH", "DELETE"}:
                return request.form
            return None


class LoginForm(TextForm):
    username = StringField(_l("Username"), validators=[DataRequired(_l("Enter your username."))])
    password = PasswordField(_l("Password"), validators=[DataRequired(_l("Enter your password."))])
    next = HiddenField()


def new_password_field(label: LazyString, missing: LazyString, hint: LazyString) -> PasswordField:
    """A new password: required, at most PASSWORD_MAX_LENGTH here (the service checks the rest
    and words its own errors)."""
    return PasswordField(
        label,
        validators=[
            DataRequired(missing),
            Length(max=PASSWORD_MAX_LENGTH, message=_l("At most %(max)d characters.")),
        ],
        description=hint,
    )


def email_field(
    label: LazyString, hint: LazyString, missing: LazyString | None = None
) -> EmailField:
    """An e-mail address: required when ``missing`` says what to write, else optional. Only
    its length is checked here; the user service checks the address and words its errors."""
    presence = DataRequired(missing) if missing is not None else Optional()
    return EmailField(
        label,
        validators=[
            presence,
            Length(max=EMAIL_MAX_LENGTH, message=_l("At most %(max)d characters.")),
        ],
        description=hint,
    )


def confirmation_field(label: LazyString, missing: LazyString) -> PasswordField:
    """The new password typed again; it must equal the ``password`` field."""
    return PasswordField(
        label,
        validators=[DataRequired(missing), EqualTo("password", _l("The two passwords differ."))],
    )


class RegisterForm(TextForm):
    username = StringField(
        _l("Username"),
        validators=[
            DataRequired(_l("Choose a username.")),
            Length(max=USERNAME_MAX_LENGTH, message=_l("At most %(max)d characters.")),
        ],
        description=_l(
            "1–%(max)d characters, any script (张三 works); no ':'.", max=USERNAME_MAX_LENGTH
        ),
    )
    password = new_password_field(
        _l("Password"),
        _l("Choose a password."),
        _l("%(min)d–%(max)d characters.", min=PASSWORD_MIN_LENGTH, max=PASSWORD_MAX_LENGTH),
    )
    confirm = confirmation_field(_l("Confirm password"), _l("Type the password again."))
    email = email_field(
        _l("E-mail address (optional)"),
        _l("We mail it a link to confirm it. With an address, a forgotten password can be reset."),
    )


class ChangePasswordForm(TextForm):
    current_password = PasswordField(
        _l("Current password"), validators=[DataRequired(_l("Enter your current password."))]
    )
    password = new_password_field(
        _l("New password"),
        _l("Choose a new password."),
        _l(
            "%(min)d–%(max)d characters. Every other session and API token will be logged out.",
            min=PASSWORD_MIN_LENGTH,
            max=PASSWORD_MAX_LENGTH,
        ),
    )
    confirm = confirmation_field(_l("Confirm new password"), _l("Type the new password again."))


class ButtonForm(TextForm):
    """A button only, with its CSRF token: what a mailed link's page posts (a link scanner's GET
    must not use the link up)."""


class ForgotPasswordForm(TextForm):
    account = StringField(
        _l("E-mail address or username"),
        validators=[
            DataRequired(_l("Enter your e-mail address or username.")),
            Length(max=EMAIL_MAX_LENGTH, message=_l("At most %(max)d characters.")),
        ],
    )


class ResetPasswordForm(TextForm):
    password = new_password_field(
        _l("New password"),
        _l("Choose a new password."),
        _l(
            "%(min)d–%(max)d characters. Every session and API token will be logged out.",
            min=PASSWORD_MIN_LENGTH,
            max=PASSWORD_MAX_LENGTH,
        ),
    )
    confirm = confirmation_field(_l("Confirm new password"), _l("Type the new password again."))


class ChangeEmailForm(TextForm):
    email = email_field(
        _l("New e-mail address"),
        _l("We mail a link to it: follow it to confirm the address."),
        missing=_l("Enter the new e-mail address."),
    )


class ResendVerificationForm(TextForm):
    """The log-in page's "Send a new link" button, for an account whose address is not verified:
    it names the account, as nobody is logged in."""

    username = HiddenField()


class LogoutForm(TextForm):
    """A button only: logging out is a POST, so another site cannot log a user out."""


class ApiKeyForm(TextForm):
    """A new personal API key. Every scope is a choice here, so the service's own words refuse
    ``admin`` for a user who is no administrator (the page shows that box only to them)."""

    name = StringField(
        _l("Name"),
        validators=[
            DataRequired(_l("Give the key a name, e.g. the script or service that will use it.")),
            Length(max=API_KEY_NAME_MAX_LENGTH, message=_l("At most %(max)d characters.")),
        ],
        description=_l("What will use the key, so you can tell your keys apart."),
    )
    scopes = SelectMultipleField(
        _l("Scopes"),
        choices=[
            SelectChoice(api_keys.READ, _l("read: GET calls only")),
            SelectChoice(api_keys.WRITE, _l("write: every call of your account, reading too")),
            SelectChoice(api_keys.ADMIN, _l("admin: the administrators' operations too")),
        ],
        default=[api_keys.READ],
        validate_choice=False,  # the service names what is wrong
        widget=ListWidget(prefix_label=False),
        option_widget=CheckboxInput(),  # a box each, in the page's own fieldset
    )
    lifetime = SelectField(
        _l("Expires after"),
        choices=[
            SelectChoice("30", _l("30 days")),
            SelectChoice("90", _l("90 days")),
            SelectChoice("365", _l("365 days")),
        ],
        coerce=int,
        default=90,
    )


CODE_MAX_LENGTH = 40  # a recovery code with spaces is 11; anything longer is not a code


class SecondStepForm(TextForm):
    """The second step of a log-in: a code from the authenticator app, or a recovery code."""

    code = StringField(
        _l("Code"),
        validators=[
            DataRequired(_l("Enter the code from your authenticator app, or a recovery code.")),
            Length(max=CODE_MAX_LENGTH, message=_l("At most %(max)d characters.")),
        ],
        description=_l("6 digits from the app, or one of your recovery codes (xxxxx-xxxxx)."),
    )


class ReauthenticateForm(TextForm):
    """Prove it is still you: the password, or a code (re-authentication)."""

    password = PasswordField(_l("Password"), validators=[Optional()])
    code = StringField(
        _l("Or a code from your authenticator app"),
        validators=[
            Optional(),
            Length(max=CODE_MAX_LENGTH, message=_l("At most %(max)d characters.")),
        ],
    )
    next = HiddenField()


class PasskeyNameForm(TextForm):
    """A passkey's new name (the service checks it again: no control characters)."""

    name = StringField(
        _l("Name"),
        validators=[
            DataRequired(_l("Give the passkey a name, e.g. the device it is on.")),
            Length(max=PASSKEY_NAME_MAX_LENGTH, message=_l("At most %(max)d characters.")),
        ],
    )


DAY = re.compile(r"\d{4}-\d{2}-\d{2}")
FIRST_DAY = date(1000, 1, 1)  # the first day MySQL's DATETIME holds


def parse_day(text: str) -> date | None:
    """A day as an HTML date input sends it (YYYY-MM-DD), or None."""
    if not DAY.fullmatch(text):
        return None
    try:
        day = date.fromisoformat(text)
    except ValueError:
        return None
    return day if day >= FIRST_DAY else None


def a_day(form: FlaskForm, field: StringField) -> None:
    if field.data and parse_day(field.data) is None:
        raise ValidationError(_l("Give a date as year-month-day, e.g. 2025-01-31."))


def start_of(text: str | None) -> datetime | None:
    """Midnight (UTC) at the start of the day ``text`` names."""
    day = parse_day(text or "")
    return None if day is None else datetime.combine(day, time())


def end_of(text: str | None) -> datetime | None:
    """Midnight (UTC) after the day ``text`` names: that whole day is before it."""
    day = parse_day(text or "")
    return None if day is None or day == date.max else datetime.combine(day, time()) + timedelta(1)


def choice_of(values: tuple[str, ...], message: LazyString) -> AnyOf:
    """A select's value: empty (any), or one of ``values``; else ``message``."""
    return AnyOf(["", *values], message=message)


class UserSearchForm(FlaskForm):  # type: ignore[misc]
    """The admin list's filters: a GET form (it changes nothing, so it has no CSRF token), read
    from the query string. Every field may be empty: any."""

    class Meta:
        csrf = False

    q = StringField(
        _l("Username or e-mail address"),
        validators=[
            Optional(),
            Length(max=EMAIL_MAX_LENGTH, message=_l("At most %(max)d characters.")),
        ],
        description=_l("Part of it is enough; capitals do not matter."),
    )
    role = SelectField(
        _l("Role"),
        choices=[
            SelectChoice("", _l("Any")),
            SelectChoice(roles.ADMIN, _l("Administrator")),
            SelectChoice(roles.SUPPORT, _l("Support")),
            SelectChoice(roles.NO_ROLE, _l("No role")),
        ],
        default="",
        validate_choice=False,
        validators=[choice_of(users.ROLES, _l("Choose a role from the list."))],
    )
    status = SelectField(
        _l("Account status"),
        choices=[
            SelectChoice("", _l("Any")),
            SelectChoice("active", _l("Active")),
            SelectChoice("deactivated", _l("Deactivated")),
            SelectChoice("pending-deletion", _l("Deletion pending")),
        ],
        default="",
        validate_choice=False,
        validators=[choice_of(users.STATUSES, _l("Choose a status from the list."))],
    )
    verified = SelectField(
        _l("E-mail address confirmed"),
        choices=[
            SelectChoice("", _l("Any")),
            SelectChoice("yes", _l("Yes")),
            SelectChoice("no", _l("No (or no address)")),
        ],
        default="",
        validate_choice=False,
        validators=[choice_of(("yes", "no"), _l("Choose yes, no or any."))],
    )
    created_from = StringField(
        _l("Created on or after"), validators=[Optional(), a_day], widget=DateInput()
    )
    created_to = StringField(
        _l("Created on or before"), validators=[Optional(), a_day], widget=DateInput()
    )

    def validate_created_to(self, field: StringField) -> None:
        after, before = start_of(self.created_from.data), start_of(field.data)
        if after is not None and before is not None and before < after:
            raise ValidationError(_l("This day is before the first one."))

    def where(self) -> users.UserFilter:
        """The accounts the (valid) filters choose."""
        verified = {"yes": True, "no": False}.get(self.verified.data or "")
        return users.UserFilter(
            search=(self.q.data or "").strip() or None,
            role=self.role.data or None,
            status=self.status.data or None,
            verified=verified,
            created_from=start_of(self.created_from.data),
            created_to=end_of(self.created_to.data),
        )

    def chosen(self) -> dict[str, str]:
        """The filters given, for the links to other pages of the results."""
        return {field.name: field.data for field in self if field.data}
