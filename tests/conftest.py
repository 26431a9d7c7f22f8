"""Fixtures: an app on a real database, its client and CLI runner, and ``auth``/``api`` helpers.

Every test that uses ``app`` runs on SQLite, and again on MySQL/MariaDB when
``USERHUB_TEST_DATABASE_URL`` is set (CI sets it). Each test starts from an empty, fully
migrated database. With ``USERHUB_FORBID_SKIPS=1`` a skipped test fails the run, so CI cannot
pass with its MySQL tests quietly skipped.

Apps come from one fixture, ``build_app``, which closes their connections after the test and
gives them a cheap password hasher unless the test is marked ``real_hashing``. What tests
share besides fixtures (constants, helpers, the per-worker databases) is in
``tests/helpers.py``. Mail goes to a real SMTP server in a process of its own, ``smtp_sink``
(``tests/smtp_server.py``).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner
from flask_migrate import upgrade
from sqlalchemy.engine import make_url
from xdist.remote import Producer
from xdist.scheduler import LoadFileScheduling
from xdist.scheduler.protocol import Scheduling
from xdist.workermanage import WorkerController

from tests.helpers import (
    BACKENDS,
    CREATED_DATABASES,
    GIVEN_MYSQL_URL,
    GIVEN_REDIS_URL,
    MYSQL_URL,
    REDIS_DATABASES,
    Account,
    ApiActions,
    AppBuilder,
    AuthActions,
    dispose,
    drop_mysql_database,
    make_app,
    recreate_mysql_database,
    redis_database,
    use_cheap_hashing,
)
from tests.mail_support import Mailbox, MailboxBuilder
from tests.smtp_server import SinkStarter, SmtpSink, TlsAuthority

# Tests that finish last when they start late: under xdist they are sent to workers first.
LONGEST_FIRST = ("tests/test_contract.py", "tests/test_browser_pages.py")
# Under xdist with --dist loadfile (make test) each test module runs in one worker: its live
# servers, proxy and browser start once, and its timed tests never run beside a copy of
# themselves. The tests of these modules, minutes each, are spread one by one instead, so that
# they run side by side rather than one after the other.
EACH_TEST_ALONE = ("tests/test_contract.py",)


class ModuleScheduling(LoadFileScheduling):
    """xdist's loadfile scheduling, but the tests of ``EACH_TEST_ALONE`` are units of their own,
    and a worker busy with one is given only the smallest unit to queue behind it (a worker must
    know its next test before it starts one), so that the others take the rest meanwhile."""

    def _split_scope(self, nodeid: str) -> str:
        module = super()._split_scope(nodeid)
        return nodeid if module in EACH_TEST_ALONE else module

    def _alone(self, scope: str) -> bool:
        return super()._split_scope(scope) in EACH_TEST_ALONE

    def _reschedule(self, node: WorkerController) -> None:
        work = self.assigned_work.get(node, {})
        busy = any(
            not done for scope, unit in work.items() if self._alone(scope) for done in unit.values()
        )
        if busy and self.workqueue and not node.shutting_down:
            if self._pending_of(work) > 1:
                return
            smallest = min(self.workqueue, key=lambda scope: len(self.workqueue[scope]))
            self.workqueue.move_to_end(smallest, last=False)
        super()._reschedule(node)


@pytest.hookimpl(optionalhook=True)  # a hook of pytest-xdist, which may be off (-p no:xdist)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Producer) -> Scheduling | None:
    if config.getvalue("dist") == "loadfile":
        return ModuleScheduling(config, log)
    return None  # xdist's own


def pytest_configure(config: pytest.Config) -> None:
    if GIVEN_MYSQL_URL:
        name = make_url(GIVEN_MYSQL_URL).database or ""
        if name in {"", "test", "mysql", "information_schema", "performance_schema", "sys"}:
            raise pytest.UsageError(
                f"USERHUB_TEST_DATABASE_URL names database {name!r}: tests empty their database, "
                "so give them one of their own, e.g. .../userhub_test"
            )
    workers = getattr(config.option, "numprocesses", None)
    if GIVEN_REDIS_URL and isinstance(workers, int) and workers > 1:
        number = redis_database(GIVEN_REDIS_URL)
        if not workers - 1 <= number < REDIS_DATABASES:
            raise pytest.UsageError(
                f"USERHUB_TEST_REDIS_URL names Redis database {number}: {workers} workers use "
                f"it and the {workers - 1} below it, so name one from {workers - 1} to 15"
            )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under xdist, the longest tests first (a stable sort: the order is otherwise kept), so
    that they run beside the many short ones rather than after them."""
    if hasattr(config, "workerinput"):  # a worker: each collects, and all sort alike
        items.sort(key=lambda item: not item.nodeid.startswith(LONGEST_FIRST))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    for url in list(CREATED_DATABASES):  # a test run leaves no database behind
        drop_mysql_database(url)
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None:
        return
    skipped = len(reporter.stats.get("skipped", []))
    if os.environ.get("USERHUB_FORBID_SKIPS") == "1" and skipped and exitstatus == 0:
        reporter.ensure_newline()
        reporter.write_line(f"USERHUB_FORBID_SKIPS=1: {skipped} test(s) skipped", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture(autouse=True)
def isolated_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No developer's ``.env``, ``USERHUB_*`` or ``OTEL_*`` variables leak into a test (an
    OpenTelemetry endpoint would turn tracing on in every app)."""
    for name in list(os.environ):
        if name.startswith(("USERHUB_", "OTEL_")) and name != "USERHUB_TEST_DATABASE_URL":
            monkeypatch.delenv(name)
    instance = tmp_path / "instance"
    monkeypatch.setenv("USERHUB_INSTANCE_PATH", str(instance))
    monkeypatch.chdir(tmp_path)
    return instance


@pytest.fixture(scope="session")
def migrated_template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """One migrated database per backend, made once per worker: SQLite as a file to copy,
    MySQL (this worker's database) in place."""
    templates: dict[str, str] = {}
    folder = tmp_path_factory.mktemp("template")
    sqlite_file = folder / "template.sqlite3"
    targets = {"sqlite": f"sqlite:///{sqlite_file}"}
    if MYSQL_URL:
        recreate_mysql_database(MYSQL_URL)
        targets["mysql"] = MYSQL_URL
    for backend, url in targets.items():
        app = make_app(url)
        with app.app_context():
            upgrade()
        dispose(app)
        templates[backend] = url
    templates["sqlite_file"] = str(sqlite_file)
    yield templates


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def database_url(backend: str, migrated_template: dict[str, str], tmp_path: Path) -> str:
    """An empty, migrated database for this test."""
    if backend == "sqlite":
        target = tmp_path / "userhub.sqlite3"
        shutil.copy(migrated_template["sqlite_file"], target)
        return f"sqlite:///{target}"
    engine = sa.create_engine(MYSQL_URL)
    with engine.begin() as connection:
        connection.exec_driver_sql("DELETE FROM `user`")  # and, by cascade, what is theirs
        connection.exec_driver_sql("DELETE FROM `security_event`")  # which outlives accounts
        connection.exec_driver_sql("DELETE FROM `idempotency_record`")
        connection.exec_driver_sql("DELETE FROM `mail_outbox`")
        # A passwordless log-in's challenge belongs to no account until a passkey answers it.
        connection.exec_driver_sql("DELETE FROM `auth_challenge`")
        connection.exec_driver_sql("ALTER TABLE `user` AUTO_INCREMENT = 1")
    engine.dispose()
    return MYSQL_URL


@pytest.fixture
def build_app(request: pytest.FixtureRequest, isolated_environment: Path) -> Iterator[AppBuilder]:
    """Build apps with ``build_app(url, **config)`` (``helpers.make_app``): with a cheap
    password hasher unless the test is marked ``real_hashing``; their sessions and engines
    are closed after the test."""
    cheap = request.node.get_closest_marker("real_hashing") is None
    built: list[Flask] = []

    def build(url: str, /, **config: object) -> Flask:
        app = make_app(url, **config)
        if cheap:
            use_cheap_hashing(app)
        built.append(app)
        return app

    yield build
    for app in built:
        dispose(app)


@pytest.fixture
def app(build_app: AppBuilder, database_url: str) -> Flask:
    return build_app(database_url)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def runner(app: Flask) -> FlaskCliRunner:
    return app.test_cli_runner()


@pytest.fixture
def auth(client: FlaskClient) -> AuthActions:
    return AuthActions(client)


@pytest.fixture
def api(app: Flask, client: FlaskClient) -> ApiActions:
    return ApiActions(app, client)


@pytest.fixture
def member(api: ApiActions) -> Account:
    """A user with a token."""
    return api.account("member")


@pytest.fixture
def admin(api: ApiActions) -> Account:
    """An administrator with a token."""
    return api.account("admin", is_admin=True)


@pytest.fixture(scope="session")
def tls_authority(tmp_path_factory: pytest.TempPathFactory) -> TlsAuthority:
    """A throwaway CA and the SMTP sink's certificate, made once per worker. A userhub process
    trusts it with ``SSL_CERT_FILE=str(tls_authority.ca_file)``."""
    return TlsAuthority.create(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def start_smtp_sink(tmp_path: Path, tls_authority: TlsAuthority) -> Iterator[SinkStarter]:
    """Start SMTP sinks with ``start_smtp_sink(mode, auth=(user, password))``: each in a folder
    of its own under ``tmp_path``; all are stopped after the test, passed or failed."""
    numbers = itertools.count()
    with contextlib.ExitStack() as stack:

        def start(mode: str = "plain", *, auth: tuple[str, str] | None = None) -> SmtpSink:
            folder = tmp_path / f"smtp-sink-{next(numbers)}"
            tls = tls_authority if mode != "plain" else None
            sink = SmtpSink(folder, mode, tls=tls, auth=auth)
            stack.callback(sink.stop)
            return sink.start()

        yield start


@pytest.fixture
def smtp_sink(start_smtp_sink: SinkStarter) -> SmtpSink:
    """A plain SMTP sink (no TLS, no AUTH), started; ``smtp_sink.url`` is its mail URL."""
    return start_smtp_sink()


@pytest.fixture
def build_mailbox(
    build_app: AppBuilder, database_url: str, start_smtp_sink: SinkStarter
) -> MailboxBuilder:
    """Apps (``build_app``, with ``config``) whose mail goes to a plain SMTP sink of their own,
    each with it as a ``Mailbox``."""

    def build(**config: object) -> Mailbox:
        sink = start_smtp_sink()
        return Mailbox(build_app(database_url, USERHUB_MAIL_URL=sink.url, **config), sink)

    return build


@pytest.fixture
def mailbox(build_mailbox: MailboxBuilder) -> Mailbox:
    """An app whose mail goes to a plain SMTP sink, and that sink."""
    return build_mailbox()
