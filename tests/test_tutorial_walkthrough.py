"""The tutorial, replayed in its own order against a live server (§3 → §4 → §5, then §3's
log-in again), under the production server and Flask's development server, on SQLite and on
MySQL. Each step checks the answer the tutorial shows, or userhub's documented deviation.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa

from tests.helpers import own_database
from tests.live_server import live_server

PASSWORD = "12345678"  # the shortest password the policy accepts


@pytest.fixture(params=["production", "development"])
def server_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def live_database(backend: str, tmp_path: Path) -> str:
    return own_database(backend, tmp_path, "live")


@pytest.fixture
def base_url(server_kind: str, live_database: str, tmp_path: Path) -> Iterator[str]:
    with live_server(server_kind, live_database, tmp_path) as base:
        yield base


def form_token(session: requests.Session, base: str) -> str:
    html = session.get(base + "/login", timeout=10).text
    match = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html)
    assert match
    return match.group(1)


def submit_login(
    session: requests.Session, base: str, password: str, path: str = "/test_post"
) -> requests.Response:
    """Post the log-in form as a browser does: with the token from /login, no redirects."""
    return session.post(
        base + path,
        data={"username": "张三", "password": password, "csrf_token": form_token(session, base)},
        timeout=10,
        allow_redirects=False,
    )


def test_the_tutorial_from_section_3_to_5(base_url: str, live_database: str) -> None:
    browser = requests.Session()

    # §3 — the templated home page and its image from /static/.
    home = browser.get(base_url + "/", timeout=10)
    assert home.status_code == 200
    assert "<title>Hello World! Hello Flask!</title>" in home.text
    assert "This is my first flask app！" in home.text
    image_path = re.search(r'<img src="([^"]+)"', home.text)
    assert image_path and image_path.group(1).startswith("/static/")
    image = browser.get(base_url + image_path.group(1), timeout=10)
    assert image.status_code == 200 and image.headers["Content-Type"] == "image/gif"

    # §3 — URL parameters: http://127.0.0.1:5000/test_get?user_name=张三
    greeting = browser.get(base_url + "/test_get?user_name=张三", timeout=10)
    assert (greeting.status_code, greeting.text) == (200, "Hello,张三")

    # §3 — the log-in form posts to /test_post. Deviation: an unknown user is not let in.
    login_page = browser.get(base_url + "/login", timeout=10)
    assert login_page.status_code == 200 and 'action="/test_post"' in login_page.text
    refused = submit_login(browser, base_url, PASSWORD)
    assert refused.status_code == 200
    assert "Invalid username or password." in refused.text and "/register" in refused.text
    # Deviation: /success greets only a logged-in user.
    assert (
        browser.get(base_url + "/success?user_name=张三", timeout=10, allow_redirects=False)
        .headers["Location"]
        .startswith("/login")
    )

    # §3 — one route, two methods: GET /test_request goes back to the log-in form.
    back = browser.get(base_url + "/test_request", timeout=10, allow_redirects=False)
    assert (back.status_code, back.headers["Location"]) == (302, "/login")

    # §3/§4 — JSON in, JSON out, sent as Postman sends them (no cookies, no token).
    postman = requests.Session()
    received = postman.post(
        base_url + "/get_json", json={"username": "张三", "password": PASSWORD}, timeout=10
    )
    assert (received.status_code, received.text) == (200, "Data received. username:张三")
    assert PASSWORD not in received.text  # deviation: the password is not echoed
    document = postman.get(base_url + "/response_json", timeout=10)
    assert document.json() == {"message": "Success", "data": {"id": 1, "name": "Zhang San"}}
    params = postman.get(base_url + "/test_get", params={"user_name": "张三"}, timeout=10)
    assert params.text == "Hello,张三"

    # §5 — save a user "into MySQL". Deviations: the second time is a 409; short passwords 422.
    body = {"username": "张三", "password": PASSWORD}
    saved = postman.post(base_url + "/save_data_to_mysql", json=body, timeout=10)
    assert (saved.status_code, saved.text) == (
        200,
        "Commit Status:Succeeded, Message:Data inserted successfully.",
    )
    again = postman.post(base_url + "/save_data_to_mysql", json=body, timeout=10)
    assert again.status_code == 409
    assert again.json()["detail"] == "Commit Status:Failed, Message:Username already exists."
    short = postman.post(
        base_url + "/save_data_to_mysql", json={"username": "李四", "password": "1234"}, timeout=10
    )
    assert short.status_code == 422 and short.json()["detail"].startswith("Commit Status:Failed")

    # What "Navicat" would show: one row, a hash, no plaintext.
    engine = sa.create_engine(live_database)
    with engine.connect() as connection:
        rows = connection.execute(sa.text("SELECT * FROM user")).mappings().all()
    engine.dispose()
    assert [row["username"] for row in rows] == ["张三"]
    assert rows[0]["password_hash"].startswith("$argon2id$")
    assert all(PASSWORD not in str(value) for value in rows[0].values())

    # §3 again — now the log-in works, through /test_post and through /test_request (POST).
    for path in ("/test_post", "/test_request"):
        browser = requests.Session()
        response = submit_login(browser, base_url, PASSWORD, path)
        assert response.status_code == 302
        assert response.headers["Location"] == "/success?user_name=%E5%BC%A0%E4%B8%89"
        success = browser.get(base_url + response.headers["Location"], timeout=10)
        assert success.status_code == 200 and "Hello,张三" in success.text
        # Deviation: the name in the URL is ignored; the session says who you are.
        assert "Hello,张三" in browser.get(base_url + "/success?user_name=eve", timeout=10).text

    # Deviations: a wrong password never logs in; a form without its CSRF token is refused.
    stranger = requests.Session()
    wrong = submit_login(stranger, base_url, "wrong-password")
    assert wrong.status_code == 200 and "Invalid username or password." in wrong.text
    forged = requests.post(
        base_url + "/test_post",
        data={"username": "张三", "password": PASSWORD},
        timeout=10,
        allow_redirects=False,
    )
    assert forged.status_code == 400
