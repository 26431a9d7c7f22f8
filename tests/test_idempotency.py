"""``Idempotency-Key`` on ``POST /api/v1/users`` and ``POST /api/v1/tokens``.

A client that lost an answer (a 502 from a load balancer, a timeout) sends the same request
again with the same key and gets the first answer, never a second account or token.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from tests.helpers import PASSWORD, TOKENS, ApiActions, AppBuilder, assert_problem, basic, bearer
from userhub.extensions import db
from userhub.models import IdempotencyRecord, utcnow

USERS = "/api/v1/users"
KEY = "3f1c0a52-6a8e-4d2b-9d3e-1b2c3d4e5f60"
NEW_USER = {"username": "张三", "password": PASSWORD, "email": "zhangsan@example.com"}


def keyed(key: str = KEY, **headers: str) -> dict[str, str]:
    return {"Idempotency-Key": key, **headers}


def test_a_retried_registration_gets_the_first_answer_and_makes_one_account(
    api: ApiActions,
) -> None:
    first = api.client.post(USERS, json=NEW_USER, headers=keyed())
    again = api.client.post(USERS, json=NEW_USER, headers=keyed())
    assert first.status_code == again.status_code == 201
    assert again.get_json() == first.get_json()
    assert again.headers["Location"] == first.headers["Location"]
    assert again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert api.count("user") == 1


def test_without_a_key_a_second_registration_is_a_conflict(api: ApiActions) -> None:
    assert api.client.post(USERS, json=NEW_USER).status_code == 201
    assert_problem(api.client.post(USERS, json=NEW_USER), 409)


def test_the_same_json_written_differently_is_the_same_request(api: ApiActions) -> None:
    first = api.client.post(USERS, json=NEW_USER, headers=keyed())
    reordered = json.dumps(dict(reversed(list(NEW_USER.items()))), indent=2)
    again = api.client.post(USERS, data=reordered, content_type="application/json", headers=keyed())
    assert again.status_code == 201
    assert again.get_json() == first.get_json()
    assert api.count("user") == 1


def test_a_key_reused_for_another_request_is_refused(api: ApiActions) -> None:
    assert api.client.post(USERS, json=NEW_USER, headers=keyed()).status_code == 201
    other = {**NEW_USER, "username": "李四", "email": None}
    problem = assert_problem(api.client.post(USERS, json=other, headers=keyed()), 422)
    assert "Idempotency-Key" in problem["detail"]
    assert api.count("user") == 1


def test_a_failed_request_is_not_kept_so_its_corrected_retry_runs(api: ApiActions) -> None:
    short = {**NEW_USER, "password": "short"}
    assert_problem(api.client.post(USERS, json=short, headers=keyed()), 422)
    assert api.count("idempotency_record") == 0
    # The same key with the same (still wrong) request runs again, and fails again.
    assert_problem(api.client.post(USERS, json=short, headers=keyed()), 422)
    assert api.client.post(USERS, json=NEW_USER, headers=keyed("another key")).status_code == 201


def test_a_key_belongs_to_one_operation(api: ApiActions) -> None:
    assert api.client.post(USERS, json=NEW_USER, headers=keyed()).status_code == 201
    credentials = {"username": "张三", "password": PASSWORD}
    token = api.client.post(TOKENS, json=credentials, headers=keyed())
    assert token.status_code == 201
    assert "Idempotent-Replayed" not in token.headers


@pytest.mark.parametrize("key", ["", " ", "k" * 256, "clé", "tab\there", "del\x7f"])
def test_a_malformed_key_is_refused_before_anything_is_written(api: ApiActions, key: str) -> None:
    problem = assert_problem(api.client.post(USERS, json=NEW_USER, headers=keyed(key)), 400)
    assert "Idempotency-Key" in problem["detail"]
    assert api.count("user") == 0


@pytest.mark.parametrize("key", ["k" * 255, "a key with spaces inside", "x"])
def test_keys_of_printable_ascii_are_accepted(api: ApiActions, key: str) -> None:
    assert api.client.post(USERS, json=NEW_USER, headers=keyed(key)).status_code == 201
    assert api.client.post(USERS, json=NEW_USER, headers=keyed(key)).status_code == 201
    assert api.count("user") == 1


def test_a_retried_log_in_gets_the_same_token_once(api: ApiActions) -> None:
    api.register()
    credentials = {"username": "张三", "password": PASSWORD}
    first = api.client.post(TOKENS, json=credentials, headers=keyed())
    again = api.client.post(TOKENS, json=credentials, headers=keyed())
    assert first.status_code == again.status_code == 201
    assert again.get_json() == first.get_json()
    assert again.headers["Cache-Control"] == "no-store"
    assert api.count("api_token") == 1
    token = again.get_json()["token"]
    assert api.client.get("/api/v1/users/me", headers=bearer(token)).status_code == 200


def test_a_retried_log_in_still_needs_the_right_password(api: ApiActions) -> None:
    api.register()
    credentials = {"username": "张三", "password": PASSWORD}
    assert api.client.post(TOKENS, json=credentials, headers=keyed()).status_code == 201
    wrong = {"username": "张三", "password": "not the password"}
    assert_problem(api.client.post(TOKENS, json=wrong, headers=keyed()), 401)


def test_http_basic_log_ins_are_recognised_by_their_credentials(api: ApiActions) -> None:
    api.register()
    api.register("李四")
    first = api.client.post(TOKENS, headers=keyed(**basic("张三", PASSWORD)))
    again = api.client.post(TOKENS, headers=keyed(**basic("张三", PASSWORD)))
    assert again.get_json() == first.get_json()
    other = api.client.post(TOKENS, headers=keyed(**basic("李四", PASSWORD)))
    assert_problem(other, 422)
    assert api.count("api_token") == 1


def test_nothing_sent_or_answered_is_stored_in_the_clear(api: ApiActions) -> None:
    """The record holds no key, password or token: a copy of the table grants nothing."""
    api.register()
    credentials = {"username": "张三", "password": PASSWORD}
    token = api.client.post(TOKENS, json=credentials, headers=keyed()).get_json()["token"]
    (row,) = api.rows("idempotency_record")
    stored = b"".join(
        value if isinstance(value, bytes) else str(value).encode() for value in row.values()
    )
    for secret in (KEY, PASSWORD, token, "张三"):
        assert secret.encode() not in stored


def _age_records(app: Flask, age: timedelta) -> None:
    with app.app_context():
        db.session.execute(sa.update(IdempotencyRecord).values(created_at=utcnow() - age))
        db.session.commit()


def test_keys_are_kept_24_hours(api: ApiActions) -> None:
    api.register()
    credentials = {"username": "张三", "password": PASSWORD}
    first = api.client.post(TOKENS, json=credentials, headers=keyed()).get_json()["token"]
    _age_records(api.app, timedelta(hours=23, minutes=59))
    again = api.client.post(TOKENS, json=credentials, headers=keyed()).get_json()["token"]
    assert again == first
    _age_records(api.app, timedelta(hours=24, seconds=1))
    later = api.client.post(TOKENS, json=credentials, headers=keyed())
    assert later.status_code == 201
    assert "Idempotent-Replayed" not in later.headers
    assert later.get_json()["token"] != first
    assert api.count("idempotency_record") == 1  # the expired one was replaced


def test_expired_records_are_swept(api: ApiActions) -> None:
    api.register()
    credentials = {"username": "张三", "password": PASSWORD}
    for key in ("a", "b", "c"):
        api.client.post(TOKENS, json=credentials, headers=keyed(key))
    _age_records(api.app, timedelta(hours=25))
    api.client.post(TOKENS, json=credentials, headers=keyed("d"))
    assert api.count("idempotency_record") == 1


def _at_once(app: Flask, count: int, send: Callable[[Any], Any]) -> list[Any]:
    """``send(client)`` from ``count`` threads released together; their responses."""
    barrier = threading.Barrier(count)
    responses: list[Any] = [None] * count

    def run(index: int) -> None:
        client = app.test_client()
        barrier.wait()
        responses[index] = send(client)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return responses


def test_twin_registrations_at_once_make_one_account_and_one_answer(api: ApiActions) -> None:
    responses = _at_once(api.app, 6, lambda c: c.post(USERS, json=NEW_USER, headers=keyed()))
    assert [r.status_code for r in responses] == [201] * 6, [r.get_json() for r in responses]
    assert len({json.dumps(r.get_json(), sort_keys=True) for r in responses}) == 1
    assert api.count("user") == 1


def test_twin_log_ins_at_once_get_one_token(api: ApiActions) -> None:
    api.register()
    credentials = {"username": "张三", "password": PASSWORD}
    responses = _at_once(api.app, 6, lambda c: c.post(TOKENS, json=credentials, headers=keyed()))
    assert [r.status_code for r in responses] == [201] * 6, [r.get_json() for r in responses]
    assert len({r.get_json()["token"] for r in responses}) == 1
    assert api.count("api_token") == 1


def test_the_openapi_document_describes_the_header(api: ApiActions) -> None:
    paths = api.client.get("/openapi.json").get_json()["paths"]
    for path in (USERS, TOKENS):
        operation = paths[path]["post"]
        (parameter,) = [p for p in operation["parameters"] if p["name"] == "Idempotency-Key"]
        assert parameter["in"] == "header"
        assert parameter["required"] is False
        assert parameter["schema"]["maxLength"] == 255
        assert "Idempotent-Replayed" in operation["responses"]["201"]["headers"]
        assert "different request" in operation["responses"]["422"]["description"]


def test_a_malformed_key_is_refused_before_the_body_is_checked(api: ApiActions) -> None:
    problem = assert_problem(api.client.post(USERS, json={"username": 5}, headers=keyed("")), 400)
    assert "Idempotency-Key" in problem["detail"]


def test_a_malformed_key_is_refused_before_the_password_is_checked(api: ApiActions) -> None:
    wrong = {"username": "nobody", "password": "wrong password"}
    problem = assert_problem(api.client.post(TOKENS, json=wrong, headers=keyed("")), 400)
    assert "Idempotency-Key" in problem["detail"]


def test_a_registration_retry_ignores_the_authorization_header(api: ApiActions) -> None:
    """Registering needs no credentials, so a retry that carries other ones is the same request."""
    first = api.client.post(USERS, json=NEW_USER, headers=keyed())
    again = api.client.post(USERS, json=NEW_USER, headers=keyed(**bearer("uh_something")))
    assert again.status_code == 201
    assert again.get_json() == first.get_json()


def test_a_damaged_record_is_refused_not_trusted(api: ApiActions) -> None:
    """A changed byte of the kept answer, or of its status, fails the seal: 422, never a 500."""
    assert api.client.post(USERS, json=NEW_USER, headers=keyed()).status_code == 201
    with api.app.app_context():
        db.session.execute(sa.update(IdempotencyRecord).values(status_code=200))
        db.session.commit()
    problem = assert_problem(api.client.post(USERS, json=NEW_USER, headers=keyed()), 422)
    assert "cannot be read back" in problem["detail"]


def test_a_new_secret_key_forgets_the_kept_keys(api: ApiActions, build_app: AppBuilder) -> None:
    assert api.client.post(USERS, json=NEW_USER, headers=keyed()).status_code == 201
    rotated = build_app(api.app.config["SQLALCHEMY_DATABASE_URI"], SECRET_KEY="another-secret-" * 4)
    retry = rotated.test_client().post(USERS, json=NEW_USER, headers=keyed())
    assert_problem(retry, 422)
    assert api.count("user") == 1
