"""``/api/v1/tokens``: a username and password (JSON or HTTP Basic) for a Bearer token.

Tokens are 256 random bits behind a ``uh_`` prefix, stored only as a SHA-256, expiring, and
revocable one by one.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from tests.helpers import (
    ME,
    PASSWORD,
    TOKENS,
    Account,
    ApiActions,
    AppBuilder,
    assert_problem,
    basic,
    bearer,
    error_fields,
)
from userhub.extensions import db
from userhub.models import ApiToken

TOKEN_FORMAT = re.compile(r"uh_[A-Za-z0-9_-]{43}")  # 43 base64url characters: 258 bits
DAY = timedelta(hours=24)


def by_json(client: FlaskClient, username: str, password: str) -> Any:
    return client.post(TOKENS, json={"username": username, "password": password})


def by_basic(client: FlaskClient, username: str, password: str) -> Any:
    return client.post(TOKENS, headers=basic(username, password))


LOG_INS = [pytest.param(by_json, id="json"), pytest.param(by_basic, id="basic")]
LogIn = Callable[[FlaskClient, str, str], Any]


def expires_at(response: Any) -> datetime:
    value: str = response.get_json()["expires_at"]
    assert value.endswith("Z"), value
    return datetime.fromisoformat(value)


def near(moment: datetime, expected: datetime) -> bool:
    return abs(moment - expected) < timedelta(seconds=5)


@pytest.fixture
def zhang(api: ApiActions) -> None:
    assert api.register("张三").status_code == 201


# --- POST /api/v1/tokens -----------------------------------------------------------------------


@pytest.mark.parametrize("log_in", LOG_INS)
def test_credentials_get_a_token_that_is_never_cached(
    client: FlaskClient, zhang: None, log_in: LogIn
) -> None:
    response = log_in(client, "张三", PASSWORD)  # Basic: the name is sent as UTF-8
    assert response.status_code == 201
    assert response.headers["Cache-Control"] == "no-store"
    assert set(response.get_json()) == {"token", "expires_at"}
    me = client.get(ME, headers=bearer(response.get_json()["token"]))
    assert me.status_code == 200
    assert me.get_json()["username"] == "张三"


def test_the_username_is_matched_ignoring_case(client: FlaskClient, api: ApiActions) -> None:
    assert api.register("Zhang").status_code == 201
    response = client.post(TOKENS, json={"username": "ZHANG", "password": PASSWORD})
    assert response.status_code == 201


def test_a_token_has_the_prefix_and_256_random_bits(api: ApiActions, zhang: None) -> None:
    first, second = api.token(), api.token()
    assert TOKEN_FORMAT.fullmatch(first), first
    assert TOKEN_FORMAT.fullmatch(second), second
    assert first != second


def test_the_database_holds_only_the_sha256_of_a_token(api: ApiActions, zhang: None) -> None:
    token = api.token()
    (row,) = api.rows("api_token")
    assert row["token_hash"] == hashlib.sha256(token.encode()).hexdigest()
    secret = token.removeprefix("uh_")
    assert not [value for value in row.values() if secret in str(value)]


def test_a_token_expires_24_hours_after_issue(client: FlaskClient, zhang: None) -> None:
    response = client.post(TOKENS, json={"username": "张三", "password": PASSWORD})
    assert near(expires_at(response), datetime.now(UTC) + DAY)


def test_the_lifetime_follows_the_setting(app: Flask, client: FlaskClient, zhang: None) -> None:
    app.config["USERHUB_TOKEN_TTL_SECONDS"] = 90
    response = client.post(TOKENS, json={"username": "张三", "password": PASSWORD})
    assert near(expires_at(response), datetime.now(UTC) + timedelta(seconds=90))


def test_the_lifetime_can_be_set_when_the_app_is_built(
    build_app: AppBuilder, database_url: str
) -> None:
    configured = build_app(database_url, USERHUB_TOKEN_TTL_SECONDS=3600)
    client = configured.test_client()
    assert ApiActions(configured, client).register("张三").status_code == 201
    response = client.post(TOKENS, json={"username": "张三", "password": PASSWORD})
    assert near(expires_at(response), datetime.now(UTC) + timedelta(hours=1))


def test_an_expired_token_is_refused(app: Flask, client: FlaskClient, member: Account) -> None:
    assert client.get(ME, headers=member.headers).status_code == 200
    with app.app_context():
        past = datetime.now(UTC).replace(tzinfo=None) - timedelta(minutes=1)
        db.session.execute(sa.update(ApiToken).values(expires_at=past))
        db.session.commit()
    assert_problem(client.get(ME, headers=member.headers), 401)


@pytest.mark.parametrize("log_in", LOG_INS)
def test_a_wrong_password_and_an_unknown_user_get_the_same_401(
    client: FlaskClient, zhang: None, log_in: LogIn
) -> None:
    wrong = log_in(client, "张三", "not the password")
    unknown = log_in(client, "nobody", PASSWORD)
    assert assert_problem(wrong, 401) == assert_problem(unknown, 401)
    assert wrong.headers["WWW-Authenticate"] == unknown.headers["WWW-Authenticate"]
    assert wrong.headers["WWW-Authenticate"].startswith("Basic")


def test_no_body_and_no_authorization_is_401_with_a_basic_challenge(
    client: FlaskClient, api: ApiActions
) -> None:
    response = client.post(TOKENS)
    assert_problem(response, 401)
    assert response.headers["WWW-Authenticate"].startswith("Basic")
    assert api.count("api_token") == 0


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"username": "张三"}, "password"),
        ({"username": 5, "password": PASSWORD}, "username"),
        ({"username": "张三", "password": PASSWORD, "remember": True}, "remember"),
    ],
)
def test_malformed_credentials_are_422_naming_the_field(
    client: FlaskClient, api: ApiActions, zhang: None, body: dict[str, Any], field: str
) -> None:
    problem = assert_problem(client.post(TOKENS, json=body), 422)
    assert field in error_fields(problem)
    assert api.count("api_token") == 0


# --- Using and revoking tokens -----------------------------------------------------------------


@pytest.mark.parametrize(
    "credentials",
    [
        pytest.param("garbage", id="garbage"),
        pytest.param("uh_" + "A" * 43, id="well-formed-unknown"),
        pytest.param("uh_", id="prefix-only"),
        pytest.param("x" * 2000, id="very-long"),
        pytest.param("uh_ré'; DROP TABLE user;--", id="sql-and-non-ascii"),
    ],
)
def test_a_bad_token_is_401_with_a_bearer_challenge(
    client: FlaskClient, member: Account, credentials: str
) -> None:
    response = client.get(ME, headers=bearer(credentials))
    assert_problem(response, 401)
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_a_token_without_its_prefix_is_refused(client: FlaskClient, member: Account) -> None:
    assert_problem(client.get(ME, headers=bearer(member.token.removeprefix("uh_"))), 401)


def test_revoking_a_token_is_204_and_it_stops_working(
    client: FlaskClient, api: ApiActions, member: Account
) -> None:
    response = client.delete(TOKENS, headers=member.headers)
    assert response.status_code == 204
    assert response.get_data() == b""
    assert "Content-Type" not in response.headers
    assert_problem(client.get(ME, headers=member.headers), 401)
    assert_problem(client.delete(TOKENS, headers=member.headers), 401)
    assert api.count("api_token") == 0


def test_revoking_one_token_leaves_the_users_other_tokens_working(
    client: FlaskClient, api: ApiActions, member: Account
) -> None:
    other = api.token("member")
    assert client.delete(TOKENS, headers=member.headers).status_code == 204
    assert client.get(ME, headers=bearer(other)).status_code == 200


def test_revoking_without_a_token_is_401(client: FlaskClient, member: Account) -> None:
    assert_problem(client.delete(TOKENS), 401)
    assert client.get(ME, headers=member.headers).status_code == 200
