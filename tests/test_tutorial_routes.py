"""Every row of the tutorial contract (the README's route table), sent as the tutorial sends it."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from tests.helpers import PASSWORD, AuthActions
from userhub.extensions import db

TUTORIAL_JSON = {"message": "Success", "data": {"id": 1, "name": "Zhang San"}}


def test_home_page_shows_title_content_and_an_image_from_static(client: FlaskClient) -> None:
    page = client.get("/")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "<title>Hello World! Hello Flask!</title>" in html
    assert "<h1>Hello World! Hello Flask!</h1>" in html
    assert "This is my first flask app！" in html
    assert 'src="/static/hello-flask.gif"' in html
    with client.get("/static/hello-flask.gif") as image:
        assert image.status_code == 200
        assert image.mimetype == "image/gif"
        assert image.data.startswith(b"GIF89a")
        assert image.data.count(b"\x21\xf9\x04") > 1, "animated: several frames"


@pytest.mark.parametrize(
    ("name", "body"),
    [
        ("张三", "Hello,张三"),
        ("Zhang San", "Hello,Zhang San"),
        ("<script>alert(1)</script>", "Hello,&lt;script&gt;alert(1)&lt;/script&gt;"),
        ("' OR 1=1 --", "Hello,&#39; OR 1=1 --"),
    ],
)
def test_test_get_greets_the_query_parameter_escaped(
    client: FlaskClient, name: str, body: str
) -> None:
    response = client.get("/test_get", query_string={"user_name": name})
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    assert response.get_data(as_text=True) == body


def test_test_get_accepts_the_raw_utf8_url_a_browser_sends(client: FlaskClient) -> None:
    response = client.get("/test_get?user_name=%E5%BC%A0%E4%B8%89")
    assert response.get_data(as_text=True) == "Hello,张三"


@pytest.mark.parametrize("query", ["", "?user_name=", "?name=张三"])
def test_test_get_without_a_name_is_a_plain_400_that_says_what_to_send(
    client: FlaskClient, query: str
) -> None:
    response = client.get("/test_get" + query)
    text = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "user_name" in text
    assert "<html" not in text


def test_login_page_has_the_tutorial_form_with_a_csrf_token(client: FlaskClient) -> None:
    html = client.get("/login").get_data(as_text=True)
    assert '<form action="/test_post" method="post">' in html
    assert 'name="username"' in html
    assert 'name="password" required type="password"' in html or 'type="password"' in html
    assert 'name="csrf_token"' in html
    assert 'href="/register"' in html


def test_test_post_logs_in_and_redirects_to_success(client: FlaskClient, auth: AuthActions) -> None:
    auth.register()
    response = auth.login()
    assert response.status_code == 302
    assert response.headers["Location"] == "/success?user_name=%E5%BC%A0%E4%B8%89"
    page = client.get("/success?user_name=张三")
    assert page.status_code == 200
    assert "Hello,张三" in page.get_data(as_text=True)


def test_login_is_case_insensitive_for_the_username(client: FlaskClient, auth: AuthActions) -> None:
    auth.register("Alice")
    response = auth.login("alice")
    assert response.status_code == 302
    assert "Hello,Alice" in client.get("/success").get_data(as_text=True)


def test_success_greets_the_session_user_not_the_url(
    client: FlaskClient, auth: AuthActions
) -> None:
    auth.register("张三")
    auth.login("张三")
    html = client.get("/success?user_name=admin").get_data(as_text=True)
    assert "Hello,张三" in html
    assert "Hello,admin" not in html


def test_success_without_a_session_redirects_to_login(client: FlaskClient) -> None:
    response = client.get("/success?user_name=张三")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login")


def test_test_request_get_redirects_to_the_login_form(client: FlaskClient) -> None:
    response = client.get("/test_request")
    assert response.status_code == 302
    assert response.headers["Location"] == "/login"


def test_test_request_post_logs_in_like_test_post(client: FlaskClient, auth: AuthActions) -> None:
    auth.register()
    response = auth.login(path="/test_request")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/success?user_name=")
    assert "Hello,张三" in client.get("/success").get_data(as_text=True)


def test_get_json_answers_with_the_username_and_never_the_password(client: FlaskClient) -> None:
    response = client.post("/get_json", json={"username": "张三", "password": "s3cret-pw"})
    assert response.status_code == 200
    assert response.get_data(as_text=True) == "Data received. username:张三"
    assert "s3cret-pw" not in response.get_data(as_text=True)


def test_get_json_escapes_html_in_the_username(client: FlaskClient) -> None:
    response = client.post("/get_json", json={"username": "<b>x</b>", "password": "p"})
    assert response.get_data(as_text=True) == "Data received. username:&lt;b&gt;x&lt;/b&gt;"


def test_get_json_does_not_apply_the_password_policy(client: FlaskClient) -> None:
    response = client.post("/get_json", json={"username": "zhangsan", "password": "1"})
    assert response.status_code == 200


def test_response_json_is_the_tutorials_document(client: FlaskClient) -> None:
    response = client.get("/response_json")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    assert response.get_json() == TUTORIAL_JSON
    assert list(response.get_json()) == ["message", "data"]


@pytest.mark.real_hashing
def test_save_data_to_mysql_stores_a_hashed_user(app: Flask, client: FlaskClient) -> None:
    response = client.post("/save_data_to_mysql", json={"username": "张三", "password": PASSWORD})
    assert response.status_code == 200
    assert response.get_data(as_text=True) == (
        "Commit Status:Succeeded, Message:Data inserted successfully."
    )
    with app.app_context():
        row = db.session.execute(sa.text("SELECT * FROM user")).mappings().one()
    assert row["username"] == "张三"
    assert row["password_hash"].startswith("$argon2id$")
    assert PASSWORD not in str(dict(row))


def test_save_data_to_mysql_twice_answers_409_in_the_tutorials_words(client: FlaskClient) -> None:
    body = {"username": "张三", "password": PASSWORD}
    assert client.post("/save_data_to_mysql", json=body).status_code == 200
    response = client.post("/save_data_to_mysql", json=body)
    assert response.status_code == 409
    assert response.mimetype == "application/problem+json"
    problem = response.get_json()
    assert problem["detail"] == "Commit Status:Failed, Message:Username already exists."
    assert problem["status"] == 409
    assert problem["title"] == "Conflict"


@pytest.mark.parametrize("variant", ["ZHANGSAN", "zhangsan", "ｚｈａｎｇｓａｎ", "ZhangSan"])
def test_usernames_are_unique_ignoring_case_and_width(client: FlaskClient, variant: str) -> None:
    assert client.post(
        "/save_data_to_mysql", json={"username": "ZhangSan", "password": PASSWORD}
    ).status_code in {200, 409}
    response = client.post("/save_data_to_mysql", json={"username": variant, "password": PASSWORD})
    assert response.status_code == 409


def test_save_data_to_mysql_rejects_a_short_password_in_the_tutorials_words(
    client: FlaskClient,
) -> None:
    response = client.post("/save_data_to_mysql", json={"username": "张三", "password": "1234"})
    assert response.status_code == 422
    problem = response.get_json()
    assert (
        problem["detail"] == "Commit Status:Failed, Message:Password must be at least 8 characters."
    )
    assert problem["errors"] == [
        {"field": "password", "message": "Password must be at least 8 characters."}
    ]


def test_tutorial_json_routes_need_no_csrf_token(app: Flask) -> None:
    client = app.test_client()  # a fresh client, like Postman: no cookies, no token
    assert client.post("/get_json", json={"username": "a", "password": "b"}).status_code == 200
    response = client.post("/save_data_to_mysql", json={"username": "a", "password": PASSWORD})
    assert response.status_code == 200
