"""``/api/v1/users/me/totp`` and ``/api/v1/users/me/recovery-codes`` as a client sees them:
set up with the secret and QR code, confirmed with a code the test computes (pyotp), removed;
recovery codes counted and replaced; every change that needs it refused once the log-in is
older than ``USERHUB_REAUTHENTICATION_SECONDS``; bad input answered with a problem that says
what to fix. On SQLite and MySQL.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from typing import Any

import pyotp
import pytest
import time_machine
from flask.testing import FlaskClient

from tests.helpers import (
    Account,
    ApiActions,
    assert_problem,
    bearer,
    browser_of,
    csrf_header,
    error_fields,
    new_api_key,
)

TOTP = "/api/v1/users/me/totp"
CONFIRM = "/api/v1/users/me/totp/confirm"
RECOVERY = "/api/v1/users/me/recovery-codes"
REAUTHENTICATE = "/api/v1/users/me/reauthenticate"
CHINESE = {"Accept-Language": "zh-CN,zh;q=0.9"}
REAUTH_SECONDS = 5 * 60


def begin(client: FlaskClient, account: Account) -> dict[str, Any]:
    response = client.post(TOTP, headers=account.headers)
    assert response.status_code == 201, response.get_data(as_text=True)
    assert response.headers["Cache-Control"] == "no-store"
    body: dict[str, Any] = response.get_json()
    return body


def enable(client: FlaskClient, account: Account) -> tuple[str, list[str]]:
    """Set up and confirm an app for ``account``: its secret and recovery codes."""
    secret = begin(client, account)["secret"]
    response = client.post(
        CONFIRM, json={"code": pyotp.TOTP(secret).now()}, headers=account.headers
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    codes: list[str] = response.get_json()["recovery_codes"]
    return secret, codes


def test_set_up_confirm_and_remove(client: FlaskClient, api: ApiActions, member: Account) -> None:
    enrolment = begin(client, member)
    assert set(enrolment) == {"secret", "otpauth_uri", "qr_svg"}
    assert len(base64.b32decode(enrolment["secret"])) == 20
    assert enrolment["otpauth_uri"].startswith("otpauth://totp/userhub:member?")
    assert enrolment["qr_svg"].lstrip().startswith(("<?xml", "<svg"))
    assert client.get(RECOVERY, headers=member.headers).get_json() == {"remaining": 0}

    code = pyotp.TOTP(enrolment["secret"]).now()
    confirmed = client.post(CONFIRM, json={"code": code}, headers=member.headers)
    assert confirmed.status_code == 200
    assert confirmed.headers["Cache-Control"] == "no-store"
    codes = confirmed.get_json()["recovery_codes"]
    assert len(set(codes)) == 10
    assert client.get(RECOVERY, headers=member.headers).get_json() == {"remaining": 10}
    types = [row["type"] for row in api.rows("security_event")]
    assert "totp-enabled" in types and "recovery-codes-generated" in types

    again = client.post(TOTP, headers=member.headers)
    assert assert_problem(again, 409)["type"] == "/problems/totp-already-enabled"

    assert client.delete(TOTP, headers=member.headers).status_code == 204
    assert client.get(RECOVERY, headers=member.headers).get_json() == {"remaining": 0}
    assert api.count("totp_factor") == api.count("recovery_code") == 0
    assert "totp-disabled" in [row["type"] for row in api.rows("security_event")]
    gone = client.delete(TOTP, headers=member.headers)
    assert_problem(gone, 404)


def test_a_wrong_first_code_is_a_422_that_mentions_the_clock(
    client: FlaskClient, member: Account
) -> None:
    secret = begin(client, member)["secret"]
    right = pyotp.TOTP(secret).now()
    wrong = f"{(int(right) + 500) % 1_000_000:06d}"
    response = client.post(CONFIRM, json={"code": wrong}, headers=member.headers)
    problem = assert_problem(response, 422)
    assert problem["type"] == "/problems/wrong-code"
    assert "clock" in problem["detail"]
    assert error_fields(problem) == {"code"}
    chinese = client.post(CONFIRM, json={"code": wrong}, headers=member.headers | CHINESE)
    assert "时钟" in assert_problem(chinese, 422)["detail"]


def test_confirming_without_an_enrolment_is_a_409(client: FlaskClient, member: Account) -> None:
    response = client.post(CONFIRM, json={"code": "123456"}, headers=member.headers)
    assert assert_problem(response, 409)["type"] == "/problems/no-totp-enrolment"


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({}, 422),
        ({"code": 123456}, 422),
        ({"code": None}, 422),
        ({"code": ["123456"]}, 422),
        ({"code": ""}, 422),
        ({"code": "1" * 5000}, 422),
        ({"code": "١٢٣٤٥٦"}, 422),
        ({"code": "<script>alert(1)</script>"}, 422),
        ({"code": "123456", "extra": 1}, 422),
        ([], 422),
    ],
    ids=[
        "missing",
        "number",
        "null",
        "list",
        "blank",
        "huge",
        "arabic digits",
        "html",
        "unknown field",
        "not an object",
    ],
)
def test_bad_confirmations_are_refused_with_a_clear_problem(
    client: FlaskClient, member: Account, body: Any, status: int
) -> None:
    begin(client, member)
    response = client.post(CONFIRM, json=body, headers=member.headers)
    problem = assert_problem(response, status)
    assert "<script>" not in response.get_data(as_text=True)
    assert problem["type"] in {
        "/problems/invalid-fields",
        "/problems/wrong-code",
        "/problems/not-a-json-object",
    }


@pytest.mark.parametrize(
    ("data", "content_type", "status"),
    [
        (b"", "application/json", 400),
        (b"{not json", "application/json", 400),
        (b"code=123456", "application/x-www-form-urlencoded", 415),
    ],
    ids=["empty", "broken json", "a form"],
)
def test_a_confirmation_that_is_not_json_is_refused(
    client: FlaskClient, member: Account, data: bytes, content_type: str, status: int
) -> None:
    response = client.post(
        CONFIRM, data=data, headers=member.headers | {"Content-Type": content_type}
    )
    assert_problem(response, status)


def test_changes_need_a_recent_log_in(client: FlaskClient, api: ApiActions) -> None:
    start = datetime.now(UTC)
    with time_machine.travel(start, tick=False) as clock:
        account = api.account("member")
        secret, _ = enable(client, account)
        clock.shift(timedelta(seconds=REAUTH_SECONDS + 1))
        for method, path in (("POST", TOTP), ("DELETE", TOTP), ("POST", RECOVERY)):
            response = client.open(path, method=method, headers=account.headers)
            problem = assert_problem(response, 401)
            assert problem["type"] == "/problems/reauthentication-required", (method, path)
        # What needs no new proof still works: the count of codes left.
        assert client.get(RECOVERY, headers=account.headers).get_json() == {"remaining": 10}
        # A code from the app proves it again, and the same token may then make the changes.
        clock.shift(timedelta(seconds=30))
        proof = {"otp": pyotp.TOTP(secret).now()}
        reauthenticated = client.post(REAUTHENTICATE, json=proof, headers=account.headers)
        assert reauthenticated.status_code == 204, reauthenticated.get_data(as_text=True)
        assert client.post(RECOVERY, headers=account.headers).status_code == 201
        assert client.delete(TOTP, headers=account.headers).status_code == 204


def test_an_old_log_in_may_still_confirm_what_it_began(
    client: FlaskClient, api: ApiActions
) -> None:
    start = datetime.now(UTC)
    with time_machine.travel(start, tick=False) as clock:
        account = api.account("member")
        secret = begin(client, account)["secret"]
        clock.shift(timedelta(seconds=REAUTH_SECONDS + 1))
        code = pyotp.TOTP(secret).now()
        response = client.post(CONFIRM, json={"code": code}, headers=account.headers)
        assert response.status_code == 200


def test_new_recovery_codes_void_the_old_ones(
    client: FlaskClient, api: ApiActions, member: Account
) -> None:
    _, old = enable(client, member)
    response = client.post(RECOVERY, headers=member.headers)
    assert response.status_code == 201
    assert response.headers["Cache-Control"] == "no-store"
    new = response.get_json()["recovery_codes"]
    assert len(new) == 10 and not set(new) & set(old)
    assert client.get(RECOVERY, headers=member.headers).get_json() == {"remaining": 10}


def test_new_recovery_codes_need_an_authenticator_app(client: FlaskClient, member: Account) -> None:
    response = client.post(RECOVERY, headers=member.headers)
    assert assert_problem(response, 409)["type"] == "/problems/totp-not-enabled"


def test_the_browser_session_can_set_one_up_with_its_csrf_header(
    client: FlaskClient, api: ApiActions, member: Account
) -> None:
    browser = browser_of(api.app, "member")
    refused = browser.post(TOTP)
    assert assert_problem(refused, 400)["type"] == "/problems/csrf-failed"
    response = browser.post(TOTP, headers=csrf_header(browser))
    assert response.status_code == 201
    code = pyotp.TOTP(response.get_json()["secret"]).now()
    confirmed = browser.post(CONFIRM, json={"code": code}, headers=csrf_header(browser))
    assert confirmed.status_code == 200


def test_a_read_only_key_cannot_set_one_up(
    client: FlaskClient, api: ApiActions, member: Account
) -> None:
    key = new_api_key(client, member.headers, "read")["key"]
    response = client.post(TOTP, headers=bearer(key))
    assert assert_problem(response, 403)["type"] == "/problems/insufficient-scope"
    assert api.count("totp_factor") == 0


def test_no_token_no_answer(client: FlaskClient) -> None:
    for method, path in (("POST", TOTP), ("DELETE", TOTP), ("GET", RECOVERY), ("POST", RECOVERY)):
        assert_problem(client.open(path, method=method), 401)
    assert_problem(client.post(CONFIRM, json={"code": "123456"}), 401)


def test_the_openapi_document_describes_them(client: FlaskClient) -> None:
    paths = client.get("/openapi.json").get_json()["paths"]
    for path, method in (
        (TOTP, "post"),
        (TOTP, "delete"),
        (CONFIRM, "post"),
        (RECOVERY, "get"),
        (RECOVERY, "post"),
    ):
        operation = paths[path][method]
        assert operation["summary"], (path, method)
        assert "401" in operation["responses"]
    assert "reauthentication-required" in paths[TOTP]["post"]["responses"]["401"]["description"]
    assert "totp-already-enabled" in paths[TOTP]["post"]["responses"]["409"]["description"]
    assert "wrong-code" in paths[CONFIRM]["post"]["responses"]["422"]["description"]
    assert "no-store" in str(paths[CONFIRM]["post"]["responses"]["200"]["headers"])
