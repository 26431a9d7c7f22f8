"""Unexpected failures: a 500 without internals, a lost database as 503, both logged."""

from __future__ import annotations

import logging
import runpy
from pathlib import Path

import pytest
from flask import Flask

from tests.helpers import (
    PASSWORD,
    SECRET_DETAIL,
    UNREACHABLE_MYSQL,
    AppBuilder,
    get_a_crashing_route,
)


def test_an_unexpected_exception_is_a_500_page_without_internals(
    app: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    response = get_a_crashing_route(app, "/explode", caplog)
    html = response.get_data(as_text=True)
    assert response.status_code == 500
    assert "<h1>Server error</h1>" in html and "please try again later" in html
    assert SECRET_DETAIL not in html and "Traceback" not in html
    assert SECRET_DETAIL in caplog.text


@pytest.fixture
def app_without_database(build_app: AppBuilder) -> Flask:
    return build_app(UNREACHABLE_MYSQL)


def test_json_route_answers_503_when_the_database_is_unreachable(
    app_without_database: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    client = app_without_database.test_client()
    with caplog.at_level(logging.ERROR, logger="userhub"):
        response = client.post(
            "/save_data_to_mysql", json={"username": "张三", "password": PASSWORD}
        )
    body = response.get_data(as_text=True)
    assert response.status_code == 503
    assert response.mimetype == "application/problem+json"
    assert response.headers["Retry-After"] == "5"
    assert response.get_json()["detail"].startswith("Commit Status:Failed, Message:")
    assert "pymysql" not in body.lower() and "127.0.0.1" not in body
    assert "database unavailable" in caplog.text


def test_pages_answer_503_when_the_database_is_unreachable(app_without_database: Flask) -> None:
    client = app_without_database.test_client()
    response = client.get("/login")
    token = response.get_data(as_text=True).split('name="csrf_token" type="hidden" value="')[1]
    response = client.post(
        "/test_post",
        data={"username": "张三", "password": PASSWORD, "csrf_token": token.split('"')[0]},
    )
    assert response.status_code == 503
    assert "database cannot be reached" in response.get_data(as_text=True)


def test_routes_that_need_no_database_work_without_one(app_without_database: Flask) -> None:
    client = app_without_database.test_client()
    assert client.get("/").status_code == 200
    assert client.get("/test_get?user_name=张三").status_code == 200
    assert client.get("/response_json").status_code == 200
    response = client.post("/get_json", json={"username": "张三", "password": "x"})
    assert response.status_code == 200


def test_app_py_builds_the_app_for_pycharm(isolated_environment: Path) -> None:
    namespace = runpy.run_path(str(Path(__file__).resolve().parents[1] / "app.py"))
    assert isinstance(namespace["app"], Flask)
    assert "tutorial.index" in namespace["app"].view_functions
