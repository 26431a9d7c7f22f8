"""The Postman collection covers the app: every OpenAPI operation and every tutorial route has a
request, every request tests its status, and there are enough tests in all. And when it cannot
pass, it says why: newman, run here against live servers, stops at the first unmet
precondition (no server at baseUrl, no administrator's credentials, a rate limit) with one
failure that says what to do, instead of a failure for every request after it.

The static tests read the collection as data, against the routes of an app built here. The
newman tests need newman from ``postman/package-lock.json`` (``npm ci --prefix postman``; ``make
test`` runs it); ``make newman`` runs the whole collection twice against MariaDB.

The folder of the mailed link needs a token from a mail, which newman cannot read: it is
skipped without ``mailToken``, and a test here does what ``scripts/newman.sh`` does to fill it
in (the server writes its mail into a folder, ``scripts/mail_token.py`` reads the newest).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask

from tests.helpers import PASSWORD, AppBuilder
from tests.live_server import create_admin, free_port, running_server

POSTMAN = Path(__file__).resolve().parent.parent / "postman"
COLLECTION = POSTMAN / "userhub.postman_collection.json"
ENVIRONMENT = POSTMAN / "userhub.postman_environment.json"
SCHEMA_V21 = "https://schema.getpostman.com/json/collection/v2.1.0/collection.json"
MIN_TESTS = 30
IGNORED_METHODS = {"HEAD", "OPTIONS"}

PM_TEST = re.compile(r"\bpm\.test\(")
STATUS_CHECK = re.compile(
    r"pm\.response\.to\.(?:have\.status|be\.(?:ok|success|created))\b|pm\.response\.code\b"
)
BODY_READ = re.compile(r"pm\.response\.(?:json|text|stream)\b|\$\(|require\('cheerio'\)")
BODY_VARIABLE = re.compile(r"const (\w+) = pm\.response\.json\(\)")
POSTMAN_VARIABLE = re.compile(r"\{\{[^{}]+\}\}")
PATH_PARAMETER = re.compile(r"\{[^{}/]+\}|<[^<>/]+>")

NEWMAN = POSTMAN / "node_modules" / ".bin" / "newman"
MAIL_TOKEN = POSTMAN.parent / "scripts" / "mail_token.py"
ADMIN_FOLDER = "API /api/v1 — administrator"
EMAIL_FOLDER = "API /api/v1 — e-mail: verification, password reset, change of address"
MAILED_LINK_FOLDER = "API /api/v1 — the mailed link (needs mailToken)"
ADMIN = "newman_admin"
# A live server's limits for the runs that are not about them: a whole run registers about 15
# accounts and logs in about 14 times, more than the defaults allow twice a minute, and asks
# for 3 mailed links (10 an hour by default).
HIGH_LIMITS = {
    "USERHUB_RATELIMIT_LOGIN": "1000 per minute",
    "USERHUB_RATELIMIT_REGISTER": "1000 per minute",
    "USERHUB_RATELIMIT_MAIL": "1000 per minute",
}
HEALTH_PATH = ["api", "v1", "health"]


@pytest.fixture(scope="module")
def collection() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(COLLECTION.read_text(encoding="utf-8"))
    return data


@pytest.fixture
def route_app(tmp_path: Path, build_app: AppBuilder) -> Flask:
    """An app for its routes and OpenAPI document only: no database is touched."""
    return build_app(f"sqlite:///{tmp_path / 'routes.sqlite3'}")


def walk(items: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Every request item, depth first, in run order; folders are items with ``item``."""
    for item in items:
        if "item" in item:
            yield from walk(item["item"])
        else:
            yield item


def scripts(item: dict[str, Any], listen: str) -> str:
    return "\n".join(
        "\n".join(event["script"]["exec"])
        for event in item.get("event", [])
        if event.get("listen") == listen
    )


def all_scripts(node: dict[str, Any]) -> Iterator[str]:
    """The text of every script in the collection: its own, its folders' and its requests'."""
    for event in node.get("event", []):
        yield "\n".join(event["script"]["exec"])
    for child in node.get("item", []):
        yield from all_scripts(child)


def request_path(item: dict[str, Any]) -> str:
    """``{{baseUrl}}/api/v1/users/{{userId}}?x=1`` → ``/api/v1/users/{}``."""
    url = item["request"]["url"]
    raw = url["raw"] if isinstance(url, dict) else url
    assert raw.startswith("{{baseUrl}}/"), f"{item['name']!r}: URL must start with {{{{baseUrl}}}}"
    path = raw.removeprefix("{{baseUrl}}").split("?", 1)[0].split("#", 1)[0]
    return POSTMAN_VARIABLE.sub("{}", path)


def template(path: str) -> str:
    """``/users/{user_id}`` (OpenAPI) or ``/users/<int:user_id>`` (Werkzeug) → ``/users/{}``."""
    return PATH_PARAMETER.sub("{}", path)


def requested(collection: dict[str, Any]) -> set[tuple[str, str]]:
    return {
        (item["request"]["method"].upper(), request_path(item)) for item in walk(collection["item"])
    }


def test_collection_is_v21_with_a_base_url(collection: dict[str, Any]) -> None:
    assert collection["info"]["schema"] == SCHEMA_V21
    variables = {v["key"]: v.get("value") for v in collection.get("variable", [])}
    assert variables.get("baseUrl") == "http://127.0.0.1:5000"
    environment = json.loads(ENVIRONMENT.read_text(encoding="utf-8"))
    values = {v["key"]: v.get("value") for v in environment["values"]}
    assert values["baseUrl"] == "http://127.0.0.1:5000"
    assert {"adminUsername", "adminPassword"} <= values.keys()


def test_every_openapi_operation_has_a_request(
    collection: dict[str, Any], route_app: Flask
) -> None:
    spec = route_app.test_client().get("/openapi.json").get_json()
    operations = {
        (method.upper(), template(path))
        for path, item in spec["paths"].items()
        for method in item
        if method.upper() in {"GET", "PUT", "POST", "DELETE", "PATCH"}
    }
    assert operations, "the OpenAPI document lists no operations"
    missing = sorted(operations - requested(collection))
    assert not missing, f"OpenAPI operations without a request in the collection: {missing}"


def test_every_tutorial_route_has_a_request(collection: dict[str, Any], route_app: Flask) -> None:
    routes = {
        (method, template(rule.rule))
        for rule in route_app.url_map.iter_rules()
        if rule.endpoint.startswith("tutorial.")
        for method in rule.methods or ()
        if method not in IGNORED_METHODS
    }
    assert len(routes) >= 10, f"too few tutorial routes found: {sorted(routes)}"
    missing = sorted(routes - requested(collection))
    assert not missing, f"tutorial routes without a request in the collection: {missing}"


def test_enough_tests_in_all(collection: dict[str, Any]) -> None:
    count = sum(len(PM_TEST.findall(text)) for text in all_scripts(collection))
    assert count >= MIN_TESTS, f"only {count} pm.test calls; at least {MIN_TESTS} are needed"


def test_every_request_tests_its_status(collection: dict[str, Any]) -> None:
    untested = []
    for item in walk(collection["item"]):
        # The text of each pm.test(...) call runs from its start to the next one.
        blocks = PM_TEST.split(scripts(item, "test"))[1:]
        if not any(STATUS_CHECK.search(block) for block in blocks):
            untested.append(item["name"])
    assert not untested, f"requests without a pm.test on the status: {untested}"


def test_every_request_tests_its_body(collection: dict[str, Any]) -> None:
    untested = []
    for item in walk(collection["item"]):
        script = scripts(item, "test")
        # The body is read directly, through a parsed page ($), or through a variable holding it.
        names = BODY_VARIABLE.findall(script)
        reads = [BODY_READ.pattern, *(rf"\b{re.escape(name)}\b" for name in names)]
        body = re.compile("|".join(reads))
        if not any(body.search(block) for block in PM_TEST.split(script)[1:]):
            untested.append(item["name"])
    assert not untested, f"requests without a pm.test on the body: {untested}"


def test_request_names_are_unique(collection: dict[str, Any]) -> None:
    names = [item["name"] for item in walk(collection["item"])]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    assert not duplicates, f"request names used more than once: {duplicates}"


def test_form_posts_do_not_follow_redirects(collection: dict[str, Any]) -> None:
    """The log-in posts answer 302; the tests must see it, not the page it leads to."""
    for item in walk(collection["item"]):
        method, path = item["request"]["method"].upper(), request_path(item)
        if (method, path) in {("POST", "/test_post"), ("POST", "/test_request")}:
            behaviour = item.get("protocolProfileBehavior", {})
            assert behaviour.get("followRedirects") is False, item["name"]


# --- newman against live servers ---------------------------------------------------------------


@dataclass
class NewmanRun:
    """A finished newman run: its exit code, what it printed, and its JSON report."""

    returncode: int
    output: str
    report: dict[str, Any]

    @property
    def failed_tests(self) -> list[str]:
        """The name of every failed assertion, in order (newman's own request errors left out)."""
        return [f["error"]["test"] for f in self.report["failures"] if f["error"].get("test")]

    def failure(self, test: str) -> dict[str, Any]:
        return next(f for f in self.report["failures"] if f["error"].get("test") == test)

    @property
    def sent(self) -> list[str]:
        """The collection's requests that were sent, by name. newman lists a request once more
        (the same id) for the precondition's probe of /api/v1/health before it; a request left
        unsent keeps the probe as its request, and is not counted."""
        sent: dict[str, str] = {}
        for execution in self.report["executions"]:
            own = execution["item"]["request"]["url"]["path"] == HEALTH_PATH
            if "response" in execution and (
                own or execution["request"]["url"]["path"] != HEALTH_PATH
            ):
                sent[execution["id"]] = execution["item"]["name"]
        return list(sent.values())


def run_newman(base_url: str, workdir: Path, *options: str) -> NewmanRun:
    """``newman run`` of the collection with its environment file, as the docs show it, with
    ``baseUrl`` set and ``options`` after."""
    if not NEWMAN.is_file():
        pytest.fail(
            f"newman is not installed ({NEWMAN} is missing): run `npm ci --prefix postman` "
            "(make test does it for you)",
            pytrace=False,
        )
    report = workdir / f"newman-{len(list(workdir.glob('newman-*.json')))}.json"
    command = [str(NEWMAN), "run", str(COLLECTION), "-e", str(ENVIRONMENT)]
    command += ["--env-var", f"baseUrl={base_url}", *options, "--color", "off"]
    command += ["--timeout-request", "15000", "--reporters", "cli,json"]
    command += ["--reporter-json-export", str(report)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=180)
    return NewmanRun(
        done.returncode, done.stdout + done.stderr, json.loads(report.read_text())["run"]
    )


def requests_in(collection: dict[str, Any], folders: list[str]) -> list[str]:
    """The names of the requests of these top-level folders, in run order."""
    return [
        item["name"] for top in collection["item"] if top["name"] in folders for item in walk([top])
    ]


def tutorial_folders(collection: dict[str, Any]) -> list[str]:
    return [folder["name"] for folder in collection["item"] if folder["name"].startswith("§")]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``userhub serve`` on a SQLite file, with an administrator ``newman_admin`` (password
    ``PASSWORD``) and limits high enough for every run of this module."""
    workdir = tmp_path_factory.mktemp("newman")
    database_url = f"sqlite:///{workdir / 'newman.sqlite3'}"
    with running_server("production", database_url, workdir, env=HIGH_LIMITS) as running:
        create_admin(database_url, workdir, ADMIN, PASSWORD)
        yield running.base


@pytest.mark.newman
def test_whole_collection_passes_with_an_administrator(server: str, tmp_path: Path) -> None:
    run = run_newman(
        server,
        tmp_path,
        "--env-var",
        f"adminUsername={ADMIN}",
        "--env-var",
        f"adminPassword={PASSWORD}",
    )
    assert run.returncode == 0, run.output
    assert run.failed_tests == []


@pytest.mark.newman
def test_without_admin_password_the_run_stops_at_the_administrator_folder(
    server: str, tmp_path: Path, collection: dict[str, Any]
) -> None:
    """The environment file leaves adminPassword empty: every folder before the
    administrator's passes, then one failure says what to set, and nothing more is sent."""
    run = run_newman(server, tmp_path)
    message = (
        "adminPassword is empty: set it with --env-var adminPassword=… (the password of an "
        "administrator created with flask --app userhub create-admin)"
    )
    assert run.returncode == 1
    assert run.failed_tests == [message]
    assert message in run.output
    skipped = {ADMIN_FOLDER, MAILED_LINK_FOLDER}  # the latter for want of mailToken
    others = [folder["name"] for folder in collection["item"] if folder["name"] not in skipped]
    assert run.sent == requests_in(collection, others)


@pytest.mark.newman
def test_a_wrong_admin_password_stops_the_run_at_the_log_in(server: str, tmp_path: Path) -> None:
    run = run_newman(
        server,
        tmp_path,
        *("--folder", ADMIN_FOLDER, "--env-var", f"adminUsername={ADMIN}"),
        *("--env-var", "adminPassword=not-the-password"),
    )
    assert run.returncode == 1
    assert run.failed_tests == [
        f"the server refused adminUsername '{ADMIN}' with this adminPassword: set those of an "
        "administrator created with flask --app userhub create-admin"
    ]
    assert run.sent == ["API POST /api/v1/tokens — administrator log-in"]


@pytest.mark.newman
def test_an_admin_username_that_is_no_administrator_stops_the_run(
    server: str, tmp_path: Path
) -> None:
    member = {"username": "newman_member", "password": PASSWORD}
    assert requests.post(f"{server}/api/v1/users", json=member, timeout=10).status_code == 201
    run = run_newman(
        server,
        tmp_path,
        *("--folder", ADMIN_FOLDER, "--env-var", "adminUsername=newman_member"),
        *("--env-var", f"adminPassword={PASSWORD}"),
    )
    assert run.returncode == 1
    assert run.failed_tests == ["is an administrator"]
    assert run.failure("is an administrator")["error"]["message"].startswith(
        "adminUsername 'newman_member' is not an administrator: set one created with "
        "flask --app userhub create-admin"
    )
    assert run.sent == [
        "API POST /api/v1/tokens — administrator log-in",
        "API GET /api/v1/users/me — the administrator",
    ]


@pytest.mark.newman
def test_the_tutorial_folders_pass_without_an_administrator(
    server: str, tmp_path: Path, collection: dict[str, Any]
) -> None:
    """The docs' command for the tutorial's folders alone, with adminPassword left empty."""
    folders = tutorial_folders(collection)
    assert len(folders) == 3, folders
    run = run_newman(
        server, tmp_path, *(option for name in folders for option in ("--folder", name))
    )
    assert run.returncode == 0, run.output
    assert run.failed_tests == []
    assert run.sent == requests_in(collection, folders)


@pytest.mark.newman
def test_no_server_at_base_url_is_one_failure_that_says_so(tmp_path: Path) -> None:
    base = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    run = run_newman(base, tmp_path)
    message = f"cannot reach {base}: start userhub (make run) or set baseUrl"
    assert run.returncode == 1
    assert run.failed_tests == [message]
    assert message in run.output
    assert "ECONNREFUSED" in run.failure(message)["error"]["message"]
    assert run.sent == []


@pytest.mark.newman
def test_a_rate_limit_is_one_failure_that_says_how_long_to_wait(
    tmp_path: Path, collection: dict[str, Any]
) -> None:
    """One registration a minute: §5's second registration gets 429. The first failure says
    to wait as long as the answer's Retry-After, and the run stops there."""
    database_url = f"sqlite:///{tmp_path / 'limited.sqlite3'}"
    limits = {**HIGH_LIMITS, "USERHUB_RATELIMIT_REGISTER": "1 per minute"}
    folder = next(name for name in tutorial_folders(collection) if name.startswith("§5"))
    with running_server("production", database_url, tmp_path, env=limits) as running:
        run = run_newman(running.base, tmp_path, "--folder", folder)
    assert run.returncode == 1
    first = run.failed_tests[0]
    found = re.fullmatch(
        r"rate limited: wait (\d+) s or raise the limits for the run \(set the server's "
        r'USERHUB_RATELIMIT_REGISTER higher, e\.g\. "300 per minute"\)',
        first,
    )
    assert found, run.failed_tests
    limited = run.failure(first)["source"]["name"]
    execution = next(e for e in run.report["executions"] if e["item"]["name"] == limited)
    assert execution["response"]["code"] == 429
    headers = {h["key"].lower(): h["value"] for h in execution["response"]["header"]}
    assert found[1] == headers["retry-after"]
    assert 1 <= int(found[1]) <= 61  # the rest of a minute's window, rounded up
    assert first in run.output
    assert run.sent == requests_in(collection, [folder])[:2]
    assert run.sent[1] == limited


@pytest.mark.newman
def test_without_mail_token_the_mailed_link_folder_is_skipped_and_says_so(
    server: str, tmp_path: Path, collection: dict[str, Any]
) -> None:
    """Nothing is sent and no test of the folder runs (none passes), and each request says why."""
    run = run_newman(server, tmp_path, "--folder", MAILED_LINK_FOLDER)
    assert run.returncode == 0, run.output
    assert run.sent == []
    assert run.report["stats"]["assertions"]["total"] == 0
    console = re.sub(r"\n\s*│ ", "", run.output)  # newman wraps console lines in a box
    for name in requests_in(collection, [MAILED_LINK_FOLDER]):
        assert f"skipped: {name}: set mailToken" in console


@pytest.mark.newman
def test_the_token_read_from_the_mail_confirms_the_new_address(
    tmp_path: Path, collection: dict[str, Any]
) -> None:
    """What ``scripts/newman.sh`` does: the server writes its mail into a folder; after the
    e-mail folder, ``scripts/mail_token.py`` reads the token and the address of the newest
    change-of-address mail, and the mailed link's folder follows it: the address is the
    account's, verified, and the link works once."""
    mail = tmp_path / "mail"
    settings = {**HIGH_LIMITS, "USERHUB_MAIL_URL": mail.as_uri()}
    with running_server(
        "production", f"sqlite:///{tmp_path / 'mail.sqlite3'}", tmp_path, env=settings
    ) as running:
        first = run_newman(running.base, tmp_path, "--folder", EMAIL_FOLDER)
        assert first.returncode == 0, first.output
        read = subprocess.run(
            [sys.executable, str(MAIL_TOKEN), str(mail), "/email/change/confirm"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert read.returncode == 0, read.stderr
        token, address = read.stdout.strip().split("\t")
        second = run_newman(
            running.base,
            tmp_path,
            *("--folder", MAILED_LINK_FOLDER, "--env-var", f"mailToken={token}"),
            *("--env-var", f"mailAddress={address}"),
        )
    assert second.returncode == 0, second.output
    assert second.failed_tests == []
    assert second.sent == requests_in(collection, [MAILED_LINK_FOLDER])
    assert address.startswith("new.mail") and address.endswith("@example.com")
