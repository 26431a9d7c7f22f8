"""Property-based tests of every input validator (issue 5, item 6).

The example-based tests (``test_bad_input``, ``test_users`` ...) pin the cases someone thought
of; here Hypothesis generates the inputs nobody thought of (astral characters, combining marks,
compatibility forms, control characters, odd JSON) and checks the rules as a user meets them:

* each validator takes any string without an exception it does not document, and a refusal
  always comes with a message a person can read;
* the rules agree with what the service does: a username the rules accept registers (form and
  API), one they refuse gets a 4xx; a valid account is really there afterwards and is found
  under every spelling that folds to the same key;
* the documented rules (the OpenAPI patterns) say exactly what the code enforces;
* nothing from outside (a ``next`` target, an ``X-Request-ID``, a CORS origin, a CSV cell, a
  JSON body) can make the service leave the site, inject a header, fail with a 5xx or store
  something the rules refuse.

Function-scoped fixtures (``app``, ``client``) live across all examples of one test, so each
example either empties the ``user`` table first or works out what the earlier ones stored.
No example database is written (``database=None``): a failure prints its example instead.
"""

from __future__ import annotations

import base64
import csv
import io
import ipaddress
import json
import logging
import re
import unicodedata
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st
from markupsafe import escape
from pydantic import BaseModel, ValidationError
from werkzeug.sansio.utils import host_is_trusted
from werkzeug.test import EnvironBuilder, run_wsgi_app
from werkzeug.urls import iri_to_uri

from tests.helpers import (
    PASSWORD,
    Account,
    AppBuilder,
    assert_problem,
    csrf_token,
    dispose,
    error_fields,
    make_app,
    user_count,
)
from userhub.api import schemas
from userhub.config import ConfigError, load_config
from userhub.config.values import (
    HOST_NAME,
    one_of,
    parse_allowed_hosts,
    parse_bool,
    parse_origins,
)
from userhub.extensions import db
from userhub.models import (
    DISPLAY_NAME_MAX_LENGTH,
    EMAIL_MAX_LENGTH,
    USERNAME_KEY_MAX_LENGTH,
    USERNAME_MAX_LENGTH,
    User,
)
from userhub.pages.tutorial import COMMIT_FAILED, Credentials, GreetingQuery, NewAccount
from userhub.services import account_rules, bulk_export, import_file, users
from userhub.services import import_rows as row_checks
from userhub.services.errors import InvalidUserInput
from userhub.web import rule_schemas
from userhub.web.hosts import is_allowed
from userhub.web.logs import CLIENT_REQUEST_ID
from userhub.web.redirects import is_safe_redirect

# --- Settings ----------------------------------------------------------------------------------

# Every property: no example database in the checkout, no per-example deadline (a registration
# hashes a password, ~20 ms, and MySQL adds round trips), fixtures shared by the examples.
BASE = settings(
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
PURE = settings(BASE, max_examples=300)  # a function call per example: cheap
HTTP = settings(BASE, max_examples=60)  # a request per example, no password hashing
HASHING = settings(BASE, max_examples=30)  # one or more argon2id hashes per example

SITE = "https://userhub.example"
SITE_HOST = "userhub.example"

# --- Strategies --------------------------------------------------------------------------------

# Characters that make Unicode rules interesting: case folding that changes length (ß, ﬁ, İ),
# NFKC that changes or expands them (ﷺ is 18 characters once normalised, 𝔘 and Ａ are letters,
# K Ω Å are compatibility letters), combining marks, spaces a strip() removes, invisible format
# characters, controls, ":" (the session id separator) and astral characters.
TRICKY = (
    "aZ09_-.张三ßẞﬁİıǰΐΰςΣﷺ𝔘ＡKΩÅ\u0345\u0301\u0308 \u00a0\u3000\t\n\r\x00\x7f\x85:<>&\"'"
    "\u200b\u200d\u200f\u2028\ufeff\ue000😀👍🏽𐐀"
)
# No lone surrogates here: a form, a query string or UTF-8 JSON cannot carry them.
tricky_chars = st.one_of(st.sampled_from(TRICKY), st.characters(exclude_categories=["Cs"]))
any_chars = st.one_of(tricky_chars, st.characters(categories=["Cs"]))  # lone surrogates too

any_text = st.text(any_chars, max_size=30)
names = st.text(tricky_chars, max_size=24)
# Names built to pass (characters of no category C, not ":"), trimmed to the rules' length.
visible = st.characters(exclude_categories=["C"], exclude_characters=":")
valid_usernames = st.text(visible, min_size=1, max_size=USERNAME_MAX_LENGTH).filter(
    lambda name: not account_rules.username_problems(name)
)
usernames = st.one_of(valid_usernames, names)

# Passwords: any characters but lone surrogates, which JSON clients cannot send as text.
password_chars = st.one_of(
    st.characters(exclude_categories=["Cs"]),
    st.characters(categories=["Mn", "Me"]),  # combining marks: each one is a character
    st.characters(min_codepoint=0x10000, exclude_categories=["Cs"]),  # astral
)

emails = st.one_of(
    st.emails(),
    st.builds(
        "{}@{}".format,
        st.text(st.sampled_from("aZ.+_-İßé张😀\"' "), min_size=1, max_size=70),
        st.lists(
            st.text(st.sampled_from("abz09-ÜüİЖ张"), min_size=1, max_size=63),
            min_size=1,
            max_size=5,
        ).map(".".join),
    ),
)

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(any_chars, max_size=12),  # JSON's \ud800 escapes reach the server as surrogates
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=10), inner, max_size=3)
    ),
    max_leaves=8,
)
# What clients put in the credential fields: text of any length, or any other JSON value.
credential_fields = st.one_of(st.text(any_chars, max_size=140), valid_usernames, json_values)


def credential_bodies(
    extra_keys: tuple[str, ...] = ("display_name", "email", "is_admin", "current_password"),
) -> st.SearchStrategy[Any]:
    """JSON bodies for routes taking ``username`` and ``password``: a third are plausible
    sign-ups (a valid name, a password near the length limits, maybe a profile), a third
    objects with those fields missing, of the wrong type or beside others, and a third any
    other JSON value."""
    plausible = st.fixed_dictionaries(
        {
            "username": valid_usernames,
            "password": st.one_of(
                st.just(PASSWORD), st.text(password_chars, min_size=6, max_size=130)
            ),
        },
        optional={
            "display_name": st.one_of(
                st.none(), st.text(visible, min_size=1, max_size=DISPLAY_NAME_MAX_LENGTH + 2)
            ),
            "email": st.one_of(st.none(), st.emails(), emails),
        },
    )
    objects = st.fixed_dictionaries(
        {},
        optional={
            "username": credential_fields,
            "password": st.one_of(st.just(PASSWORD), credential_fields),
            **{key: st.one_of(json_values, emails) for key in extra_keys},
        },
    )
    return st.one_of(plausible, objects, json_values)


# --- Helpers -----------------------------------------------------------------------------------


def reset_users(app: Flask) -> None:
    """Empty the tables, so one example's account cannot decide another's outcome."""
    with app.app_context():
        db.session.execute(sa.delete(User))  # tokens go with their users (ON DELETE CASCADE)
        db.session.commit()


def spellings(name: str) -> set[str]:
    """How else a person may type a name: other cases and Unicode normal forms."""
    forms = {name.upper(), name.lower(), name.casefold(), name.swapcase(), name.title()}
    forms |= {unicodedata.normalize(form, name) for form in ("NFC", "NFD", "NFKC", "NFKD")}
    return forms


def assert_message(problems: list[str]) -> None:
    """A refusal always comes with words a person can act on."""
    assert problems, "a refusal without a message"
    for problem in problems:
        assert isinstance(problem, str) and problem.strip(), problem


def post_json(client: FlaskClient, path: str, body: Any, **kwargs: Any) -> Any:
    """POST a JSON document as any client may write it (the standard library: integers of
    any size, a lone surrogate as its ``\\u`` escape)."""
    data = json.dumps(body).encode()
    return client.post(path, data=data, content_type="application/json", **kwargs)


SMALL_LIMIT = 256


@pytest.fixture
def plain_app(tmp_path: Path, build_app: AppBuilder) -> Flask:
    """An app on SQLite for properties that never touch the user table (no MySQL rerun)."""
    return build_app(f"sqlite:///{tmp_path / 'plain.sqlite3'}")


@pytest.fixture
def small_limit_app(tmp_path: Path, build_app: AppBuilder) -> Flask:
    """As ``plain_app``, with a body limit small enough to cross in every example."""
    return build_app(f"sqlite:///{tmp_path / 'small.sqlite3'}", MAX_CONTENT_LENGTH=SMALL_LIMIT)


# --- Usernames ---------------------------------------------------------------------------------


@PURE
@given(any_text)
def test_username_problems_never_raise_and_an_accepted_name_fits_the_table(name: str) -> None:
    """Whatever arrives, the check answers (no exception), refuses with sentences, and a name
    it accepts can be stored: the username and its key fit their columns, and no character
    the session id or the page would trip over is in it."""
    problems = account_rules.username_problems(name)
    assert isinstance(problems, list)
    if problems:
        assert_message(problems)
        return
    assert 1 <= len(name) <= USERNAME_MAX_LENGTH
    assert len(account_rules.username_key(name)) <= USERNAME_KEY_MAX_LENGTH
    assert name == name.strip() and ":" not in name
    assert not any(unicodedata.category(char).startswith("C") for char in name)


@PURE
@example("ﷺ" * 15)  # 270 characters once normalised: the only rule the pattern cannot state
@example("a\n")  # "$" in Python would match before a final newline
@given(usernames)
def test_the_documented_username_pattern_says_exactly_what_registration_accepts(
    name: str,
) -> None:
    """The OpenAPI document gives clients ``username_pattern()``; a client that trusts it must
    neither be refused for a name it matches nor accepted with one it does not (apart from the
    normalised-length limit, which the description states in words)."""
    documented = re.fullmatch(rule_schemas.username_pattern(), name) is not None
    key_fits = len(account_rules.username_key(name)) <= USERNAME_KEY_MAX_LENGTH
    assert (not account_rules.username_problems(name)) == (documented and key_fits)


@PURE
@given(usernames)
def test_username_key_is_stable_under_case_and_normal_forms(name: str) -> None:
    """Two spellings of a name are one account when they differ only in case folding or
    Unicode normal form; the key of a key is itself (so stored keys compare with new ones)."""
    key = account_rules.username_key(name)
    assert account_rules.username_key(key) == key
    for variant in (
        name.lower(),
        name.casefold(),
        *(unicodedata.normalize(f, name) for f in ("NFC", "NFD", "NFKC", "NFKD")),
    ):
        assert account_rules.username_key(variant) == key, variant


@HASHING
@example(username="张三")
@example(username="ß")  # two characters once upper-cased, one key with "SS"
@example(username="ﷺ" * 15)
@given(username=usernames)
def test_registration_accepts_a_username_exactly_when_the_rules_do_and_finds_it_again(
    app: Flask, client: FlaskClient, username: str
) -> None:
    """The register page agrees with ``username_problems``: a 302 to the log-in page for a
    name it accepts, a 4xx page for one it refuses, which the API refuses too (422 naming the
    username). An accepted name is stored exactly as typed, found under every spelling with
    the same key (and under no other), and cannot be registered again (409) in any of them."""
    reset_users(app)
    token = csrf_token(client.get("/register").get_data(as_text=True))  # same session each time
    form = {"username": username, "password": PASSWORD, "confirm": PASSWORD, "csrf_token": token}
    page = client.post("/register", data=form)
    event(f"register page: {page.status_code}")
    problems = account_rules.username_problems(username)
    if problems:
        assert page.status_code in (400, 422), page.status_code
        assert user_count(app) == 0
        api = client.post("/api/v1/users", json={"username": username, "password": PASSWORD})
        assert "username" in error_fields(assert_problem(api, 422))
        assert user_count(app) == 0
        return

    assert page.status_code == 302 and urlsplit(page.location).path == "/login"
    with app.app_context():
        stored = users.find_user(username)
        assert stored is not None and stored.username == username
        for variant in spellings(username):
            found = users.find_user(variant)
            if account_rules.username_key(variant) == account_rules.username_key(username):
                assert found is not None and found.id == stored.id, variant
            else:
                assert found is None, variant
    # The API path: the same name, or a spelling of it, is now taken.
    again = next(
        (
            v
            for v in sorted(spellings(username))
            if v != username
            and not account_rules.username_problems(v)
            and account_rules.username_key(v) == account_rules.username_key(username)
        ),
        username,
    )
    response = client.post("/api/v1/users", json={"username": again, "password": PASSWORD})
    assert "username" in error_fields(assert_problem(response, 409))
    assert user_count(app) == 1


# --- Passwords ---------------------------------------------------------------------------------


@PURE
@given(
    st.integers(min_value=0, max_value=200).flatmap(
        lambda n: st.text(password_chars, min_size=n, max_size=n)
    )
)
def test_a_password_is_accepted_exactly_when_it_has_8_to_128_characters(password: str) -> None:
    """Length is counted in code points, whatever they are: an emoji is one, a combining
    accent is one; anything else about the password is the user's business."""
    problems = account_rules.password_problems(password)
    assert (not problems) == (8 <= len(password) <= 128)
    if problems:
        assert_message(problems)


@HASHING
@example(length=8, password_seed="\u0301" * 8)  # only combining marks
@example(length=128, password_seed="😀" * 128)  # astral: 512 bytes of UTF-8
@given(
    length=st.sampled_from([0, 1, 7, 8, 9, 64, 127, 128, 129, 200]),
    password_seed=st.text(password_chars, min_size=200, max_size=200),
)
def test_registration_and_log_in_take_a_password_at_its_exact_length_boundaries(
    app: Flask, client: FlaskClient, length: int, password_seed: str
) -> None:
    """At 7/8 and 128/129 characters of arbitrary Unicode the API refuses or accepts as the
    rules say; an accepted password logs in exactly as typed, and one character more or in
    another normal form does not."""
    password = password_seed[:length]
    reset_users(app)
    response = client.post("/api/v1/users", json={"username": "boundary", "password": password})
    if not 8 <= length <= 128:
        assert "password" in error_fields(assert_problem(response, 422))
        assert user_count(app) == 0
        return
    assert response.status_code == 201, response.get_data(as_text=True)
    good = client.post("/api/v1/tokens", json={"username": "boundary", "password": password})
    assert good.status_code == 201
    wrong = password[:-1] + ("x" if password[-1] != "x" else "y")
    others = {wrong, password + "x"} | {unicodedata.normalize("NFC", password)} - {password}
    for other in others:
        bad = client.post("/api/v1/tokens", json={"username": "boundary", "password": other})
        assert bad.status_code in (401, 422), other  # 422: over 128 characters


# --- Display names and e-mail addresses -----------------------------------------------------


@PURE
@given(st.text(tricky_chars, max_size=DISPLAY_NAME_MAX_LENGTH + 5))
def test_display_name_rules_match_their_documented_pattern(name: str) -> None:
    """``display_name_problems`` refuses with a message, never raises, and agrees with the
    pattern and length the OpenAPI document states."""
    problems = account_rules.display_name_problems(name)
    documented = re.fullmatch(rule_schemas.display_name_pattern(), name) is not None
    assert (not problems) == (documented and len(name) <= DISPLAY_NAME_MAX_LENGTH)
    if problems:
        assert_message(problems)


@PURE
@example("İ" * 30 + "@" + ".".join(["b" * 60] * 3) + ".com")  # lower() lengthens İ to i̇
@example('"zhang san"@example.com')  # quoted local parts are refused, as documented
@example("ǅ@Example.COM")
@given(st.one_of(emails, any_text))
def test_a_normalised_email_is_valid_as_stored_and_normalises_to_itself(email: str) -> None:
    """The stored form of an address (what the API shows and what a client may send back) is
    itself valid and unchanged by normalising again, fits its column, is lower case, and the
    documented pattern does not refuse an address the server accepts."""
    stored, problems = account_rules.normalise_email(email)
    if problems:
        assert stored is None
        assert_message(problems)
        return
    assert stored is not None
    assert len(stored) <= EMAIL_MAX_LENGTH
    assert stored == stored.lower()
    assert account_rules.normalise_email(stored) == (stored, [])
    assert re.fullmatch(rule_schemas.email_pattern(), email), "the documented pattern refuses it"


@PURE
@given(
    username=st.one_of(usernames, any_text),
    password=st.one_of(st.text(password_chars, max_size=140), any_text),
    display_name=st.one_of(st.none(), any_text),
    email=st.one_of(st.none(), emails, any_text),
)
def test_check_new_account_names_every_field_that_breaks_a_rule_and_nothing_else(
    username: str, password: str, display_name: str | None, email: str | None
) -> None:
    """The one check behind registration and import: it raises only InvalidUserInput, naming
    exactly the fields whose own check refuses them, with their messages; otherwise it returns
    the values to store (the key of the name, the normalised address)."""
    checks = {
        "username": account_rules.username_problems(username),
        "password": account_rules.password_problems(password),
        "display_name": []
        if display_name is None
        else account_rules.display_name_problems(display_name),
        "email": [] if email is None else account_rules.normalise_email(email)[1],
    }
    expected = {field: problems for field, problems in checks.items() if problems}
    try:
        account = account_rules.check_new_account(
            username, password, display_name=display_name, email=email
        )
    except InvalidUserInput as exc:
        assert exc.errors == expected
        assert exc.message == next(iter(expected.values()))[0]
        return
    assert expected == {}
    assert account.username == username
    assert account.username_key == account_rules.username_key(username)
    assert account.display_name == display_name
    assert account.email == (None if email is None else account_rules.normalise_email(email)[0])


# --- Redirect targets ----------------------------------------------------------------------------

REDIRECT_PIECES = [
    "/", "//", "\\", "/\\", "\\/", ":", "@", ".", "..", "%2f", "%5c", "%2F%2F", "%09", "%0a",
    "\t", "\n", "\r", "\x00", "\x01", "\x1f", " ", "#", "?", "&", "evil.example", "https:",
    "http:", "javascript:", "data:", "https://evil.example", "\u3002", "\uff0f", "\uff3c",
    "\u2215", "\u2044", "\ufe68", "\u2216", "\x7f", "\x85", "\u2028", "\u00a0", "a", "~", "%",
    "ſ", "İ", "\u200b",
]  # fmt: skip
redirect_targets = st.one_of(
    st.lists(st.sampled_from(REDIRECT_PIECES), max_size=8).map("".join),
    st.builds(
        lambda rest: "/" + rest, st.lists(st.sampled_from(REDIRECT_PIECES), max_size=6).map("".join)
    ),
    st.text(any_chars, max_size=20),
    st.builds(lambda rest: "/" + rest, st.text(tricky_chars, max_size=20)),
)


# What a browser can post in a form: no lone surrogates (UTF-8 cannot encode them).
form_redirect_targets = redirect_targets.filter(
    lambda target: not any(unicodedata.category(char) == "Cs" for char in target)
)


def browser_reference(target: str) -> str:
    """What a browser makes of a relative URL before resolving it (WHATWG URL Standard, basic
    URL parser, for the special schemes http/https): leading and trailing C0 controls and
    spaces are stripped, tabs and newlines removed anywhere, and a backslash is a slash."""
    trimmed = target.strip("".join(map(chr, range(0x21))))
    return re.sub("[\t\n\r]", "", trimmed).replace("\\", "/")


@PURE
@example("/\\evil.example")
@example("/\t/evil.example")
@example(" //evil.example")
@example("/%2F%2Fevil.example")
@example("/..//evil.example")
@example("/\uff0f\uff0fevil.example")
@given(redirect_targets)
def test_an_accepted_redirect_target_stays_on_this_site_however_it_is_read(target: str) -> None:
    """A ``next`` target the check accepts, resolved against a page of this site by Python's
    ``urljoin``, by a browser (WHATWG), and after Werkzeug turns it into a URI for the
    ``Location`` header, never names another host or scheme."""
    event(f"accepted: {is_safe_redirect(target)}")
    if not is_safe_redirect(target):
        return
    page = SITE + "/x"
    for reference in (target, browser_reference(target), browser_reference(iri_to_uri(target))):
        resolved = urlsplit(urljoin(page, reference))
        assert (resolved.scheme, resolved.netloc) == ("https", SITE_HOST), (target, reference)


ORDINARY_PATH = r"/([A-Za-z0-9._~!$&'()*+,;=@%-]+(/[A-Za-z0-9._~-]*)*)?(\?[a-z0-9=&]*)?"


@PURE
@given(st.from_regex(ORDINARY_PATH, fullmatch=True))
def test_every_ordinary_path_on_this_site_is_an_accepted_target(target: str) -> None:
    """The check is not merely strict: a plain path, with or without a query, is followed."""
    assert is_safe_redirect(target)


@HASHING
@example(target="/account")
@example(target="/\\evil.example")
@example(target="/%2F%2Fevil.example/")
@given(target=form_redirect_targets)
def test_log_in_never_redirects_off_this_site_whatever_next_says(
    app: Flask, client: FlaskClient, target: str
) -> None:
    """End to end: log in through the form with ``next``; the ``Location`` the browser gets,
    read as a browser reads it, stays on this host; and a target the check accepts is
    followed exactly."""
    with app.app_context():
        if users.find_user("next-user") is None:
            users.register_user("next-user", PASSWORD)
    token = csrf_token(client.get("/login").get_data(as_text=True))
    response = client.post(
        "/test_post",
        data={"username": "next-user", "password": PASSWORD, "next": target, "csrf_token": token},
    )
    assert response.status_code == 302
    event(f"target accepted: {is_safe_redirect(target)}")
    location = response.headers["Location"]
    resolved = urlsplit(urljoin(SITE + "/test_post", browser_reference(location)))
    assert (resolved.scheme, resolved.netloc) == ("https", SITE_HOST), location
    if is_safe_redirect(target):
        assert location == iri_to_uri(target)
    else:
        assert urlsplit(location).path == "/success"


# --- Request ids ---------------------------------------------------------------------------------

REQUEST_ID_PIECES = [
    "abc", "-", ":", ".", "\r\n", "\n", "\r", "\x00", " ", "Set-Cookie: x=1", "\t", "é",
    "<script>", "x" * 64,
]  # fmt: skip
request_ids = st.one_of(
    st.from_regex(CLIENT_REQUEST_ID, fullmatch=True),
    st.text(st.characters(max_codepoint=0xFF), max_size=140),  # WSGI headers are Latin-1 text
    st.lists(st.sampled_from(REQUEST_ID_PIECES), max_size=6).map("".join),
)


class RecordList(logging.Handler):
    """Keeps the records it is given."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@HTTP
@example("client-1")
@example("x" * 128)
@example("x" * 129)
@example("abc\r\nSet-Cookie: session=stolen")
@example("abc\n")
@given(request_ids)
def test_a_request_id_is_echoed_when_sane_and_replaced_otherwise(
    plain_app: Flask, raw: str
) -> None:
    """The client's ``X-Request-ID`` (as a server hands it to WSGI, any Latin-1 text) comes
    back unchanged when it is a sane token, else a fresh 16-hex-digit id does; either way
    exactly one header with no character that could start another header, and the log line
    carries the same id."""
    handler = RecordList()
    environ = EnvironBuilder(path="/response_json").get_environ()
    environ["HTTP_X_REQUEST_ID"] = raw
    logger = logging.getLogger("userhub.access")
    logger.addHandler(handler)
    try:
        app_iter, status, headers = run_wsgi_app(plain_app.wsgi_app, environ)
        b"".join(app_iter)
    finally:
        logger.removeHandler(handler)
    assert status.startswith("200")
    [sent] = headers.getlist("X-Request-ID")
    if CLIENT_REQUEST_ID.fullmatch(raw):
        assert sent == raw
    else:
        assert re.fullmatch(r"[0-9a-f]{16}", sent)
    assert re.fullmatch(r"[A-Za-z0-9._:-]{1,128}", sent)
    assert [getattr(record, "request_id", None) for record in handler.records] == [sent]


# --- Configuration parsers -----------------------------------------------------------------------

WHITESPACE = st.text(st.sampled_from(" \t\n\r\u00a0\u3000"), max_size=3)


def spelled_in_any_case(words: tuple[str, ...]) -> st.SearchStrategy[str]:
    """One of ``words`` in any mixture of case, with white space around it."""
    mixed = st.sampled_from(words).flatmap(
        lambda word: st.tuples(*(st.sampled_from([c.lower(), c.upper()]) for c in word)).map(
            "".join
        )
    )
    return st.builds(lambda a, w, b: a + w + b, WHITESPACE, mixed, WHITESPACE)


TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off")


@PURE
@given(st.one_of(spelled_in_any_case(TRUE_WORDS + FALSE_WORDS), any_text))
def test_a_boolean_setting_reads_the_documented_words_and_refuses_the_rest(raw: str) -> None:
    """``USERHUB_COOKIE_SECURE`` and friends: the eight words in any case and padding, and for
    anything else a ConfigError naming the variable and the value, never a silent default."""
    word = raw.strip().lower()
    try:
        parsed = parse_bool(raw)
    except ValueError as exc:
        assert word not in TRUE_WORDS + FALSE_WORDS
        assert str(exc)
    else:
        assert parsed is (word in TRUE_WORDS)
        assert word in TRUE_WORDS + FALSE_WORDS
    if raw == "":
        return  # to load_config, empty means "the default"
    try:
        config = load_config({"USERHUB_COOKIE_SECURE": raw})
    except ConfigError as exc:
        assert "USERHUB_COOKIE_SECURE" in str(exc) and repr(raw) in str(exc)
    else:
        assert config["SESSION_COOKIE_SECURE"] is (word in TRUE_WORDS)


@PURE
@given(st.one_of(spelled_in_any_case(("development", "production")), any_text))
def test_a_one_of_setting_accepts_its_choices_in_any_case_and_lists_them_otherwise(
    raw: str,
) -> None:
    """``USERHUB_ENV``: a choice comes back in lower case; anything else is refused with a
    message that lists every choice."""
    parse = one_of("development", "production")
    try:
        value = parse(raw)
    except ValueError as exc:
        assert raw.strip().lower() not in ("development", "production")
        assert "development" in str(exc) and "production" in str(exc)
    else:
        assert value == raw.strip().lower() and value in ("development", "production")


origin_hosts = st.one_of(
    st.from_regex(r"[a-z0-9-]{1,12}(\.[a-z0-9-]{1,12}){0,3}", fullmatch=True),
    st.sampled_from(["localhost", "127.0.0.1", "[::1]", "*", "*.example.com", "a..b", "-", ""]),
    st.text(tricky_chars, max_size=8),
)
origin_ports = st.one_of(
    st.just(""),
    st.integers(min_value=0, max_value=99999).map(lambda n: f":{n}"),
    st.text(st.sampled_from("0123456789٣५*"), max_size=6).map(lambda s: ":" + s),
)
origins = st.builds(
    lambda scheme, host, port, tail: scheme + host + port + tail,
    st.sampled_from(["http://", "https://", "HTTPS://", "ftp://", "//", "", "https:/"]),
    origin_hosts,
    origin_ports,
    st.sampled_from(["", "/", "/app", "?x=1", "#top", " ", "*"]),
)


@PURE
@given(st.lists(origins, max_size=3).map(",".join))
def test_accepted_cors_origins_are_exact_origins_without_wildcard_path_or_query(
    raw: str,
) -> None:
    """``USERHUB_CORS_ORIGINS``: every origin it accepts is ``scheme://host[:port]`` and
    nothing else: no wildcard, path, query, fragment or user name, which Flask-CORS would read
    as a prefix pattern or never match. A refusal says what is expected."""
    try:
        parsed = parse_origins(raw)
    except ValueError as exc:
        assert "exact origin" in str(exc)
        return
    for origin in parsed:
        assert "*" not in origin and "," not in origin and origin == origin.strip()
        parts = urlsplit(origin)
        assert parts.scheme in ("http", "https"), origin
        assert (parts.path, parts.query, parts.fragment, parts.username) == ("", "", "", None)
        assert f"{parts.scheme}://{parts.netloc}" == origin


@PURE
@example("http://localhost:\u0665\u0661\u0667\u0663")  # Arabic-Indic digits for 5173
@example("http://localhost:99999")
@given(st.lists(origins, max_size=3).map(",".join))
def test_an_accepted_cors_origin_has_a_port_a_browser_can_send(raw: str) -> None:
    """An origin a browser never sends would never match: the port, if any, is ASCII digits
    for a number from 1 to 65535."""
    try:
        parsed = parse_origins(raw)
    except ValueError:
        return
    for origin in parsed:
        assert origin.isascii(), origin
        port = urlsplit(origin).port  # ValueError for a port out of range or not a number
        assert port is None or 1 <= port <= 65535, origin


host_names = st.one_of(
    st.from_regex(r"[a-zA-Z0-9-]{1,6}(\.[a-zA-Z0-9-]{1,6}){0,2}", fullmatch=True),
    st.sampled_from(["localhost", "127.0.0.1", "[::1]", "::1", "[0:0::1]", "*", "*.example.com"]),
    st.sampled_from(["example.com", "a.example.com", "badexample.com", "müller.example", "a..b"]),
    st.text(tricky_chars, max_size=8),
)
allowed_entries = st.one_of(
    st.builds(lambda dot, name: dot + name, st.sampled_from(["", "."]), host_names),
    host_names.map(lambda name: name + ":80"),
)
host_headers = st.one_of(
    st.builds(lambda name, port: name + port, host_names, origin_ports),
    st.builds(
        lambda name, tail: name + tail,
        host_names,
        st.sampled_from(["]", "]x", "@evil.example", "/x", " ", "\t", "."]),
    ),
)


@PURE
@example("LOCALHOST, 127.0.0.1 ,[::1]")
@example("*.example.com")
@example("example.com:8443")
@given(st.lists(allowed_entries, max_size=3).map(",".join))
def test_allowed_hosts_are_names_or_addresses_without_port_or_wildcard(raw: str) -> None:
    """``USERHUB_ALLOWED_HOSTS``: every entry it keeps is a lower-case host name (a leading dot
    at most) or an IPv6 address in its canonical form; anything else (a port, ``*``, a scheme,
    an empty list) is refused with words that say what is expected."""
    try:
        parsed = parse_allowed_hosts(raw)
    except ValueError as exc:
        assert "host name" in str(exc)
        return
    assert parsed
    for host in parsed:
        if ":" in host:
            assert str(ipaddress.IPv6Address(host)) == host
        else:
            assert HOST_NAME.fullmatch(host) and host == host.lower(), host


def named_by(host: str, allowed: tuple[str, ...]) -> bool:
    """The rule, said plainly: the host without its port, in lower case, is an entry, or is
    under an entry with a leading dot, or is an entry's IPv6 address in brackets."""
    name = host.lower()
    if name.startswith("["):
        inside = name[1 : name.index("]")]
        return str(ipaddress.IPv6Address(inside)) in allowed
    name = name.rsplit(":", 1)[0] if ":" in name else name
    return any(
        name == entry or (entry.startswith(".") and (name == entry[1:] or name.endswith(entry)))
        for entry in allowed
    )


@PURE
@example("[::1]:5000", "::1")
@example("LocalHost:80", "localhost")
@example("badexample.com", ".example.com")
@example("[::1]evil", "::1")
@given(host_headers, st.lists(allowed_entries, min_size=1, max_size=3).map(",".join))
def test_a_host_is_allowed_only_when_an_entry_names_it(host: str, raw: str) -> None:
    """``web/hosts.py``'s second look at a host Werkzeug refused never lets in a host that no
    entry names; and a host Werkzeug trusts is allowed there too (a superset of Werkzeug's)."""
    try:
        allowed = parse_allowed_hosts(raw)
    except ValueError:
        return
    if host_is_trusted(host, allowed):
        assert is_allowed(host, allowed)
    if is_allowed(host, allowed):
        assert named_by(host, allowed), (host, allowed)


TYPICAL_ORIGINS = ["http://localhost:5173", "https://app.example.com", "http://[::1]:5173"]


@settings(BASE, max_examples=15)
@example(origin="http://[::1]:5173")
@given(origin=st.one_of(st.sampled_from(TYPICAL_ORIGINS), origins))
def test_a_browser_on_an_accepted_origin_is_allowed_and_one_on_a_longer_origin_is_not(
    tmp_path: Path, origin: str
) -> None:
    """End to end through Flask-CORS: a request from an accepted origin gets
    ``Access-Control-Allow-Origin`` naming it; one from an origin that merely starts with it
    (another host or port) gets none."""
    try:
        (allowed,) = parse_origins(origin)
    except ValueError:
        return
    app = make_app(f"sqlite:///{tmp_path / 'cors.sqlite3'}", USERHUB_CORS_ORIGINS=(allowed,))
    try:
        client = app.test_client()
        good = client.get("/api/v1/health", headers={"Origin": allowed})
        assert good.headers.get("Access-Control-Allow-Origin") == allowed
        for other in (allowed + "0", allowed + ".evil.example"):
            bad = client.get("/api/v1/health", headers={"Origin": other})
            assert "Access-Control-Allow-Origin" not in bad.headers, other
    finally:
        dispose(app)  # each example's app (the fixtures' apps live across examples)


# --- Schemas -------------------------------------------------------------------------------------


def strict_text(value: Any, low: int, high: int | None = None) -> bool:
    """A JSON string (not a number or a list) of ``low`` to ``high`` characters."""
    return isinstance(value, str) and low <= len(value) and (high is None or len(value) <= high)


def schema_accepts(model: type[BaseModel], body: Any) -> bool:
    try:
        model.model_validate(body)
    except ValidationError as exc:
        assert exc.errors(), "a refusal names its fields"
        return False
    return True


@PURE
@example({"is_admin": 1})  # a number is not a yes/no
@example({"is_admin": "true", "display_name": None})
@example({"username": "张三", "password": 12345678})
@given(credential_bodies())
def test_the_api_schemas_take_exactly_the_documented_shapes(body: Any) -> None:
    """Bodies are strict: text stays text (``5`` is not ``"5"``), lengths are the rules' own
    (in characters), unknown fields are refused, ``null`` clears only what may be cleared.
    Nothing but ValidationError ever comes out."""
    is_object = isinstance(body, dict)
    fields = set(body) if is_object else set()
    get = body.get if is_object else (lambda _key, _default=None: None)

    def optional_text(key: str, high: int) -> bool:
        return key not in fields or get(key) is None or strict_text(get(key), 0, high)

    new_user = (
        is_object
        and fields <= {"username", "password", "display_name", "email"}
        and strict_text(get("username"), 1, USERNAME_MAX_LENGTH)
        and strict_text(get("password"), 8, 128)
        and optional_text("display_name", DISPLAY_NAME_MAX_LENGTH)
        and optional_text("email", EMAIL_MAX_LENGTH)
    )
    assert schema_accepts(schemas.NewUser, body) == new_user
    api_credentials = (
        is_object
        and fields == {"username", "password"}
        and strict_text(get("username"), 1, USERNAME_MAX_LENGTH)
        and strict_text(get("password"), 1, 128)
    )
    assert schema_accepts(schemas.TokenRequest, body) == api_credentials
    admin_update = (
        is_object
        and fields <= {"display_name", "email", "password", "is_admin"}
        and optional_text("display_name", DISPLAY_NAME_MAX_LENGTH)
        and optional_text("email", EMAIL_MAX_LENGTH)
        and (get("password") is None or strict_text(get("password"), 8, 128))
        and ("is_admin" not in fields or isinstance(get("is_admin"), bool))
    )
    assert schema_accepts(schemas.AdminUpdate, body) == admin_update


@PURE
@given(credential_bodies(extra_keys=("extra",)))
def test_the_tutorial_schemas_check_presence_and_type_only(body: Any) -> None:
    """§3 and §5 bodies: two non-empty strings; extra fields are ignored as the tutorial's
    ``request.get_json()`` would; the account rules are the service's, not the schema's."""
    expected = (
        isinstance(body, dict)
        and strict_text(body.get("username"), 1)
        and strict_text(body.get("password"), 1)
    )
    assert schema_accepts(Credentials, body) == expected
    assert schema_accepts(NewAccount, body) == expected


@PURE
@given(st.one_of(st.text(tricky_chars, max_size=30), st.none()))
def test_the_greeting_query_takes_any_text(name: str | None) -> None:
    """§3's ``user_name`` is any text (the view, not the schema, refuses an empty one)."""
    query = GreetingQuery.model_validate({} if name is None else {"user_name": name})
    assert query.user_name == ("" if name is None else name)


# --- The tutorial's and the API's routes over HTTP -----------------------------------------------


@HTTP
@given(st.text(st.characters(exclude_categories=["Cs"]), max_size=40))
def test_test_get_greets_any_name_escaped_and_refuses_only_an_empty_one(
    plain_app: Flask, name: str
) -> None:
    """``/test_get?user_name=…`` answers ``Hello,`` and the name as text (escaped, never
    markup) for every name, and a plain 400 for an empty one."""
    response = plain_app.test_client().get("/test_get", query_string={"user_name": name})
    if name:
        assert response.status_code == 200
        assert response.get_data(as_text=True) == "Hello," + escape(name)
    else:
        assert response.status_code == 400 and response.mimetype == "text/plain"


@HTTP
@example({"username": "<b>张三</b> & co", "password": "x"})
@given(st.one_of(credential_bodies(), st.binary(max_size=40).map(lambda raw: ("raw", raw))))
def test_get_json_answers_any_body_with_the_receipt_or_a_problem(
    plain_app: Flask, body: Any
) -> None:
    """``/get_json`` with any JSON (or bytes that are not JSON): the receipt naming the user
    for two non-empty strings, never the password, never a 5xx; else a problem document."""
    client = plain_app.test_client()
    if isinstance(body, tuple):  # bytes: whatever they decode to, if anything, decides
        response = client.post("/get_json", data=body[1], content_type="application/json")
        try:
            body = json.loads(body[1])
        except ValueError:
            body = None
    else:
        response = post_json(client, "/get_json", body)
    event(f"status {response.status_code}")
    if schema_accepts(Credentials, body):
        assert response.status_code == 200
        assert response.get_data(as_text=True) == "Data received. username:" + escape(
            body["username"]
        )
    else:
        assert 400 <= response.status_code < 500
        assert_problem(response, response.status_code)


@HASHING
@given(credential_bodies())
def test_save_data_to_mysql_stores_a_user_exactly_when_the_rules_allow(
    app: Flask, client: FlaskClient, body: Any
) -> None:
    """§5 with any JSON: 200 exactly when the body has a username and password the rules
    accept and the name is free, and then the account is there and the password logs in;
    otherwise a 4xx problem in the tutorial's ``Commit Status:Failed`` words and nothing new
    is stored. Never a 5xx."""
    before = user_count(app)
    ok = schema_accepts(NewAccount, body)
    if ok:
        with app.app_context():
            free = users.find_user(body["username"]) is None
        ok = free and not account_rules.username_problems(body["username"])
        ok = ok and not account_rules.password_problems(body["password"])
    response = post_json(client, "/save_data_to_mysql", body)
    event(f"status {response.status_code}")
    if not ok:
        problem = assert_problem(response, response.status_code)
        assert 400 <= response.status_code < 500
        assert problem["detail"].startswith(COMMIT_FAILED)
        assert user_count(app) == before
        return
    assert response.status_code == 200, response.get_data(as_text=True)
    assert user_count(app) == before + 1
    with app.app_context():
        stored = users.find_user(body["username"])
        assert stored is not None and stored.username == body["username"]
        assert users.authenticate(body["username"], body["password"]) is not None


@HASHING
@given(credential_bodies())
def test_post_users_creates_exactly_the_account_it_reports(
    app: Flask, client: FlaskClient, body: Any
) -> None:
    """``POST /api/v1/users`` with any JSON: 201 exactly when the schema and every rule accept
    the body and neither the name nor the address is taken; the account the 201 describes is
    the one stored. Otherwise a problem document and nothing stored. Never a 5xx."""
    before = user_count(app)
    ok = schema_accepts(schemas.NewUser, body)
    if ok:
        try:
            account = account_rules.check_new_account(
                body["username"],
                body["password"],
                display_name=body.get("display_name"),
                email=body.get("email"),
            )
        except InvalidUserInput:
            ok = False
        else:
            with app.app_context():
                taken = users.find_user(account.username) is not None or (
                    account.email is not None
                    and db.session.scalar(sa.select(User).where(User.email == account.email))
                    is not None
                )
            ok = not taken
    response = post_json(client, "/api/v1/users", body)
    event(f"status {response.status_code}")
    if not ok:
        assert 400 <= response.status_code < 500
        assert_problem(response, response.status_code)
        assert user_count(app) == before
        return
    assert response.status_code == 201, response.get_data(as_text=True)
    created = response.get_json()
    assert "password" not in json.dumps(created) and "argon2" not in json.dumps(created)
    assert response.headers["Location"].endswith(f"/api/v1/users/{created['id']}")
    with app.app_context():
        stored = db.session.get(User, created["id"])
        assert stored is not None
        assert (stored.username, stored.email, stored.display_name) == (
            body["username"],
            account.email,
            body.get("display_name"),
        )


TOKEN_USER = "token-user"


@HASHING
@example({"username": TOKEN_USER.upper(), "password": PASSWORD})
@example(("basic", TOKEN_USER, PASSWORD))
@given(
    st.one_of(
        credential_bodies(extra_keys=("extra",)),
        st.fixed_dictionaries(
            {
                "username": st.sampled_from(sorted(spellings(TOKEN_USER)) + ["someone-else"]),
                "password": st.sampled_from([PASSWORD, PASSWORD, PASSWORD.upper(), PASSWORD + " "]),
            }
        ),
        st.tuples(
            st.just("basic"),
            st.one_of(
                st.sampled_from(sorted(spellings(TOKEN_USER))), st.text(any_chars, max_size=30)
            ),
            st.one_of(st.just(PASSWORD), st.text(any_chars, max_size=30)),
        ),
    )
)
def test_post_tokens_issues_a_working_token_only_for_the_right_credentials(
    app: Flask, client: FlaskClient, body: Any
) -> None:
    """``POST /api/v1/tokens`` with any JSON body or HTTP Basic credentials: 201 exactly for
    the account's name (any spelling with its key) and its exact password, and the token then
    works; a wrong or unknown pair is a 401; a malformed body a 4xx problem. Never a 5xx."""
    with app.app_context():
        if users.find_user(TOKEN_USER) is None:
            users.register_user(TOKEN_USER, PASSWORD)
    well_formed = True  # credentials were sent: a wrong pair is 401, not another 4xx
    if isinstance(body, tuple):
        _, username, password = body
        pair = f"{username}:{password}".encode("utf-8", "surrogatepass")
        header = "Basic " + base64.b64encode(pair).decode()
        response = client.post("/api/v1/tokens", headers={"Authorization": header})
        sent_name, _, sent_password = f"{username}:{password}".partition(":")
        right = (
            account_rules.username_key(sent_name) == account_rules.username_key(TOKEN_USER)
            and sent_password == PASSWORD
            and not any(unicodedata.category(c) == "Cs" for c in username + password)
        )
    else:
        response = post_json(client, "/api/v1/tokens", body)
        well_formed = schema_accepts(schemas.TokenRequest, body)
        right = (
            well_formed
            and account_rules.username_key(body["username"])
            == account_rules.username_key(TOKEN_USER)
            and body["password"] == PASSWORD
        )
    event(f"status {response.status_code}")
    if not right:
        assert (response.status_code == 401) if well_formed else (400 <= response.status_code < 500)
        assert_problem(response, response.status_code)
        return
    assert response.status_code == 201, response.get_data(as_text=True)
    token = response.get_json()["token"]
    me = client.get("/api/v1/users/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 200 and me.get_json()["username"] == TOKEN_USER


@HTTP
@given(
    page=st.one_of(
        st.integers(-5, 1_000_005).map(str),
        st.integers(1, 3).map(str),
        st.text(tricky_chars, max_size=8),
    ),
    per_page=st.one_of(st.integers(-5, 105).map(str), st.text(tricky_chars, max_size=8)),
)
def test_paging_parameters_are_numbers_in_range_or_a_422(
    client: FlaskClient, admin: Account, page: str, per_page: str
) -> None:
    """``GET /api/v1/users?page=&per_page=`` with any text: a page within the limits is served
    with at most ``per_page`` items; anything else is a 422 problem, never a 5xx."""
    response = client.get(
        "/api/v1/users",
        query_string={"page": page, "per_page": per_page},
        headers=admin.headers,
    )
    event(f"status {response.status_code}")
    plain = re.fullmatch(r"-?[0-9]+", page) and re.fullmatch(r"-?[0-9]+", per_page)
    in_range = plain and 1 <= int(page) <= 1_000_000 and 1 <= int(per_page) <= 100
    if response.status_code == 200:
        listing = response.get_json()
        assert 1 <= listing["page"] <= 1_000_000 and 1 <= listing["per_page"] <= 100
        assert len(listing["items"]) <= listing["per_page"]
        if plain:
            assert (listing["page"], listing["per_page"]) == (int(page), int(per_page))
    else:
        assert not in_range, response.get_data(as_text=True)
        assert_problem(response, 422)


# --- The body-size limit -------------------------------------------------------------------------


@HTTP
@example(size=255)
@example(size=256)
@example(size=257)
@given(size=st.integers(min_value=0, max_value=600))
def test_a_chunked_body_is_refused_at_the_limit_and_otherwise_read_like_any_other(
    small_limit_app: Flask, size: int
) -> None:
    """``request_limits``: a body without a length (chunked) is refused with 413 once it
    reaches ``MAX_CONTENT_LENGTH`` (256 here; at exactly the limit it cannot tell that more
    was not cut off); below that it gets the same answer as the same body with a length, so
    no document is ever read half."""
    prefix, suffix = b'{"username": "', b'", "password": "x"}'
    body = (prefix + b"a" * max(0, size - len(prefix) - len(suffix)) + suffix)[:size]
    client = small_limit_app.test_client()
    chunked = client.post(
        "/get_json",
        input_stream=io.BytesIO(body),
        headers={"Transfer-Encoding": "chunked", "Content-Type": "application/json"},
        environ_overrides={"wsgi.input_terminated": True},
    )
    sized = client.post("/get_json", data=body, content_type="application/json")
    assert (chunked.status_code == 413) == (size >= SMALL_LIMIT)
    assert (sized.status_code == 413) == (size > SMALL_LIMIT)
    if size < SMALL_LIMIT:
        assert (chunked.status_code, chunked.get_data()) == (sized.status_code, sized.get_data())


# --- Bulk import -------------------------------------------------------------------------------

# The words the import documents for ``is_admin`` (and some it does not take).
ADMIN_YES = ("true", "1", "yes")
ADMIN_NO = ("false", "0", "no", "")
ADMIN_OTHER = ("y", "n", "t", "f", "on", "off", "2", "-1", "admin", "ｙｅｓ")


import_rows = st.fixed_dictionaries(
    {
        "username": st.one_of(valid_usernames, st.sampled_from(["dup", "DUP", "Dup"]), names),
        "password": st.one_of(st.just(PASSWORD), st.text(password_chars, max_size=10)),
        "is_admin": st.sampled_from(["", "true", "FALSE", " yes ", "0", "maybe", "y", "on"]),
        "display_name": st.one_of(st.just(""), st.text(tricky_chars, max_size=8)),
        "email": st.one_of(st.sampled_from(["", "a@example.com", "A@Example.com"]), emails),
    }
)
LINE_BREAK = re.compile(r"\r\n|\r|\n")
# The columns of a file of new accounts with passwords (those of a move, with hashes and ids,
# are tested in test_account_move.py); username and password must be there.
PLAIN_COLUMNS = ("username", "password", "is_admin", "display_name", "email")


@PURE
@given(
    columns=st.permutations(PLAIN_COLUMNS).flatmap(
        lambda order: st.sets(st.sampled_from(PLAIN_COLUMNS[2:])).map(
            lambda optional: [c for c in order if c in PLAIN_COLUMNS[:2] or c in optional]
        )
    ),
    rows=st.lists(import_rows, max_size=6),
    header_case=st.sampled_from([str.lower, str.upper, lambda s: f" {s} "]),
)
def test_an_import_file_is_read_row_by_row_with_the_registration_rules_and_true_lines(
    columns: list[str], rows: list[dict[str, str]], header_case: Callable[[str], str]
) -> None:
    """Any rows, written by a spreadsheet's CSV writer (quotes, commas and line breaks inside
    cells) under a header in any order and case: each row is either imported exactly as
    written or reported as bad, at the line an editor shows it on, with a reason. A row is
    good exactly when ``check_new_account`` accepts it, ``is_admin`` is a yes/no word, and no
    earlier row used its username (by key) or e-mail address. A text cell is read as the
    export's spreadsheet guard wrote it (``restore_csv_cell``)."""
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([header_case(c) for c in columns])
    lines = []
    for row in rows:
        lines.append(len(LINE_BREAK.findall(out.getvalue())) + 1)
        writer.writerow([row.get(c, "") for c in columns])
    plan = import_file.parse_import_csv(out.getvalue())

    expected_good, expected_bad = [], []
    seen_keys: set[str] = set()
    seen_emails: set[str] = set()
    for line, written in zip(lines, rows, strict=True):
        row = {
            c: bulk_export.restore_csv_cell(v) if c in import_file.TEXT_COLUMNS else v
            for c, v in written.items()
        }
        cells = {c: row[c] for c in columns}
        email = cells.get("email", "")
        display = cells.get("display_name", "")
        key = (
            None
            if account_rules.username_problems(row["username"])
            else account_rules.username_key(row["username"])
        )
        address = account_rules.normalise_email(email)[0] if email.strip() else None
        repeated = key in seen_keys or address in seen_emails
        if key is not None:
            seen_keys.add(key)
        if address is not None:
            seen_emails.add(address)
        try:
            account_rules.check_new_account(
                row["username"],
                row["password"],
                display_name=display if display.strip() else None,
                email=email if email.strip() else None,
            )
            valid = True
        except InvalidUserInput:
            valid = False
        admin_word = cells.get("is_admin", "").strip().lower()
        admin = True if admin_word in ADMIN_YES else False if admin_word in ADMIN_NO else None
        if valid and admin is not None and not repeated:
            expected_good.append((line, row["username"], row["password"], admin))
        else:
            expected_bad.append(line)

    assert plan.total == len(rows)
    assert [
        (r.line, r.account.username, r.password, r.is_admin) for r in plan.rows
    ] == expected_good
    assert [bad.line for bad in plan.bad] == expected_bad
    assert all(bad.reason.strip() for bad in plan.bad)
    for bad in plan.bad:  # a bad row is reported, never its password
        row = rows[lines.index(bad.line)]
        if len(row["password"]) >= 8:
            assert row["password"] not in bad.reason


@PURE
@given(
    st.one_of(st.binary(max_size=200), st.binary(max_size=200).map(lambda data: b"[" + data)),
    st.sampled_from(["import.csv", "import.json"]),
)
def test_any_file_is_either_read_or_refused_with_a_reason(
    tmp_path: Path, data: bytes, name: str
) -> None:
    """``import-users`` on any bytes, read as CSV or JSON: an ImportPlan, or ImportFileError
    saying why; never a traceback. Every data row is counted once, as good or bad."""
    path = tmp_path / name
    path.write_bytes(data)
    try:
        plan = import_file.read_import_file(path)
    except import_file.ImportFileError as exc:
        assert str(exc).strip()
        return
    assert plan.total == len(plan.rows) + len(plan.bad)


@PURE
@given(st.text(tricky_chars, max_size=12))
def test_an_exported_cell_never_starts_a_formula_and_restores_exactly(value: str) -> None:
    """Export to CSV: a cell never begins with what a spreadsheet runs as a formula, and
    stripping one leading apostrophe gives back exactly what was stored."""
    cell = bulk_export.neutralise_csv_cell(value)
    assert not cell.startswith(("=", "+", "-", "@", "\t", "\r"))  # OWASP "CSV Injection"
    assert bulk_export.restore_csv_cell(cell) == value


export_records = st.fixed_dictionaries(
    {
        "id": st.integers(1, 2**31),
        "username": names,
        "display_name": st.none() | names,
        "email": st.none() | st.emails(),
        "is_admin": st.booleans(),
        "created_at": st.just("2026-01-01T00:00:00Z"),
    }
)


def exported_text(value: Any) -> str:
    """A value as the export's documentation says it is written: empty for none, true/false."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@PURE
@given(st.lists(export_records, max_size=4))
def test_exported_csv_and_json_read_back_to_the_same_records(records: list[dict[str, Any]]) -> None:
    """What ``export-users`` writes is what a reader gets back: CSV (after restoring each cell)
    and JSON alike, for any text in any field."""
    columns = bulk_export.EXPORT_COLUMNS
    out = io.StringIO(newline="")
    assert bulk_export.write_csv(iter(records), out, columns) == len(records)
    reader = csv.reader(io.StringIO(out.getvalue(), newline=""))
    assert next(reader) == list(columns)
    for record, read in zip(records, reader, strict=True):
        expected = [exported_text(record[column]) for column in columns]
        assert [bulk_export.restore_csv_cell(cell) for cell in read] == expected
    out = io.StringIO()
    assert bulk_export.write_json(iter(records), out) == len(records)
    assert json.loads(out.getvalue()) == records


@PURE
@given(st.one_of(spelled_in_any_case(ADMIN_YES + ADMIN_NO + ADMIN_OTHER), any_text))
def test_is_admin_cells_read_yes_no_words_in_any_case_and_nothing_else(cell: str) -> None:
    """The import's ``is_admin`` column takes the words its help names (true/false, 1/0,
    yes/no, in any case, or empty) and nothing else: a typo must not make an administrator."""
    word = cell.strip().lower()
    expected = True if word in ADMIN_YES else False if word in ADMIN_NO else None
    assert row_checks.parse_is_admin(cell) is expected
