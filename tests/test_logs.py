"""The per-request log line: its fields, the request id, the user, and that it reaches any
handler an operator configures (here pytest's)."""

from __future__ import annotations

import logging
import re

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.helpers import SECRET_DETAIL, Account, get_a_crashing_route


def access_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "userhub.access"]


def test_a_request_is_logged_once_with_its_fields_and_the_clients_id(
    client: FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="userhub"):
        response = client.get("/test_get?user_name=secret", headers={"X-Request-ID": "abc-1"})
    assert response.headers["X-Request-ID"] == "abc-1"
    [record] = access_records(caplog)
    fields = {k: getattr(record, k) for k in ("method", "path", "status", "user_id", "request_id")}
    assert fields == {
        "method": "GET",
        "path": "/test_get",
        "status": 200,
        "user_id": None,
        "request_id": "abc-1",
    }
    assert "secret" not in caplog.text


@pytest.mark.parametrize("sent", ["", "has space", "x" * 129, "<script>"])
def test_an_unusable_request_id_is_replaced_by_a_new_one(client: FlaskClient, sent: str) -> None:
    first = client.get("/response_json", headers={"X-Request-ID": sent})
    second = client.get("/response_json", headers={"X-Request-ID": sent})
    ids = [first.headers["X-Request-ID"], second.headers["X-Request-ID"]]
    assert all(re.fullmatch(r"[0-9a-f]{16}", i) for i in ids)
    assert ids[0] != ids[1]


def test_a_token_request_is_logged_with_its_user(
    client: FlaskClient, member: Account, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="userhub"):
        client.get("/api/v1/users/me", headers=member.headers)
    [record] = access_records(caplog)
    assert record.user_id == member.id  # type: ignore[attr-defined]
    assert record.status == 200  # type: ignore[attr-defined]


def test_an_unexpected_error_is_logged_with_the_id_the_client_got(
    app: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    response = get_a_crashing_route(app, "/boom", caplog)
    assert response.status_code == 500
    [error] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert error.request_id == response.headers["X-Request-ID"]  # type: ignore[attr-defined]
    body = response.get_data(as_text=True)
    assert SECRET_DETAIL not in body
    assert f"Reference: {error.request_id}." in body  # type: ignore[attr-defined]
