"""What the tests share besides fixtures: constants, the databases of this test process, apps,
and helpers to act on them and check what they answer. Fixtures live in ``conftest.py``; test
modules import everything else from here (never from ``conftest``).

Under pytest-xdist (``make test``) every worker has databases of its own, derived from the ones
the environment names, so that workers never empty each other's tables:

- MySQL: ``USERHUB_TEST_DATABASE_URL`` names ``userhub_test``; worker ``gw0`` uses
  ``userhub_test_gw0``, ``gw1`` ``userhub_test_gw1``... (a test's sibling databases, such as
  ``_outage``, come after that: ``userhub_test_gw0_outage``). The fixtures create them.
- Redis: ``USERHUB_TEST_REDIS_URL`` names database 15; worker ``gw0`` uses 15, ``gw1`` 14,
  ``gw2`` 13..., downwards, so a run of N workers needs the databases from 15 - N + 1 to 15
  (``conftest.pytest_configure`` refuses a run that would go below 0).

Without xdist (``pytest -p no:xdist``, ``-n 0``) the databases named are used as they are.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import logging
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit, urlunsplit

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from jinja2.bccache import Bucket, BytecodeCache
from sqlalchemy.engine import make_url
from werkzeug.http import HTTP_STATUS_CODES
from werkzeug.test import TestResponse

from userhub import create_app
from userhub.extensions import db
from userhub.models import User
from userhub.services import users
from userhub.services.passwords import EXTENSION_KEY, Passwords

if TYPE_CHECKING:
    from tests.live_server import ServerProcess

# --- This test process and its databases --------------------------------------------------------

# "gw0", "gw1"... in a pytest-xdist worker (set before any conftest is imported); "" otherwise.
WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")
WORKER_NUMBER = int(WORKER.removeprefix("gw")) if WORKER.startswith("gw") else 0
REDIS_DATABASES = 16  # Redis's default `databases`: numbers 0 to 15

# As the environment names them (conftest refuses dangerous names before any test runs).
GIVEN_MYSQL_URL = os.environ.get("USERHUB_TEST_DATABASE_URL", "")
GIVEN_REDIS_URL = os.environ.get("USERHUB_TEST_REDIS_URL", "")


LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def worker_mysql_url(url: str, worker: str = WORKER) -> str:
    """The MySQL database of this worker: ``<name>_<worker>`` (``userhub_test_gw0``).

    On this machine's own server, and unless the URL says otherwise, without TLS
    (``ssl_disabled``): the local MariaDB has none, and PyMySQL's default (TLS if the server
    offers it) would build a TLS context for every connection all the same, 30 ms of CPU, and
    the tests open thousands."""
    if not url:
        return url
    parsed = make_url(url)
    if worker:
        parsed = parsed.set(database=f"{parsed.database}_{worker}")
    if parsed.host in LOOPBACK and not any(key.startswith("ssl") for key in parsed.query):
        parsed = parsed.update_query_dict({"ssl_disabled": "true"})
    return parsed.render_as_string(hide_password=False)


def redis_database(url: str) -> int:
    """The database number a Redis URL names (``redis://host:6379/15`` → 15; none → 0)."""
    path = urlsplit(url).path.strip("/")
    return int(path) if path else 0


def worker_redis_url(url: str, worker_number: int = WORKER_NUMBER) -> str:
    """The Redis database of this worker: the URL's number minus the worker's number."""
    if not url or not worker_number:
        return url
    number = redis_database(url) - worker_number
    if number < 0:
        raise pytest.UsageError(
            f"USERHUB_TEST_REDIS_URL={url}: worker {worker_number} would need Redis database "
            f"{number}; name a database of at least the number of workers - 1"
        )
    return urlunsplit(urlsplit(url)._replace(path=f"/{number}"))


MYSQL_URL = worker_mysql_url(GIVEN_MYSQL_URL)
REDIS_URL = worker_redis_url(GIVEN_REDIS_URL)
BACKENDS = ["sqlite"] + (["mysql"] if MYSQL_URL else [])

needs_mysql = pytest.mark.skipif(not MYSQL_URL, reason="needs USERHUB_TEST_DATABASE_URL (MySQL)")
needs_redis = pytest.mark.skipif(not REDIS_URL, reason="USERHUB_TEST_REDIS_URL is not set")


def mysql_url(suffix: str = "") -> str:
    """This worker's MySQL URL, optionally for a sibling database (``userhub_test_<suffix>``)."""
    url = make_url(MYSQL_URL)
    return url.set(database=f"{url.database}{suffix}").render_as_string(hide_password=False)


# Every MySQL database this test process created, to drop when the session ends (conftest).
CREATED_DATABASES: set[str] = set()


def recreate_mysql_database(url: str) -> None:
    """Drop and create the database an URL names (only ever a test database)."""
    parsed = make_url(url)
    name = parsed.database or ""
    assert re.fullmatch(r"\w+", name) and name != "test"
    server = sa.create_engine(parsed.set(database=""))
    with server.begin() as connection:
        connection.exec_driver_sql(f"DROP DATABASE IF EXISTS `{name}`")
        connection.exec_driver_sql(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    server.dispose()
    CREATED_DATABASES.add(url)


def drop_mysql_database(url: str) -> None:
    """Drop the test database an URL names; the one the environment names is kept (it was
    there before the tests, and its user may have no right to create it again)."""
    parsed = make_url(url)
    name = parsed.database or ""
    assert re.fullmatch(r"\w+", name) and name != "test"
    if GIVEN_MYSQL_URL and name == make_url(GIVEN_MYSQL_URL).database:
        return
    server = sa.create_engine(parsed.set(database=""))
    with server.begin() as connection:
        connection.exec_driver_sql(f"DROP DATABASE IF EXISTS `{name}`")
    server.dispose()
    CREATED_DATABASES.discard(url)


def own_database(backend: str, workdir: Path, name: str) -> str:
    """An empty database for a live server: a SQLite file in ``workdir``, or the sibling MySQL
    database ``userhub_test_<name>``, dropped and created."""
    if backend == "sqlite":
        return f"sqlite:///{workdir / f'{name}.sqlite3'}"
    url = mysql_url(f"_{name}")
    recreate_mysql_database(url)
    return url


# --- Apps --------------------------------------------------------------------------------------

TEST_SECRET = "test-secret-key-that-is-long-enough-0123456789"
PASSWORD = "correct horse battery"

# argon2id at its cheapest (1 pass over 8 KiB: microseconds, against ~25 ms for the production
# parameters). Apps built by the ``build_app`` fixture hash with it, as Flask-Security-Too's
# tests do, unless the test is marked ``real_hashing``: the tests of hashing itself (its
# parameters, rehash at log-in, an unknown user's full check, the migration's hashes, the
# hashing cap) keep the real parameters. The configuration keeps them too (``ARGON2_*``, which
# the OWASP floor guards): only the app's hasher is swapped.
CHEAP_ARGON2 = {"time_cost": 1, "memory_kib": 8, "parallelism": 1}


class MemoryBytecodeCache(BytecodeCache):
    """Jinja's compiled templates, kept in memory for every app of this test process.

    Each test builds an app, and each app's Jinja environment would compile every template it
    renders again: a third of the time of the in-process tests. Jinja checks a cached entry
    against the template's source (a checksum) before it uses it."""

    def __init__(self) -> None:
        self.compiled: dict[str, bytes] = {}

    def load_bytecode(self, bucket: Bucket) -> None:
        if bucket.key in self.compiled:
            bucket.bytecode_from_string(self.compiled[bucket.key])

    def dump_bytecode(self, bucket: Bucket) -> None:
        self.compiled[bucket.key] = bucket.bytecode_to_string()


TEMPLATE_BYTECODE = MemoryBytecodeCache()


def make_app(url: str, **config: Any) -> Flask:
    """An app on ``url``. Rate limits are off unless a test turns them on (test_rate_limits):
    other tests log in and register far more often than any client should. The caller disposes
    of it (``dispose``); tests take the ``build_app`` fixture, which does."""
    app = create_app(
        {
            "SQLALCHEMY_DATABASE_URI": url,
            "SECRET_KEY": TEST_SECRET,
            "TESTING": True,
            "RATELIMIT_ENABLED": False,
            **config,
        }
    )
    app.jinja_env.bytecode_cache = TEMPLATE_BYTECODE
    return app


def use_cheap_hashing(app: Flask) -> None:
    """Give the app a hasher with ``CHEAP_ARGON2`` (its hashing cap unchanged)."""
    app.extensions[EXTENSION_KEY] = Passwords(
        **CHEAP_ARGON2, concurrency=app.config["USERHUB_HASHING_THREADS"]
    )


def dispose(app: Flask) -> None:
    """Close the app's session and database connections."""
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


class AppBuilder(Protocol):
    """The ``build_app`` fixture: ``build_app(url, **config)``."""

    def __call__(self, url: str, /, **config: Any) -> Flask: ...


# --- Pages ---------------------------------------------------------------------------------------


def csrf_token(html: str) -> str:
    match = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html)
    assert match, "page has no CSRF token"
    return match.group(1)


class AuthActions:
    """Register and log in through the real pages, as a browser would."""

    def __init__(self, client: FlaskClient) -> None:
        self.client = client

    def token(self, path: str = "/login") -> str:
        return csrf_token(self.client.get(path).get_data(as_text=True))

    def register(
        self, username: str = "张三", password: str = PASSWORD, email: str | None = None
    ) -> TestResponse:
        data = {
            "username": username,
            "password": password,
            "confirm": password,
            "csrf_token": self.token("/register"),
        }
        return self.client.post("/register", data=data | ({"email": email} if email else {}))

    def login(
        self,
        username: str = "张三",
        password: str = PASSWORD,
        path: str = "/test_post",
        **extra: str,
    ) -> TestResponse:
        return self.client.post(
            path,
            data={"username": username, "password": password, "csrf_token": self.token(), **extra},
        )

    def logout(self) -> TestResponse:
        return self.client.post("/logout", data={"csrf_token": self.token("/account")})


def is_logged_in(client: FlaskClient, page: str = "/success") -> bool:
    """Whether the browser session of ``client`` is valid: ``page`` (one that needs a log-in)
    shows, else it sends to the log-in form."""
    response = client.get(page)
    if response.status_code == 302:
        assert response.location.startswith("/login"), response.location
        return False
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    return True


def browser_of(
    app: Flask, username: str = "张三", password: str = PASSWORD, *, user_agent: str = ""
) -> FlaskClient:
    """Another browser (a client with its own cookie jar), logged in through the log-in form
    as ``username``; ``user_agent``: the header it sends with every request."""
    browser = app.test_client()
    if user_agent:
        browser.environ_base["HTTP_USER_AGENT"] = user_agent
    assert AuthActions(browser).login(username, password).status_code == 302
    assert is_logged_in(browser, "/account")
    return browser


def csrf_header(browser: FlaskClient) -> dict[str, str]:
    """What a logged-in browser's API writes send: the CSRF token of a page's form."""
    return {"X-CSRFToken": csrf_token(browser.get("/account").get_data(as_text=True))}


# --- The API -----------------------------------------------------------------------------------

ME = "/api/v1/users/me"
TOKENS = "/api/v1/tokens"
API_KEYS = "/api/v1/users/me/api-keys"
NEW_PASSWORD = "a brand new passphrase"
BODY_LIMIT = 1024 * 1024  # MAX_CONTENT_LENGTH's default
PROBLEM_MIMETYPE = "application/problem+json"
# Words only internals would put in an error: a traceback, a driver, SQL.
INTERNALS = (
    "traceback",
    'file "',
    "sqlalchemy",
    "pymysql",
    "sqlite3",
    "integrityerror",
    "operationalerror",
    "select ",
    "insert into",
    "update user",
)


def assert_problem(response: TestResponse, status: int, prefix: str = "") -> dict[str, Any]:
    """The response is an RFC 9457 problem with this status and no internals, whose detail is
    a sentence (after ``prefix``) and whose errors, if any, each name a field; its body."""
    text = response.get_data(as_text=True)
    assert response.status_code == status, text[:500]
    assert response.mimetype == PROBLEM_MIMETYPE
    body = json.loads(text)
    assert isinstance(body, dict)
    assert {"type", "title", "status", "detail"} <= body.keys(), body
    assert body["type"]
    assert body["status"] == status
    assert body["title"] == HTTP_STATUS_CODES[status]
    assert isinstance(body["detail"], str) and body["detail"].startswith(prefix)
    assert len(body["detail"]) - len(prefix) > 15, "the detail must say what to fix"
    for error in body.get("errors", []):
        assert set(error) == {"field", "message"}
        assert error["field"] and error["message"]
    assert [word for word in INTERNALS if word in text.lower()] == []
    return body


def error_fields(problem: dict[str, Any]) -> set[str]:
    """The fields a validation problem names."""
    return {error["field"] for error in problem.get("errors", [])}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def basic(username: str, password: str) -> dict[str, str]:
    """HTTP Basic credentials, as ``POST /api/v1/tokens`` also takes them."""
    credentials = base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
    return {"Authorization": f"Basic {credentials}"}


@dataclass(frozen=True)
class Account:
    """A user made for a test, with a token of its own."""

    id: int
    username: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return bearer(self.token)


class ApiActions:
    """Accounts and tokens through ``/api/v1``, and counts of what the database holds."""

    def __init__(self, app: Flask, client: FlaskClient) -> None:
        self.app = app
        self.client = client

    def register(
        self, username: str = "张三", password: str = PASSWORD, **fields: Any
    ) -> TestResponse:
        return self.client.post(
            "/api/v1/users", json={"username": username, "password": password, **fields}
        )

    def token(self, username: str = "张三", password: str = PASSWORD) -> str:
        response = self.client.post(TOKENS, json={"username": username, "password": password})
        assert response.status_code == 201, response.get_data(as_text=True)
        token: str = response.get_json()["token"]
        return token

    def account(
        self, username: str = "张三", password: str = PASSWORD, *, is_admin: bool = False
    ) -> Account:
        """A user made by the user service (admins cannot register through the API)."""
        with self.app.app_context():
            user_id = users.register_user(username, password, is_admin=is_admin).id
        return Account(user_id, username, self.token(username, password))

    def count(self, table: str) -> int:
        with self.app.app_context():
            query = sa.select(sa.func.count()).select_from(db.metadata.tables[table])
            return int(db.session.scalar(query) or 0)

    def rows(self, table: str) -> list[dict[str, Any]]:
        """Every row of a table, as dicts of column values."""
        with self.app.app_context():
            result = db.session.execute(sa.select(db.metadata.tables[table]))
            return [dict(row) for row in result.mappings()]

    def user_row(self, username: str) -> dict[str, Any]:
        return next(row for row in self.rows("user") if row["username"] == username)


def new_api_key(
    client: FlaskClient, headers: dict[str, str], *scopes: str, name: str = "script"
) -> dict[str, Any]:
    """A personal API key made with ``headers``' credentials: the answer, secret (``key``)
    included."""
    response = client.post(API_KEYS, json={"name": name, "scopes": list(scopes)}, headers=headers)
    assert response.status_code == 201, response.get_data(as_text=True)
    key: dict[str, Any] = response.get_json()
    return key


def reauthenticate(client: FlaskClient, headers: dict[str, str], password: str = PASSWORD) -> None:
    """Prove again who holds the token or key in ``headers`` (a key must before making keys)."""
    answer = client.post(
        "/api/v1/users/me/reauthenticate", json={"password": password}, headers=headers
    )
    assert answer.status_code == 204, answer.get_data(as_text=True)


def user_count(app: Flask) -> int:
    """How many rows the ``user`` table holds."""
    with app.app_context():
        return int(db.session.scalar(sa.select(sa.func.count()).select_from(User)) or 0)


# --- Failures ----------------------------------------------------------------------------------

SECRET_DETAIL = "secret internal detail"
# Nothing listens on port 9 (discard): a MySQL server that cannot be reached.
UNREACHABLE_MYSQL = (
    "mysql+pymysql://root@127.0.0.1:9/userhub_test?charset=utf8mb4&connect_timeout=2"
)


def get_a_crashing_route(app: Flask, path: str, caplog: pytest.LogCaptureFixture) -> TestResponse:
    """GET a route added at ``path`` that raises an exception carrying ``SECRET_DETAIL``,
    answered by the error handlers as in production (not re-raised as in testing)."""

    def explode() -> str:
        raise RuntimeError(SECRET_DETAIL)

    app.add_url_rule(path, view_func=explode)
    app.config["TESTING"] = False
    with caplog.at_level(logging.ERROR, logger="userhub"):
        return app.test_client().get(path)


# --- Live servers ------------------------------------------------------------------------------

REPO = Path(__file__).resolve().parents[1]


def load_localcluster() -> Any:
    """``deploy/localcluster.py`` as a module (``deploy/`` is not a package)."""
    loaded = sys.modules.get("localcluster")
    if loaded is not None:
        return loaded
    spec = importlib.util.spec_from_file_location("localcluster", REPO / "deploy/localcluster.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["localcluster"] = module  # dataclasses and friends look the module up
    spec.loader.exec_module(module)
    return module


def worker_pids(server: ServerProcess) -> set[int]:
    """The server's worker processes: the direct children of ``userhub serve`` (granian and
    gunicorn both fork their workers from it), read from Linux's /proc."""
    pid = server.process.pid
    children: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            children.update(int(c) for c in (task / "children").read_text().split())
        except OSError:  # a thread that ended while we looked
            continue
    return children


def cpu_ticks(pid: int) -> int:
    """The CPU time a process has used so far (user + system), in clock ticks, from Linux's
    /proc: an idle worker's does not move, so a worker whose count grew answered something."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()  # after the command name, which may hold spaces
    return int(fields[11]) + int(fields[12])  # utime and stime, the 14th and 15th fields
