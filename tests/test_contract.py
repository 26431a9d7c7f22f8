"""The API contract: schemathesis, with all its checks, against ``/openapi.json`` of a real server.

A production server (granian, ``USERHUB_ENV=production``) runs on an empty database: SQLite, and
MariaDB/MySQL when ``USERHUB_TEST_DATABASE_URL`` is set. Schemathesis's own command line
(``st run``, in-process) reads the document and runs every phase (explicit examples, coverage,
fuzzing, stateful sequences built from links it infers) with ``--checks all`` and
``--max-examples 25``; the test passes only if it finds nothing (Hypothesis's ``too_slow``
health check, which times the generator rather than the server, is off).

Authentication goes through schemathesis's auth mechanism: a provider that logs in with
``POST /api/v1/tokens`` for every test case, so no case reuses a token that an earlier case
revoked (``DELETE /api/v1/tokens``). Two accounts are made first: an administrator for the
operations on any account and the user list, and a member for its own account and tokens.
Generated cases may change their passwords (which ends their other tokens), deactivate or delete
the member; the provider then puts the account back through the services before it logs in. A
case may also ask for the member's deletion (``DELETE /api/v1/users/me``): the provider's log-ins
send ``"cancel_deletion": true``, which keeps an account waiting to be deleted.

A failure report ends with the run's seed; ``USERHUB_CONTRACT_SEED=<seed>`` replays that run.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
import warnings
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from click.testing import CliRunner
from flask import Flask
from hypothesis.errors import HypothesisWarning
from requests.structures import CaseInsensitiveDict
from schemathesis import Case
from schemathesis.cli import schemathesis as schemathesis_cli

from tests.helpers import AppBuilder, own_database
from tests.live_server import create_admin, running_server
from userhub.services import account_status, users

pytestmark = pytest.mark.contract

MAX_EXAMPLES = 25
# A mailed link's token is any string to the schema; only the server knows the tokens it mailed,
# so a well-formed one it never sent is a 400 (`/problems/invalid-link`), as documented. For
# those operations, positive_data_acceptance accepts the 400 as the answer to valid data.
MAILED_LINKS = "email-verification|password-reset/complete|email-change/(confirm|undo)|unlock"
MAILED_LINK_CONFIG = f"""
[[operations]]
include-path-regex = "^/api/v1/({MAILED_LINKS})$"
checks.positive_data_acceptance.expected-statuses = [
    "2xx", "3xx", "400", "401", "403", "404", "409", "429", "5xx"
]

# A passkey's answer is any object to the schema; only an authenticator can make one that
# verifies, so a well-formed one is a 400 (`/problems/passkey-not-registered`), as documented.
# (By path alone: an include-method here matched every POST, not only this path's.)
[[operations]]
include-path-regex = "^/api/v1/users/me/passkeys$"
checks.positive_data_acceptance.expected-statuses = [
    "2xx", "3xx", "400", "401", "403", "404", "409", "429", "5xx"
]
"""
# Only the server and the phone know the code an authenticator app shows now: a well-formed
# one drawn by the fuzzer is wrong (422, `/problems/wrong-code`), as documented.
TOTP_CONFIRM_CONFIG = """
[[operations]]
include-path-regex = "^/api/v1/users/me/totp/confirm$"
checks.positive_data_acceptance.expected-statuses = [
    "2xx", "3xx", "401", "403", "404", "409", "422", "429", "5xx"
]
"""
SEED = os.environ.get("USERHUB_CONTRACT_SEED", "")  # read now: the conftest clears USERHUB_*
HTTP_METHODS = frozenset({"get", "put", "post", "delete", "options", "head", "patch", "trace"})
ADMIN = "contract-admin"
MEMBER = "contract-member"
PASSWORD = "contract password 0"
OWN_ACCOUNT = "/api/v1/users/me"
API_KEYS = "/api/v1/users/me/api-keys"


class Accounts:
    """The administrator and the member the generated cases act as, kept able to log in."""

    def __init__(self, base: str, app: Flask) -> None:
        self.base = base
        self.app = app
        self.lock = threading.Lock()
        self.logins = 0
        self.restored: Counter[str] = Counter()

    def create(self, database_url: str, workdir: Path) -> None:
        """The administrator through the CLI (as a deployer makes one), the member through
        the API (as anyone registers)."""
        create_admin(database_url, workdir, ADMIN, PASSWORD)
        member = {"username": MEMBER, "password": PASSWORD}
        response = requests.post(f"{self.base}/api/v1/users", json=member, timeout=10)
        assert response.status_code == 201, response.text

    def token(self, username: str) -> str:
        """A new token for ``username``, restoring the account first if it cannot log in (and
        keeping it if a case asked for its deletion)."""
        for attempt in range(2):
            self.logins += 1
            response = requests.post(
                f"{self.base}/api/v1/tokens",
                json={"username": username, "password": PASSWORD, "cancel_deletion": True},
                timeout=10,
            )
            if response.status_code == 201:
                return str(response.json()["token"])
            # 401: a new password, or the member deleted; 403: the member deactivated
            assert response.status_code in {401, 403} and attempt == 0, response.text
            self.restore(username)
        raise AssertionError("unreachable")

    def restore(self, username: str) -> None:
        """Undo what generated cases may do to an account: a new password (``PATCH`` of the
        account), or, for the member, deactivation or deletion. The administrator cannot lose
        its rights, be deactivated or be deleted through the API: it is the only administrator
        making calls, and the API refuses all three for your own account."""
        with self.lock, self.app.app_context():
            self.restored[username] += 1
            user = users.find_user(username)
            if user is None:
                users.register_user(username, PASSWORD, is_admin=username == ADMIN)
            else:
                users.update_user(user, {"password": PASSWORD}, by_admin=user)
                account_status.reactivate(user, by=None)


@contextmanager
def authenticated_as(accounts: Accounts) -> Iterator[None]:
    """Register the auth provider with schemathesis for the duration of a run."""

    class NewTokenPerCase:
        """Bearer operations get a token made for this case alone. Operations on any account,
        the user list, the whole security log, and the API keys (only an administrator may give
        a key every scope a valid body names: a member's ``admin`` is refused with 422, as
        ``tests/test_api_keys.py`` asserts) run as the administrator; the member's own account,
        sessions and log, and ``DELETE /api/v1/tokens`` as the member."""

        def get(self, case: Case[Any], context: schemathesis.AuthContext) -> Any:
            operation = context.operation
            requirements = operation.definition.raw.get("security") or []
            roles = [r for requirement in requirements for r in requirement.get("BearerAuth", [])]
            if not any("BearerAuth" in requirement for requirement in requirements):
                return None  # a public operation, or HTTP Basic for POST /api/v1/tokens
            as_admin = (
                "admin" in roles
                or "{user_id}" in operation.path
                or operation.path.startswith(API_KEYS)
            )
            return accounts.token(ADMIN if as_admin else MEMBER)

        def set(self, case: Case[Any], data: Any, context: schemathesis.AuthContext) -> None:
            headers: CaseInsensitiveDict[Any] = CaseInsensitiveDict(case.headers or {})
            headers["Authorization"] = f"Bearer {data}"
            case.headers = headers
            supply_current_password(case)

    # refresh_interval=0: no token is reused. Schemathesis draws a case's token when it draws
    # the case, and may draw several before sending them; a case sent after another one changed
    # the account's password carries a token that change ended. retry_on=[401] (its default
    # for caching providers, so 0 rather than None) gets such a case a new token and sends it
    # again; a case meant to go without valid credentials keeps its 401.
    schemathesis.auth(refresh_interval=0, retry_on=[401])(NewTokenPerCase)
    try:
        yield
    finally:
        schemathesis.auths.unregister()


def supply_current_password(case: Case[Any]) -> None:
    """A new password for your own account needs ``current_password``: the account's actual
    password, which no schema can state. Like the token, it is a credential the provider
    holds, so a schema-valid request gets it (a wrong one is refused with 422, as a test of
    ``tests/test_api_users.py`` asserts). Only positive cases: negative ones stay as drawn."""
    body = case.body
    is_positive = case.meta is not None and case.meta.generation.mode.is_positive
    if (
        case.operation.path == OWN_ACCOUNT
        and case.method.upper() == "PATCH"
        and is_positive
        and isinstance(body, dict)
        and isinstance(body.get("password"), str)
    ):
        body["current_password"] = PASSWORD


@contextmanager
def fresh_idempotency_keys() -> Iterator[None]:
    """A key names one request, so a client sends a new one with each new request; the fuzzer
    draws tiny keys ("0") and the document's example again and again, and the second request
    with another body is rightly refused (422, asserted by ``tests/test_idempotency.py``). So
    a positive case that carries the header gets a fresh UUID; negative ones stay as drawn."""

    def before_call(context: Any, case: Case[Any], **kwargs: Any) -> None:
        is_positive = case.meta is not None and case.meta.generation.mode.is_positive
        if is_positive and case.headers and "Idempotency-Key" in case.headers:
            case.headers["Idempotency-Key"] = str(uuid.uuid4())

    hook = schemathesis.hook(before_call)
    try:
        yield
    finally:
        schemathesis.hooks.unregister(hook)


@contextmanager
def counting_calls() -> Iterator[Counter[str]]:
    """How many requests schemathesis sent to each operation (by its ``after_call`` hook)."""
    calls: Counter[str] = Counter()

    def after_call(context: Any, case: Case[Any], response: Any) -> None:
        calls[case.operation.label] += 1

    hook = schemathesis.hook(after_call)
    try:
        yield calls
    finally:
        schemathesis.hooks.unregister(hook)


def documented_operations(base: str) -> list[str]:
    paths = requests.get(f"{base}/openapi.json", timeout=10).json()["paths"]
    return [
        f"{method.upper()} {path}"
        for path, item in paths.items()
        for method in item
        if method in HTTP_METHODS
    ]


# The accounts it restores are hashed as the server hashes them: no rehash at their next log-in.
@pytest.mark.real_hashing
def test_schemathesis_finds_nothing(backend: str, tmp_path: Path, build_app: AppBuilder) -> None:
    database_url = own_database(backend, tmp_path, "contract")
    app = build_app(database_url)
    started = time.monotonic()
    config = tmp_path / "schemathesis.toml"
    config.write_text(MAILED_LINK_CONFIG + TOTP_CONFIRM_CONFIG)
    arguments = ["--config-file", str(config), "run", "--checks", "all"]
    arguments += ["--max-examples", str(MAX_EXAMPLES), "--no-color"]
    # Hypothesis's `too_slow` health check times the data generator, not userhub: drawing a
    # `PATCH /users/me` body (two kilobyte-long name and email patterns under an if/then) took
    # longer than its budget on a loaded CI machine, and failed a run in which every request
    # had passed. The server's speed is measured in bench/, never here.
    arguments += ["--suppress-health-check", "too_slow"]
    if SEED:
        arguments += ["--seed", SEED]
    # A fuzzer logs in and registers far faster than any client may: limits off (the 429
    # they would answer is documented on every limited operation all the same).
    limits_off = {"USERHUB_RATELIMIT_ENABLED": "false"}
    with running_server("production", database_url, tmp_path, env=limits_off) as server:
        base = server.base
        accounts = Accounts(base, app)
        accounts.create(database_url, tmp_path)
        operations = documented_operations(base)
        with (
            authenticated_as(accounts),
            fresh_idempotency_keys(),
            counting_calls() as calls,
            warnings.catch_warnings(),
        ):
            # Hypothesis warns when the text of a generated case (a PATCH body of kilobyte-long
            # names) is large; pytest makes warnings errors, and one such case stopped a run in
            # which every request had passed. It is about printing a case, not about userhub.
            warnings.filterwarnings(
                "ignore", message="Generating overly large repr", category=HypothesisWarning
            )
            result = CliRunner().invoke(schemathesis_cli, [*arguments, f"{base}/openapi.json"])
    elapsed = time.monotonic() - started

    # Shown with `pytest -s`, and with the failure otherwise.
    print(result.output)
    print(
        f"{backend}: {sum(calls.values())} requests in {elapsed:.0f} s; {accounts.logins} "
        f"log-ins; accounts restored: {dict(accounts.restored) or 'none'}"
    )
    for label in operations:
        print(f"  {calls[label]:5d}  {label}")
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    assert result.exit_code == 0, result.output
    untested = [label for label in operations if not calls[label]]
    assert not untested, f"schemathesis sent nothing to {untested}"
