"""Bad input gets a clear error, never a 500, and loses nothing.

Every route of the tutorial contract is sent what careless and hostile clients send: no body,
broken JSON, the wrong content type, wrong types, empty, overlong and oversized fields, control
characters, every script, HTML and SQL, in every field. Each answer is either a success whose
data is committed (and echoed or stored exactly, escaped in HTML), or a 4xx in the route's own
format (problem+json for JSON routes, an HTML page for pages, bare text for ``/test_get``) whose
message says what to fix, and after which the ``user`` table holds exactly what it held before.

The ``client`` here fails a test on any 5xx and on any response that leaks internals (a
traceback, the driver's or SQLAlchemy's name, SQL), whatever the test itself asserts.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from markupsafe import escape
from werkzeug.test import TestResponse

from tests.helpers import (
    BODY_LIMIT,
    PASSWORD,
    AuthActions,
    assert_problem,
    is_logged_in,
    user_count,
)
from userhub.extensions import db
from userhub.services import users

FAILED = "Commit Status:Failed, Message:"
SUCCEEDED = "Commit Status:Succeeded, Message:Data inserted successfully."
TWENTY_MB = 20 * 1024 * 1024
SEED = "seed-user"
CSRF_MESSAGE = "The form's security token is missing or expired."
LOGIN_FAILED = "Invalid username or password."

JSON_ROUTES = [
    pytest.param("/get_json", "", id="get_json"),
    pytest.param("/save_data_to_mysql", FAILED, id="save_data_to_mysql"),
]
LOGIN_ROUTES = ["/test_post", "/test_request"]
FORM_ROUTES = ["/register", *LOGIN_ROUTES]

# Words that only internals would put in a response (no payload below contains them).
LEAK_MARKERS = (
    "traceback",
    "sqlalchemy",
    "pymysql",
    "sqlite3",
    "mysqldb",
    "[sql:",
    "insert into",
    "integrityerror",
    "operationalerror",
    "dataerror",
    "programmingerror",
    "background on this error",
    "[parameters:",
    "select user.",
    "from user where",
    "site-packages",
    'file "/',
)


class CheckedClient(FlaskClient):
    """A test client that fails on any server error or leaked internals, in every test."""

    def open(self, *args: Any, **kwargs: Any) -> TestResponse:
        response = super().open(*args, **kwargs)
        # The app has read the body by now. Werkzeug's client closes the temporary file it
        # encodes a large multipart body into only when following redirects: close it here.
        response.request.input_stream.close()
        text = response.get_data(as_text=True)
        assert response.status_code < 500, f"{response.status_code}: {text[:500]}"
        leaked = [marker for marker in LEAK_MARKERS if marker in text.lower()]
        assert not leaked, f"response leaks {leaked}: {text[:500]}"
        return response


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    app.test_client_class = CheckedClient
    return app.test_client()


@pytest.fixture
def seeded(app: Flask) -> Iterator[None]:
    """One account that must survive every request of the test."""
    with app.app_context():
        users.register_user(SEED, PASSWORD)
    yield
    assert SEED in stored_usernames(app), "an existing account was lost"


def stored_usernames(app: Flask) -> list[str]:
    with app.app_context():
        rows = db.session.execute(sa.text("SELECT username FROM user ORDER BY id"))
        return [str(name) for name in rows.scalars()]


def stored_row(app: Flask, username: str) -> dict[str, Any]:
    with app.app_context():
        rows = db.session.execute(sa.text("SELECT * FROM user")).mappings().all()
    (row,) = [dict(row) for row in rows if row["username"] == username]
    return row


def assert_page(response: TestResponse, status: int, *messages: str) -> str:
    """An HTML page in the site layout with this status, showing each message (escaped)."""
    assert response.status_code == status, response.get_data(as_text=True)[:500]
    assert response.mimetype == "text/html"
    html = response.get_data(as_text=True)
    assert html.startswith("<!DOCTYPE html>")
    assert '<header class="site">' in html
    for message in messages:
        assert str(escape(message)) in html, f"page does not say {message!r}"
    return html


def assert_shows_text_escaped(html: str, text: str) -> None:
    """User text appears escaped: markup in it is never live."""
    assert str(escape(text)) in html
    if any(ch in text for ch in "<>\"'"):
        assert text not in html


def post_register(client: FlaskClient, auth: AuthActions, **fields: Any) -> TestResponse:
    return client.post("/register", data={"csrf_token": auth.token("/register"), **fields})


def post_login(client: FlaskClient, auth: AuthActions, route: str, **fields: Any) -> TestResponse:
    return client.post(route, data={"csrf_token": auth.token(), **fields})


# --- Usernames: the rules are 1-20 characters of any script, no control or invisible
# characters, no leading or trailing spaces, no ":". HTML and SQL are text like any other.
ALLOWED_NAMES = [
    pytest.param("张三", id="chinese"),
    pytest.param("😀", id="emoji"),
    pytest.param("👍🏽", id="emoji-skin-tone"),
    pytest.param("مرحبا بالعالم", id="arabic-rtl"),
    pytest.param("שלום", id="hebrew-rtl"),
    pytest.param("e\u0301", id="combining-accent"),
    pytest.param("Z\u0351\u0300a\u0336l\u0334go", id="zalgo"),
    pytest.param("<b>bold</b>", id="html-bold"),
    pytest.param("<script>x</script>", id="html-script"),
    pytest.param('" OR "1"="1', id="sql-or-double-quotes"),
    pytest.param("' OR 1=1 --", id="sql-or-single-quote"),
    pytest.param("admin'--", id="sql-comment"),
    pytest.param("1; DELETE FROM user", id="sql-delete"),
    pytest.param("{{7*7}}", id="template"),
    pytest.param("%s%n%x", id="format-string"),
    pytest.param("back\\slash`tick", id="backslash-backtick"),
    pytest.param("a" * 20, id="20-chars"),
    pytest.param("张" * 20, id="20-chinese"),
    pytest.param("😀" * 20, id="20-emoji"),
    pytest.param("\ufdfa" * 14, id="expands-to-252-when-normalised"),
]
REFUSED_NAMES = [  # (name, words the message must contain)
    pytest.param("a\x00b", "control", id="nul"),
    pytest.param("\x00", "control", id="nul-only"),
    pytest.param("a\tb", "control", id="tab"),
    pytest.param("a\nb", "control", id="newline"),
    pytest.param("\x1b[31mred", "control", id="ansi-escape"),
    pytest.param("abc\u202etxt", "invisible", id="rtl-override"),
    pytest.param("a\u200bb", "invisible", id="zero-width-space"),
    pytest.param(" leading", "spaces", id="leading-space"),
    pytest.param("trailing ", "spaces", id="trailing-space"),
    pytest.param("\u3000张三", "spaces", id="ideographic-space"),
    pytest.param("a:b", ":", id="colon"),
    pytest.param("\ufdfa" * 15, "too long", id="expands-past-255-when-normalised"),
]
LONG_NAMES = [  # over 20 characters: refused with "at most 20 characters"
    pytest.param("a" * 21, id="21-chars"),
    pytest.param("😀" * 21, id="21-emoji"),
    pytest.param("'; DROP TABLE user; --", id="sql-drop-table"),
    pytest.param("Robert'); DROP TABLE user;--", id="sql-bobby-tables"),
    pytest.param("<img src=x onerror=alert(1)>", id="html-onerror"),
    pytest.param("a" * 500_000, id="500-KB"),
]


def texts(params: list[Any]) -> list[Any]:
    """The first value of each ``pytest.param``, keeping its id."""
    return [pytest.param(param.values[0], id=param.id) for param in params]


ANY_TEXT = [*ALLOWED_NAMES, *texts(REFUSED_NAMES), *LONG_NAMES[2:5]]

# --- Passwords: 8-128 characters, any characters at all.
ALLOWED_PASSWORDS = [
    pytest.param("密码是张三的生日啊", id="chinese"),
    pytest.param("😀" * 8, id="emoji"),
    pytest.param("كلمة السر هنا", id="arabic-rtl"),
    pytest.param("e\u0301" * 4, id="combining"),
    pytest.param("<script>alert(1)</script>", id="html-script"),
    pytest.param("'; DROP TABLE user; --", id="sql-drop-table"),
    pytest.param('" OR "1"="1" --', id="sql-or"),
    pytest.param("pass\x00word", id="nul-inside"),
    pytest.param("\x00" * 8, id="nul-only"),
    pytest.param("tab\there\nnewline\r\n", id="control-characters"),
    pytest.param("  spaces at both ends  ", id="spaces"),
    pytest.param("{{7*7}}{{7*7}}", id="template"),
    pytest.param("p" * 8, id="8-chars"),
    pytest.param("p" * 128, id="128-chars"),
    pytest.param("😀" * 128, id="128-emoji"),
]
REFUSED_PASSWORDS = [  # (password, words the message must contain)
    pytest.param("p" * 7, "at least 8", id="7-chars"),
    pytest.param("😀" * 7, "at least 8", id="7-emoji"),
    pytest.param("p" * 129, "at most 128", id="129-chars"),
    pytest.param("p" * 500_000, "at most 128", id="500-KB"),
]


# ---------------------------------------------------------------------------------------------
# JSON routes: /get_json and /save_data_to_mysql


@pytest.mark.parametrize(("route", "prefix"), JSON_ROUTES)
@pytest.mark.parametrize(
    ("body", "content_type", "says"),
    [
        pytest.param(None, None, "has no body", id="no-body"),
        pytest.param(b"", "application/json", "has no body", id="empty-json-body"),
        pytest.param(b"{bad", "application/json", "not valid JSON", id="malformed"),
        pytest.param(
            b'{"username": "a", "password": "b",}',
            "application/json",
            "not valid JSON",
            id="trailing-comma",
        ),
        pytest.param(b'{"username": "a"', "application/json", "not valid JSON", id="truncated"),
        pytest.param(
            b"{'username': 'a', 'password': 'b'}",
            "application/json",
            "not valid JSON",
            id="single-quotes",
        ),
        pytest.param(b"  \r\n ", "application/json", "not valid JSON", id="whitespace-only"),
        pytest.param(
            b'{"username": "\xff\xfe", "password": "password1"}',
            "application/json",
            "UTF-8",
            id="invalid-utf8",
        ),
        pytest.param(
            '{"username": "José", "password": "password1"}'.encode("latin-1"),
            "application/json; charset=utf-8",
            "UTF-8",
            id="latin-1-sent-as-utf8",
        ),
        pytest.param(
            b"[" * 100_000 + b"]" * 100_000,
            "application/json",
            "nested too deeply",
            id="deeply-nested",
        ),
        pytest.param(
            b'{"username": ' + b"[" * 50_000 + b"]" * 50_000 + b', "password": "p"}',
            "application/json",
            "nested too deeply",
            id="deeply-nested-field",
        ),
    ],
)
def test_json_that_cannot_be_read_is_a_400_problem_saying_what_to_fix(
    app: Flask,
    client: FlaskClient,
    route: str,
    prefix: str,
    body: bytes | None,
    content_type: str | None,
    says: str,
) -> None:
    response = client.post(route, data=body, content_type=content_type)
    problem = assert_problem(response, 400, prefix)
    assert says in problem["detail"]
    assert user_count(app) == 0


@pytest.mark.parametrize(("route", "prefix"), JSON_ROUTES)
def test_a_number_too_long_for_python_is_refused_with_a_4xx_problem(
    app: Flask, client: FlaskClient, route: str, prefix: str
) -> None:
    """Python refuses integers over 4300 digits; the client still gets a problem, not a 500."""
    body = b'{"username": ' + b"1" * 5000 + b', "password": "password1"}'
    response = client.post(route, data=body, content_type="application/json")
    assert response.status_code in {400, 422}
    assert_problem(response, response.status_code, prefix)
    assert user_count(app) == 0


@pytest.mark.parametrize(("route", "prefix"), JSON_ROUTES)
@pytest.mark.parametrize(
    ("kwargs"),
    [
        pytest.param({"data": {"username": "张三", "password": PASSWORD}}, id="form-urlencoded"),
        pytest.param(
            {
                "data": {"username": "张三", "password": PASSWORD},
                "content_type": "multipart/form-data",
            },
            id="multipart",
        ),
        pytest.param(
            {
                "data": '{"username": "张三", "password": "correct horse"}',
                "content_type": "text/plain",
            },
            id="json-sent-as-text-plain",
        ),
        pytest.param(
            {"data": b'{"username": "a", "password": "correct horse"}'},
            id="json-without-content-type",
        ),
        pytest.param(
            {"data": "<user><username>a</username></user>", "content_type": "application/xml"},
            id="xml",
        ),
        pytest.param(
            {"data": "alert(1)", "content_type": "application/javascript"}, id="javascript"
        ),
        pytest.param(
            {"data": b"\x89PNG\r\n\x1a\n\x00\x00", "content_type": "image/png"}, id="binary"
        ),
    ],
)
def test_a_body_that_is_not_json_is_a_415_problem_naming_the_content_type(
    app: Flask, client: FlaskClient, route: str, prefix: str, kwargs: dict[str, Any]
) -> None:
    problem = assert_problem(client.post(route, **kwargs), 415, prefix)
    assert "Content-Type: application/json" in problem["detail"]
    assert user_count(app) == 0


@pytest.mark.parametrize(("route", "prefix"), JSON_ROUTES)
@pytest.mark.parametrize(
    ("body", "fields"),
    [
        pytest.param({}, {"username", "password"}, id="empty-object"),
        pytest.param({"username": "张三"}, {"password"}, id="no-password"),
        pytest.param({"password": PASSWORD}, {"username"}, id="no-username"),
        pytest.param(
            {"Username": "张三", "Password": PASSWORD},
            {"username", "password"},
            id="wrong-case-keys",
        ),
        pytest.param({"username": 42, "password": PASSWORD}, {"username"}, id="username-int"),
        pytest.param({"username": 4.2, "password": PASSWORD}, {"username"}, id="username-float"),
        pytest.param({"username": None, "password": PASSWORD}, {"username"}, id="username-null"),
        pytest.param({"username": True, "password": PASSWORD}, {"username"}, id="username-bool"),
        pytest.param(
            {"username": ["张三"], "password": PASSWORD}, {"username"}, id="username-list"
        ),
        pytest.param(
            {"username": {"name": "张三"}, "password": PASSWORD}, {"username"}, id="username-object"
        ),
        pytest.param({"username": "", "password": PASSWORD}, {"username"}, id="username-empty"),
        pytest.param({"username": "张三", "password": 12345678}, {"password"}, id="password-int"),
        pytest.param({"username": "张三", "password": None}, {"password"}, id="password-null"),
        pytest.param(
            {"username": "张三", "password": [PASSWORD]}, {"password"}, id="password-list"
        ),
        pytest.param({"username": "张三", "password": {}}, {"password"}, id="password-object"),
        pytest.param({"username": "张三", "password": ""}, {"password"}, id="password-empty"),
        pytest.param(
            {"username": None, "password": None}, {"username", "password"}, id="both-null"
        ),
    ],
)
def test_well_formed_json_with_invalid_fields_is_a_422_problem_naming_each_field(
    app: Flask, client: FlaskClient, route: str, prefix: str, body: Any, fields: set[str]
) -> None:
    problem = assert_problem(client.post(route, json=body), 422, prefix)
    assert {error["field"] for error in problem["errors"]} == fields
    for field in fields:
        assert field in problem["detail"]
    assert user_count(app) == 0


@pytest.mark.parametrize(("route", "prefix"), JSON_ROUTES)
@pytest.mark.parametrize(
    ("body", "field"),
    [
        pytest.param(
            b'{"username": "\\ud800", "password": "password1"}',
            "username",
            id="lone-surrogate-username",
        ),
        pytest.param(
            b'{"username": "ab", "password": "\\udfffpassword"}',
            "password",
            id="lone-surrogate-password",
        ),
        pytest.param(b'{"username": NaN, "password": "password1"}', "username", id="nan"),
        pytest.param(b'{"username": 1e999, "password": "password1"}', "username", id="infinity"),
    ],
)
def test_json_values_that_are_not_text_are_a_422_problem(
    app: Flask, client: FlaskClient, route: str, prefix: str, body: bytes, field: str
) -> None:
    response = client.post(route, data=body, content_type="application/json")
    problem = assert_problem(response, 422, prefix)
    assert [error["field"] for error in problem["errors"]] == [field]
    assert user_count(app) == 0


@pytest.mark.parametrize(("route", "prefix"), JSON_ROUTES)
@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"[]", id="empty-array"),
        pytest.param(b'["\xe5\xbc\xa0\xe4\xb8\x89", "correct horse battery"]', id="array"),
        pytest.param(
            b'[{"username": "a", "password": "correct horse battery"}]', id="array-of-objects"
        ),
        pytest.param(b'"zhangsan"', id="string"),
        pytest.param(b"42", id="number"),
        pytest.param(b"true", id="boolean"),
        pytest.param(b"null", id="null"),
    ],
)
def test_a_json_body_that_is_not_an_object_is_a_422_problem(
    app: Flask, client: FlaskClient, route: str, prefix: str, body: bytes
) -> None:
    response = client.post(route, data=body, content_type="application/json")
    problem = assert_problem(response, 422, prefix)
    assert "must be a JSON object" in problem["detail"]
    assert '{"username"' in problem["detail"], "an example of what to send"
    assert user_count(app) == 0


JSON_HEAD, JSON_TAIL = b'{"username": "', b'", "password": "correct horse battery"}'


def _json_of_size(size: int) -> bytes:
    """A valid credentials document of exactly ``size`` bytes."""
    return JSON_HEAD + b"a" * (size - len(JSON_HEAD) - len(JSON_TAIL)) + JSON_TAIL


@pytest.mark.parametrize(("route", "prefix"), JSON_ROUTES)
@pytest.mark.parametrize("size", [BODY_LIMIT + 1, TWENTY_MB], ids=["limit+1", "20MB"])
@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_body_over_the_limit_is_a_413_problem_naming_the_limit(
    app: Flask, client: FlaskClient, route: str, prefix: str, size: int, chunked: bool
) -> None:
    body = _json_of_size(size)
    if chunked:  # no Content-Length; servers such as granian mark the stream as terminated
        response = client.post(
            route,
            input_stream=io.BytesIO(body),
            headers={"Transfer-Encoding": "chunked", "Content-Type": "application/json"},
            environ_overrides={"wsgi.input_terminated": True},
        )
    else:
        response = client.post(route, data=body, content_type="application/json")
    problem = assert_problem(response, 413, prefix)
    assert "too large" in problem["detail"]
    assert str(BODY_LIMIT) in problem["detail"]
    assert user_count(app) == 0


def test_a_body_exactly_at_the_limit_is_read(client: FlaskClient) -> None:
    response = client.post(
        "/get_json", data=_json_of_size(BODY_LIMIT), content_type="application/json"
    )
    assert response.status_code == 200
    name = "a" * (BODY_LIMIT - len(JSON_HEAD) - len(JSON_TAIL))
    assert response.get_data(as_text=True) == "Data received. username:" + name


def test_a_chunked_body_within_the_limit_is_read(app: Flask, client: FlaskClient) -> None:
    response = client.post(
        "/save_data_to_mysql",
        input_stream=io.BytesIO('{"username": "张三", "password": "correct horse"}'.encode()),
        headers={"Transfer-Encoding": "chunked", "Content-Type": "application/json"},
        environ_overrides={"wsgi.input_terminated": True},
    )
    assert response.get_data(as_text=True) == SUCCEEDED
    assert stored_usernames(app) == ["张三"]


@pytest.mark.parametrize(
    ("route", "method", "allowed", "prefix"),
    [
        pytest.param("/save_data_to_mysql", "GET", "POST", FAILED, id="GET-save"),
        pytest.param("/save_data_to_mysql", "PUT", "POST", FAILED, id="PUT-save"),
        pytest.param("/save_data_to_mysql", "PATCH", "POST", FAILED, id="PATCH-save"),
        pytest.param("/save_data_to_mysql", "DELETE", "POST", FAILED, id="DELETE-save"),
        pytest.param("/get_json", "GET", "POST", "", id="GET-get_json"),
        pytest.param("/get_json", "PUT", "POST", "", id="PUT-get_json"),
        pytest.param("/get_json", "DELETE", "POST", "", id="DELETE-get_json"),
        pytest.param("/response_json", "POST", "GET", "", id="POST-response_json"),
        pytest.param("/response_json", "DELETE", "GET", "", id="DELETE-response_json"),
    ],
)
def test_a_wrong_method_on_a_json_route_is_a_405_problem(
    app: Flask, client: FlaskClient, route: str, method: str, allowed: str, prefix: str
) -> None:
    response = client.open(route, method=method, json={"username": "张三", "password": PASSWORD})
    problem = assert_problem(response, 405, prefix)
    assert "does not accept" in problem["detail"]
    assert allowed in response.headers["Allow"]
    assert user_count(app) == 0


@pytest.mark.parametrize(
    "extra",
    [
        pytest.param({"email": "zhangsan@example.com"}, id="email"),
        pytest.param({"id": 999, "is_admin": True}, id="id-and-admin"),
        pytest.param({"password_hash": "$argon2id$forged"}, id="password-hash"),
        pytest.param({"email_verified_at": "1970-01-01", "created_at": "1970-01-01"}, id="columns"),
        pytest.param({"<script>": "x", "'; DROP TABLE user; --": 1}, id="hostile-keys"),
        pytest.param({"": None, "nested": {"a": [1, 2, {"b": None}]}}, id="odd-values"),
    ],
)
def test_unknown_json_fields_are_ignored_and_cannot_set_columns(
    app: Flask, client: FlaskClient, extra: dict[str, Any]
) -> None:
    body = {"username": "张三", "password": PASSWORD, **extra}
    echo = client.post("/get_json", json=body)
    assert echo.status_code == 200
    assert echo.get_data(as_text=True) == "Data received. username:张三"
    saved = client.post("/save_data_to_mysql", json=body)
    assert saved.status_code == 200
    assert saved.get_data(as_text=True) == SUCCEEDED
    row = stored_row(app, "张三")
    assert row["id"] == 1
    assert not row["is_admin"]
    assert row["email"] is None and row["email_verified_at"] is None
    assert str(row["created_at"])[:4] != "1970"
    assert row["password_hash"].startswith("$argon2id$v=")
    assert user_count(app) == 1


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json; charset=utf-8",
        "application/json;charset=UTF-8",
        "Application/JSON",
        "application/json; charset=utf-8; boundary=ignored",
    ],
)
def test_json_content_type_with_parameters_works(
    app: Flask, client: FlaskClient, content_type: str
) -> None:
    body = '{"username": "张三", "password": "correct horse battery"}'.encode()
    echo = client.post("/get_json", data=body, content_type=content_type)
    assert echo.get_data(as_text=True) == "Data received. username:张三"
    saved = client.post("/save_data_to_mysql", data=body, content_type=content_type)
    assert saved.get_data(as_text=True) == SUCCEEDED
    assert stored_usernames(app) == ["张三"]


@pytest.mark.parametrize("name", ALLOWED_NAMES)
def test_save_data_to_mysql_stores_an_allowed_username_exactly_and_commits_it(
    app: Flask, client: FlaskClient, auth: AuthActions, seeded: None, name: str
) -> None:
    response = client.post("/save_data_to_mysql", json={"username": name, "password": PASSWORD})
    assert response.status_code == 200
    assert response.get_data(as_text=True) == SUCCEEDED
    assert stored_usernames(app) == [SEED, name]
    assert auth.login(name).status_code == 302, "the stored account works"


@pytest.mark.parametrize(("name", "says"), REFUSED_NAMES)
def test_save_data_to_mysql_refuses_a_username_against_the_rules_and_writes_nothing(
    app: Flask, client: FlaskClient, seeded: None, name: str, says: str
) -> None:
    response = client.post("/save_data_to_mysql", json={"username": name, "password": PASSWORD})
    problem = assert_problem(response, 422, FAILED)
    assert says in problem["detail"]
    assert {error["field"] for error in problem["errors"]} == {"username"}
    assert stored_usernames(app) == [SEED]


@pytest.mark.parametrize("name", LONG_NAMES)
def test_save_data_to_mysql_refuses_an_overlong_username_and_writes_nothing(
    app: Flask, client: FlaskClient, seeded: None, name: str
) -> None:
    response = client.post("/save_data_to_mysql", json={"username": name, "password": PASSWORD})
    problem = assert_problem(response, 422, FAILED)
    assert problem["detail"] == FAILED + "Username must be at most 20 characters."
    assert name not in response.get_data(as_text=True)
    assert stored_usernames(app) == [SEED]


@pytest.mark.real_hashing
@pytest.mark.parametrize("password", ALLOWED_PASSWORDS)
def test_save_data_to_mysql_accepts_any_characters_in_a_password_and_hashes_it_exactly(
    app: Flask, client: FlaskClient, auth: AuthActions, seeded: None, password: str
) -> None:
    response = client.post("/save_data_to_mysql", json={"username": "张三", "password": password})
    assert response.get_data(as_text=True) == SUCCEEDED
    row = stored_row(app, "张三")
    assert row["password_hash"].startswith("$argon2id$")
    assert password not in str(row)
    assert auth.login("张三", password).status_code == 302, "the exact password logs in"
    auth.logout()
    near_miss = password[:-1] if password.strip("\x00") else "\x00" * 7
    assert auth.login("张三", near_miss).status_code == 200, "a different password does not"
    assert user_count(app) == 2


@pytest.mark.parametrize("password", ["pass\x00word", "\x00" * 8, "password\x00\x00"])
def test_a_nul_byte_does_not_cut_a_password_short(
    client: FlaskClient, auth: AuthActions, password: str
) -> None:
    """Hashing sees every character: the part before a NUL is not the password."""
    saved = client.post("/save_data_to_mysql", json={"username": "张三", "password": password})
    assert saved.status_code == 200
    for prefix in {password.split("\x00")[0], password.rstrip("\x00")} - {"", password}:
        assert auth.login("张三", prefix).status_code == 200  # the form again: wrong password
        assert not is_logged_in(client)
    assert auth.login("张三", password).status_code == 302


@pytest.mark.parametrize(("password", "says"), REFUSED_PASSWORDS)
def test_save_data_to_mysql_refuses_a_password_of_the_wrong_length(
    app: Flask, client: FlaskClient, seeded: None, password: str, says: str
) -> None:
    response = client.post("/save_data_to_mysql", json={"username": "张三", "password": password})
    assert response.status_code == 422
    problem = assert_problem(response, 422, FAILED)
    assert says in problem["detail"]
    assert {error["field"] for error in problem["errors"]} == {"password"}
    assert stored_usernames(app) == [SEED]


@pytest.mark.parametrize(
    ("first", "second"),
    [
        pytest.param("张三", "张三", id="same"),
        pytest.param("ZhangSan", "zhangsan", id="case"),
        pytest.param("ZhangSan", "ｚｈａｎｇｓａｎ", id="full-width"),
        pytest.param("caf\u00e9", "cafe\u0301", id="composed-vs-combining"),
        pytest.param("Straße", "STRASSE", id="case-folding"),
        pytest.param("<b>x</b>", "<B>X</B>", id="html"),
        pytest.param('" OR "1"="1', '" or "1"="1', id="sql"),
    ],
)
def test_a_duplicate_username_is_409_in_both_routes_and_writes_nothing(
    app: Flask, client: FlaskClient, auth: AuthActions, first: str, second: str
) -> None:
    saved = client.post("/save_data_to_mysql", json={"username": first, "password": PASSWORD})
    assert saved.status_code == 200
    problem = assert_problem(
        client.post("/save_data_to_mysql", json={"username": second, "password": PASSWORD}),
        409,
        FAILED,
    )
    assert problem["detail"] == FAILED + "Username already exists."
    page = auth.register(second)
    html = assert_page(page, 409, "Username already exists.")
    assert 'action="/register"' in html
    assert_shows_text_escaped(html, second)
    assert stored_usernames(app) == [first]


@pytest.mark.parametrize("name", [*ANY_TEXT, *LONG_NAMES[-1:]])
def test_get_json_echoes_any_username_exactly_escaped_and_stores_nothing(
    app: Flask, client: FlaskClient, name: str
) -> None:
    response = client.post("/get_json", json={"username": name, "password": "p"})
    assert response.status_code == 200
    assert response.get_data(as_text=True) == "Data received. username:" + escape(name)
    assert user_count(app) == 0


@pytest.mark.parametrize("password", [*ALLOWED_PASSWORDS, *texts(REFUSED_PASSWORDS)])
def test_get_json_never_echoes_the_password(app: Flask, client: FlaskClient, password: str) -> None:
    response = client.post("/get_json", json={"username": "张三", "password": password})
    assert response.status_code == 200
    assert response.get_data(as_text=True) == "Data received. username:张三"
    assert user_count(app) == 0


@pytest.mark.parametrize("name", [*ANY_TEXT, *LONG_NAMES[-1:]])
def test_test_get_echoes_any_name_exactly_escaped(client: FlaskClient, name: str) -> None:
    response = client.get("/test_get", query_string={"user_name": name})
    assert response.status_code == 200
    assert response.get_data(as_text=True) == "Hello," + escape(name)


@pytest.mark.parametrize(
    "query", ["", "?user_name=", "?user_name", "?name=张三", "?USER_NAME=张三", "?user_name=&x=1"]
)
def test_test_get_without_a_name_is_a_bare_400_text_naming_the_parameter(
    client: FlaskClient, query: str
) -> None:
    response = client.get("/test_get" + query)
    assert response.status_code == 400
    text = response.get_data(as_text=True)
    assert text == "Missing query parameter user_name, e.g. /test_get?user_name=张三"


@pytest.mark.parametrize("raw", ["%FF", "%ED%A0%80", "%C3%28", "%E5%BC"])
def test_test_get_with_invalid_utf8_in_the_query_greets_without_failing(
    client: FlaskClient, raw: str
) -> None:
    response = client.get("/test_get?user_name=" + raw)
    assert response.status_code == 200
    assert response.get_data(as_text=True).startswith("Hello,")


# ---------------------------------------------------------------------------------------------
# Pages: /register, and the log-in form behind /test_post and /test_request


@pytest.mark.parametrize(
    ("fields", "messages"),
    [
        pytest.param(
            {},
            ["Choose a username.", "Choose a password.", "Type the password again."],
            id="nothing",
        ),
        pytest.param(
            {"username": "", "password": "", "confirm": ""},
            ["Choose a username.", "Choose a password.", "Type the password again."],
            id="all-empty",
        ),
        pytest.param(
            {"password": PASSWORD, "confirm": PASSWORD}, ["Choose a username."], id="no-username"
        ),
        pytest.param(
            {"username": "   ", "password": PASSWORD, "confirm": PASSWORD},
            ["Choose a username."],
            id="blank-username",
        ),
        pytest.param(
            {"username": "张三", "confirm": PASSWORD}, ["Choose a password."], id="no-password"
        ),
        pytest.param(
            {"username": "张三", "password": PASSWORD},
            ["Type the password again."],
            id="no-confirm",
        ),
    ],
)
def test_register_with_missing_fields_is_400_with_the_form_and_a_message(
    app: Flask, client: FlaskClient, auth: AuthActions, fields: dict[str, str], messages: list[str]
) -> None:
    html = assert_page(post_register(client, auth, **fields), 400, *messages)
    assert 'action="/register"' in html
    assert user_count(app) == 0


@pytest.mark.parametrize("name", ALLOWED_NAMES)
def test_an_allowed_username_round_trips_through_register_login_and_success_escaped(
    app: Flask, client: FlaskClient, auth: AuthActions, seeded: None, name: str
) -> None:
    registered = auth.register(name)
    assert registered.status_code == 302
    assert registered.headers["Location"] == "/login"
    assert stored_usernames(app) == [SEED, name]
    assert auth.login(name).status_code == 302
    html = client.get("/success").get_data(as_text=True)
    assert_shows_text_escaped(html, "Hello," + name)


@pytest.mark.parametrize(("name", "says"), REFUSED_NAMES)
def test_register_refuses_a_username_against_the_rules_with_422_and_the_form(
    app: Flask, client: FlaskClient, auth: AuthActions, seeded: None, name: str, says: str
) -> None:
    html = assert_page(auth.register(name), 422)
    assert 'action="/register"' in html
    (error,) = [line for line in html.splitlines() if 'class="error"' in line]
    assert says in error
    assert stored_usernames(app) == [SEED]


@pytest.mark.parametrize(
    ("username", "password", "says"),
    [
        pytest.param("a" * 21, PASSWORD, "20 characters", id="username-21-chars"),
        pytest.param("😀" * 21, PASSWORD, "20 characters", id="username-21-emoji"),
        pytest.param("'; DROP TABLE user; --", PASSWORD, "20 characters", id="username-sql"),
        pytest.param("a" * 500_000, PASSWORD, "20 characters", id="username-500-KB"),
        pytest.param("张三", "p" * 129, "128 characters", id="password-129-chars"),
        pytest.param("张三", "p" * 7, "at least 8 characters", id="password-7-chars"),
    ],
)
def test_register_refuses_a_field_of_the_wrong_length_with_a_message_and_writes_nothing(
    app: Flask, client: FlaskClient, auth: AuthActions, username: str, password: str, says: str
) -> None:
    response = auth.register(username, password)
    assert response.status_code in {400, 422}  # the status itself: see the test below
    html = assert_page(response, response.status_code, says)
    assert 'action="/register"' in html
    assert password not in html
    assert user_count(app) == 0


@pytest.mark.parametrize(
    ("username", "password"),
    [
        pytest.param("a" * 21, PASSWORD, id="username-21-chars"),
        pytest.param("a" * 500_000, PASSWORD, id="username-500-KB"),
        pytest.param("张三", "p" * 129, id="password-129-chars"),
    ],
)
def test_register_answers_an_overlong_field_with_422_like_every_other_rule(
    client: FlaskClient, auth: AuthActions, username: str, password: str
) -> None:
    assert auth.register(username, password).status_code == 422


@pytest.mark.parametrize("password", ALLOWED_PASSWORDS)
def test_register_accepts_any_characters_in_a_password_and_it_logs_in_exactly(
    app: Flask, client: FlaskClient, auth: AuthActions, password: str
) -> None:
    assert auth.register("张三", password).status_code == 302
    assert password not in str(stored_row(app, "张三"))
    assert auth.login("张三", password).status_code == 302
    assert is_logged_in(client)


@pytest.mark.parametrize(
    "confirm",
    [
        PASSWORD + " ",
        PASSWORD.upper(),
        "<script>x</script>",
        "'; DROP TABLE user; --",
        "\x00" + PASSWORD[1:],
    ],
)
def test_register_with_a_different_confirmation_says_so_and_writes_nothing(
    app: Flask, client: FlaskClient, auth: AuthActions, confirm: str
) -> None:
    response = post_register(client, auth, username="张三", password=PASSWORD, confirm=confirm)
    assert response.status_code in {400, 422}  # the docs name no status for this one
    html = assert_page(response, response.status_code, "The two passwords differ.")
    assert confirm not in html
    assert user_count(app) == 0


@pytest.mark.parametrize("route", LOGIN_ROUTES)
@pytest.mark.parametrize(
    ("fields", "messages"),
    [
        pytest.param({}, ["Enter your username.", "Enter your password."], id="nothing"),
        pytest.param(
            {"username": "", "password": ""},
            ["Enter your username.", "Enter your password."],
            id="all-empty",
        ),
        pytest.param({"password": PASSWORD}, ["Enter your username."], id="no-username"),
        pytest.param(
            {"username": " \t ", "password": PASSWORD},
            ["Enter your username."],
            id="blank-username",
        ),
        pytest.param({"username": "张三"}, ["Enter your password."], id="no-password"),
    ],
)
def test_login_with_missing_fields_is_400_with_the_form_and_a_message(
    app: Flask,
    client: FlaskClient,
    auth: AuthActions,
    seeded: None,
    route: str,
    fields: dict[str, str],
    messages: list[str],
) -> None:
    html = assert_page(post_login(client, auth, route, **fields), 400, *messages)
    assert 'action="/test_post"' in html
    assert not is_logged_in(client)
    assert user_count(app) == 1


@pytest.mark.parametrize("route", LOGIN_ROUTES)
@pytest.mark.parametrize("name", [*ANY_TEXT, *LONG_NAMES])
def test_login_with_any_unknown_username_shows_the_form_again_escaped(
    app: Flask, client: FlaskClient, auth: AuthActions, seeded: None, route: str, name: str
) -> None:
    html = assert_page(
        post_login(client, auth, route, username=name, password=PASSWORD), 200, LOGIN_FAILED
    )
    assert 'action="/test_post"' in html
    assert_shows_text_escaped(html, name)
    assert not is_logged_in(client)
    assert stored_usernames(app) == [SEED]


@pytest.mark.parametrize("route", LOGIN_ROUTES)
@pytest.mark.parametrize("password", [*ALLOWED_PASSWORDS, *texts(REFUSED_PASSWORDS)])
def test_login_with_a_wrong_password_of_any_kind_never_echoes_it(
    app: Flask, client: FlaskClient, auth: AuthActions, seeded: None, route: str, password: str
) -> None:
    html = assert_page(
        post_login(client, auth, route, username=SEED, password=password), 200, LOGIN_FAILED
    )
    assert password not in html
    assert not is_logged_in(client)
    assert user_count(app) == 1


@pytest.mark.parametrize("route", LOGIN_ROUTES)
@pytest.mark.parametrize(
    "target",
    [
        "javascript:alert(1)",
        "//evil.example/",
        "https://evil.example/",
        "/\\evil.example",
        "\\\\evil.example",
        "/success\r\nSet-Cookie: stolen=1",
        "/success\x00",
        "/\x7f",
        "/\u2028evil",
        "'; DROP TABLE user; --",
        "<script>alert(1)</script>",
        "",
    ],
)
def test_login_never_follows_a_next_target_off_this_site(
    app: Flask, client: FlaskClient, auth: AuthActions, seeded: None, route: str, target: str
) -> None:
    response = post_login(client, auth, route, username=SEED, password=PASSWORD, next=target)
    assert response.status_code == 302
    location = response.headers["Location"]
    assert location.startswith("/") and not location.startswith("//")
    assert not any(ch in location for ch in "\r\n\x00\\<>")
    assert "evil.example" not in location or location.startswith("/%")
    assert is_logged_in(client)
    assert user_count(app) == 1


@pytest.mark.parametrize(
    ("route", "page"), [("/register", "/register"), *[(route, "/login") for route in LOGIN_ROUTES]]
)
@pytest.mark.parametrize(
    "token",
    [
        pytest.param(None, id="none"),
        pytest.param("", id="empty"),
        pytest.param("garbage", id="garbage"),
        pytest.param("<script>alert(1)</script>", id="html"),
        pytest.param("'; DROP TABLE user; --", id="sql"),
        pytest.param("\x00", id="nul"),
        pytest.param("张三" * 1000, id="long-unicode"),
        pytest.param("other-session", id="token-of-another-session"),
    ],
)
def test_a_form_post_without_its_csrf_token_is_400_and_changes_nothing(
    app: Flask,
    client: FlaskClient,
    auth: AuthActions,
    seeded: None,
    route: str,
    page: str,
    token: str | None,
) -> None:
    auth.token(page)  # this browser has a session with a token of its own
    if token == "other-session":
        token = AuthActions(app.test_client()).token(page)
    fields = {"username": "张三", "password": PASSWORD, "confirm": PASSWORD}
    if route != "/register":
        fields["username"] = SEED
    if token is not None:
        fields["csrf_token"] = token
    html = assert_page(client.post(route, data=fields), 400, CSRF_MESSAGE, "GET /login")
    if token:
        assert token not in html
    assert not is_logged_in(client)
    assert stored_usernames(app) == [SEED]


def test_logout_without_its_csrf_token_is_400_and_keeps_the_session(
    client: FlaskClient, auth: AuthActions, seeded: None
) -> None:
    auth.login(SEED)
    assert_page(client.post("/logout"), 400, CSRF_MESSAGE)
    assert_page(client.post("/logout", data={"csrf_token": "forged"}), 400, CSRF_MESSAGE)
    assert is_logged_in(client)


@pytest.mark.parametrize("route", FORM_ROUTES)
@pytest.mark.parametrize("with_token", [True, False], ids=["with-token", "without-token"])
@pytest.mark.parametrize("encoding", ["urlencoded", "multipart"])
def test_a_20_MB_form_is_a_413_page_naming_the_limit(
    app: Flask, client: FlaskClient, auth: AuthActions, route: str, with_token: bool, encoding: str
) -> None:
    fields = {"username": "a" * TWENTY_MB, "password": PASSWORD, "confirm": PASSWORD}
    if with_token:
        fields["csrf_token"] = auth.token("/register")
    kwargs = {"content_type": "multipart/form-data"} if encoding == "multipart" else {}
    html = assert_page(client.post(route, data=fields, **kwargs), 413, "too large")
    assert f"{BODY_LIMIT} bytes" in html
    assert user_count(app) == 0


@pytest.mark.parametrize("route", FORM_ROUTES)
@pytest.mark.parametrize(
    ("fields", "says"),
    [
        pytest.param({"username": "a" * 600_000}, "500000 bytes", id="field-over-500-KB"),
        pytest.param({f"field{i}": "x" for i in range(1200)}, "1000 fields", id="1200-fields"),
    ],
)
def test_a_multipart_form_within_the_body_limit_but_over_a_form_limit_is_a_413_saying_which(
    app: Flask,
    client: FlaskClient,
    auth: AuthActions,
    route: str,
    fields: dict[str, str],
    says: str,
) -> None:
    data = {"csrf_token": auth.token("/register"), "password": PASSWORD, **fields}
    response = client.post(route, data=data, content_type="multipart/form-data")
    assert response.request.content_length is not None
    assert response.request.content_length < BODY_LIMIT
    html = assert_page(response, 413, says)
    assert str(BODY_LIMIT) not in html, "the body was within the body limit"
    assert user_count(app) == 0


def _chunked_form(client: FlaskClient, route: str, body: bytes, content_type: str) -> TestResponse:
    return client.post(
        route,
        input_stream=io.BytesIO(body),
        headers={"Transfer-Encoding": "chunked", "Content-Type": content_type},
        environ_overrides={"wsgi.input_terminated": True},
    )


@pytest.mark.parametrize("route", FORM_ROUTES)
def test_a_chunked_multipart_form_over_the_limit_is_a_413_page(
    app: Flask, client: FlaskClient, route: str
) -> None:
    body = (
        b'--B\r\nContent-Disposition: form-data; name="username"\r\n\r\n'
        + b"a" * TWENTY_MB
        + b"\r\n--B--\r\n"
    )
    response = _chunked_form(client, route, body, "multipart/form-data; boundary=B")
    assert_page(response, 413, "too large")
    assert user_count(app) == 0


@pytest.mark.parametrize("route", FORM_ROUTES)
def test_a_chunked_urlencoded_form_over_the_limit_is_a_413_page(
    app: Flask, client: FlaskClient, auth: AuthActions, route: str
) -> None:
    token = auth.token("/register").encode()
    body = b"csrf_token=" + token + b"&password=x&username=" + b"a" * TWENTY_MB
    response = _chunked_form(client, route, body, "application/x-www-form-urlencoded")
    assert_page(response, 413, "too large")


@pytest.mark.parametrize(
    ("route", "field"),
    [("/register", "confirm"), ("/register", "csrf_token"), ("/test_post", "csrf_token")],
)
def test_a_file_in_a_form_field_that_is_handled_is_refused_with_400(
    app: Flask, client: FlaskClient, auth: AuthActions, seeded: None, route: str, field: str
) -> None:
    fields: dict[str, Any] = {
        "username": "张三",
        "password": PASSWORD,
        "confirm": PASSWORD,
        "csrf_token": auth.token("/register"),
    }
    fields[field] = (io.BytesIO(b"not a text field"), "field.txt")
    response = client.post(route, data=fields, content_type="multipart/form-data")
    assert_page(response, 400)
    assert stored_usernames(app) == [SEED]


@pytest.mark.parametrize(
    ("route", "field"),
    [
        ("/register", "username"),
        ("/register", "password"),
        ("/test_post", "username"),
        ("/test_post", "password"),
        ("/test_request", "username"),
    ],
)
def test_a_file_in_a_text_form_field_is_refused_with_a_4xx_page(
    app: Flask, client: FlaskClient, auth: AuthActions, seeded: None, route: str, field: str
) -> None:
    fields: dict[str, Any] = {
        "username": SEED,
        "password": PASSWORD,
        "confirm": PASSWORD,
        "csrf_token": auth.token("/register"),
    }
    fields[field] = (io.BytesIO(b"not a text field"), "field.txt")
    response = client.post(route, data=fields, content_type="multipart/form-data")
    assert 400 <= response.status_code < 500
    assert stored_usernames(app) == [SEED]


def test_a_file_sent_as_next_is_ignored_and_never_followed(
    client: FlaskClient, auth: AuthActions, seeded: None
) -> None:
    fields: dict[str, Any] = {
        "username": SEED,
        "password": PASSWORD,
        "csrf_token": auth.token(),
        "next": (io.BytesIO(b"https://evil.example/"), "next.txt"),
    }
    response = client.post("/test_post", data=fields, content_type="multipart/form-data")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/success")


@pytest.mark.parametrize("route", FORM_ROUTES)
@pytest.mark.parametrize(
    "raw_username",
    [b"%FF%FE", b"%ED%A0%80", b"%C3%28", b"\xff\xfe", b"\xc3\x28abc"],
    ids=["pct-ff-fe", "pct-surrogate", "pct-bad-continuation", "raw-ff-fe", "raw-bad-byte"],
)
def test_invalid_utf8_in_a_form_never_fails_and_never_stores_broken_text(
    app: Flask, client: FlaskClient, auth: AuthActions, route: str, raw_username: bytes
) -> None:
    token = auth.token("/register").encode()
    body = (
        b"csrf_token="
        + token
        + b"&username="
        + raw_username
        + b"&password=correct+horse&confirm=correct+horse"
    )
    response = client.post(route, data=body, content_type="application/x-www-form-urlencoded")
    assert response.status_code in {200, 302, 400, 422}
    for name in stored_usernames(app):
        name.encode("utf-8")  # raises on a lone surrogate


# ---------------------------------------------------------------------------------------------
# Methods and paths no route has


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("PUT", "/test_get", "GET"),
        ("POST", "/test_get", "GET"),
        ("DELETE", "/test_get", "GET"),
        ("POST", "/", "GET"),
        ("PUT", "/register", "POST"),
        ("DELETE", "/register", "POST"),
        ("PATCH", "/test_post", "POST"),
        ("GET", "/test_post", "POST"),
        ("PUT", "/test_request", "POST"),
        ("DELETE", "/test_request", "GET"),
        ("POST", "/login", "GET"),
        ("POST", "/success", "GET"),
        ("GET", "/logout", "POST"),
    ],
)
def test_a_wrong_method_on_a_page_is_a_405_page_with_allow(
    app: Flask, client: FlaskClient, auth: AuthActions, method: str, path: str, allowed: str
) -> None:
    data = {
        "username": "张三",
        "password": PASSWORD,
        "confirm": PASSWORD,
        "csrf_token": auth.token("/register"),
    }
    response = client.open(path, method=method, data=data)
    assert_page(response, 405, "This address does not accept that method.")
    assert allowed in response.headers["Allow"].split(", ")
    assert method not in response.headers["Allow"].split(", ")
    assert user_count(app) == 0


@pytest.mark.parametrize(
    "path",
    [
        "/nope",
        "/test_get/extra",
        "/save_data_to_mysql/",
        "/get_json/x",
        "/static/nope.gif",
        "/static/../tutorial.py",
        "/%FF",
        "/张三",
        "/<script>alert(1)</script>",
        "/'; DROP TABLE user; --",
        "/" + "a" * 10_000,
    ],
)
def test_an_unknown_path_is_a_404_page(client: FlaskClient, path: str) -> None:
    html = assert_page(client.get(path), 404, "There is nothing at this address.")
    assert "<script>alert" not in html


def test_an_unknown_api_path_is_a_404_problem(client: FlaskClient) -> None:
    assert_problem(client.get("/api/v1/nope"), 404)
