"""Lean hot paths: a request does only the work its answer needs.

The tutorial's GET routes and the pages touch no database unless they show who is logged in;
a token-authenticated API read costs exactly one query; and responses that do not depend on
the session cookie do not say ``Vary: Cookie`` (which would make shared caches keep one copy
per visitor).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from flask import Flask, Response
from flask.json.provider import DefaultJSONProvider
from flask.testing import FlaskClient

from tests.helpers import Account, AuthActions
from userhub.extensions import db
from userhub.models import ApiToken, BrowserSession, utcnow
from userhub.web.fastjson import OrjsonProvider

NO_DATA_ROUTES = ["/", "/test_get?user_name=%E5%BC%A0%E4%B8%89", "/response_json", "/login"]


@contextmanager
def statements(app: Flask) -> Iterator[list[str]]:
    """Every SQL statement the app sends while the block runs."""
    seen: list[str] = []

    def record(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        seen.append(statement)

    with app.app_context():
        engine = db.engine
    sa.event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        sa.event.remove(engine, "before_cursor_execute", record)


@pytest.mark.parametrize("path", NO_DATA_ROUTES)
def test_routes_that_show_no_data_send_no_query(app: Flask, client: FlaskClient, path: str) -> None:
    with statements(app) as sent:
        response = client.get(path)
    assert response.status_code == 200
    assert sent == []


@pytest.mark.parametrize("path", ["/response_json", "/test_get?user_name=x"])
def test_json_and_text_routes_do_not_vary_on_the_cookie_even_when_logged_in(
    app: Flask, client: FlaskClient, auth: AuthActions, path: str
) -> None:
    auth.register()
    auth.login()
    with statements(app) as sent:
        response = client.get(path)
    assert response.status_code == 200
    assert "Cookie" not in response.vary
    assert "Set-Cookie" not in response.headers
    assert sent == []  # the session's user is never loaded


def test_a_page_that_shows_the_user_loads_them_once_and_varies_on_the_cookie(
    app: Flask, client: FlaskClient, auth: AuthActions
) -> None:
    auth.register()
    auth.login()
    with statements(app) as sent:
        response = client.get("/")
    assert "张三" in response.get_data(as_text=True)
    assert "Cookie" in response.vary
    assert len(sent) == 1


def test_a_token_read_is_one_query_for_the_token_and_its_user(
    app: Flask, client: FlaskClient, member: Account
) -> None:
    client.get("/api/v1/users/me", headers=member.headers)  # its first use writes "last used"
    with statements(app) as sent:
        response = client.get("/api/v1/users/me", headers=member.headers)
    assert response.get_json()["username"] == "member"
    assert len(sent) == 1


def test_a_tokens_first_use_in_an_interval_adds_one_conditional_update(
    app: Flask, client: FlaskClient, member: Account
) -> None:
    """ "Last used" is written once per interval, by one UPDATE that nothing else follows: the
    request neither reads the token again nor leaves a write pending (a lock held until the
    request ends). (A log-in token's first use is its log-in: it starts with it written.)"""
    with app.app_context():  # the token was last used an interval ago
        long_ago = utcnow() - timedelta(seconds=app.config["USERHUB_LAST_USED_INTERVAL_SECONDS"])
        db.session.execute(sa.update(ApiToken).values(last_used_at=long_ago))
        db.session.commit()
    with statements(app) as sent:
        response = client.get("/api/v1/users/me", headers=member.headers)
    assert response.get_json()["username"] == "member"
    assert [statement.split()[0] for statement in sent] == ["SELECT", "UPDATE"]
    assert "last_used_at IS NULL OR" in sent[1]
    with app.app_context():
        last_used = db.session.scalar(sa.select(ApiToken.last_used_at))
        assert last_used is not None and last_used > long_ago


def test_a_page_view_writes_last_seen_once_per_interval(
    app: Flask, client: FlaskClient, auth: AuthActions
) -> None:
    auth.register()
    auth.login()
    with app.app_context():  # the session was last seen an interval ago
        long_ago = utcnow() - timedelta(seconds=app.config["USERHUB_LAST_USED_INTERVAL_SECONDS"])
        db.session.execute(sa.update(BrowserSession).values(last_seen_at=long_ago))
        db.session.commit()
    with statements(app) as sent:
        assert "张三" in client.get("/").get_data(as_text=True)
    assert [statement.split()[0] for statement in sent] == ["SELECT", "UPDATE"]
    with statements(app) as sent:
        assert "张三" in client.get("/").get_data(as_text=True)
    assert len(sent) == 1
    with app.app_context():
        seen = db.session.scalar(sa.select(BrowserSession.last_seen_at))
        assert seen is not None and seen > long_ago


def test_response_json_is_byte_for_byte_what_flask_would_send(client: FlaskClient) -> None:
    response = client.get("/response_json")
    assert response.data == b'{"message":"Success","data":{"id":1,"name":"Zhang San"}}\n'
    assert response.mimetype == "application/json"


@pytest.mark.parametrize(
    "value",
    [
        {"message": "Success", "data": {"id": 1, "name": "Zhang San"}},
        {"z": 1, "a": [1.5, None, True], "名字": "张三 <b>&amp;</b>"},
        {"when": datetime(2026, 12, 1, 5, 30, tzinfo=UTC)},
        ["\u2028", "emoji 🙂", 2**53],
    ],
)
def test_fast_json_writes_what_flasks_own_provider_writes(app: Flask, value: object) -> None:
    flask_json = DefaultJSONProvider(app)
    flask_json.sort_keys = False
    flask_json.ensure_ascii = False
    fast = OrjsonProvider(app)
    assert json.loads(fast.dumps(value)) == json.loads(flask_json.dumps(value))
    with app.test_request_context():
        fast_response, flask_response = fast.response(value), flask_json.response(value)
        assert isinstance(fast_response, Response) and isinstance(flask_response, Response)
        assert fast_response.data == flask_response.data
