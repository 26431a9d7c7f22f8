"""Allowed hosts (``USERHUB_ALLOWED_HOSTS``, ``web/hosts.py``): a request for a host other than
this site's own is refused with 400 in the route's format, before anything else runs, and the
host it named is written into no header and no body. The shipped nginx
(``deploy/nginx.conf.template``) refuses such a host itself.

Issue 16, finding 5: ``curl -H 'Host: evil.example' U/static//hello-flask.gif`` was answered
``308 Location: http://evil.example/static/hello-flask.gif``: Werkzeug merges the double slash
with a redirect to an absolute URL built on the Host header.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from tests.helpers import (
    PASSWORD,
    AppBuilder,
    assert_problem,
)
from tests.live_server import ServerProcess, free_port, running_nginx, running_server
from userhub.web.security_headers import CONTENT_SECURITY_POLICY

FOREIGN = "evil.example"
# The double-slash addresses of the finding, and where Werkzeug's redirect sends each.
MERGED_SLASHES = {
    "/static//hello-flask.gif": "/static/hello-flask.gif",
    "/account//password": "/account/password",
    "/api/v1//users/me": "/api/v1/users/me",
}
REFUSAL = "does not answer to the host name"


def assert_never_named(response: TestResponse) -> None:
    """The foreign host is in no header and nowhere in the body."""
    assert FOREIGN not in str(response.headers)
    assert FOREIGN not in response.get_data(as_text=True)


def foreign(client: FlaskClient, path: str, method: str = "GET", **kwargs: Any) -> TestResponse:
    response = client.open(path, method=method, headers={"Host": FOREIGN}, **kwargs)
    assert response.status_code == 400
    assert "Location" not in response.headers
    assert_never_named(response)
    return response


# --- the app ---------------------------------------------------------------------------------


def test_an_api_route_answers_a_foreign_host_with_a_problem(client: FlaskClient) -> None:
    problem = assert_problem(foreign(client, "/api/v1/users/me"), 400)
    assert problem["type"] == "/problems/host-not-allowed"
    assert REFUSAL in problem["detail"]


@pytest.mark.parametrize("path", ["/", "/account", "/login", "/no/such/page"])
def test_a_page_answers_a_foreign_host_with_the_error_page(client: FlaskClient, path: str) -> None:
    page = foreign(client, path)
    html = page.get_data(as_text=True)
    assert page.mimetype == "text/html" and REFUSAL in html
    # The page's links are built (relative) although no URL may name the request's host.
    assert 'href="/static/style.css"' in html and 'href="/"' in html


def test_the_tutorials_routes_keep_their_formats(client: FlaskClient) -> None:
    bare = foreign(client, "/test_get?user_name=张三")
    assert bare.mimetype == "text/plain" and REFUSAL in bare.get_data(as_text=True)
    saved = foreign(client, "/save_data_to_mysql", "POST", json={"username": "x"})
    problem = assert_problem(saved, 400, prefix="Commit Status:Failed, Message:")
    assert problem["type"] == "/problems/host-not-allowed"


@pytest.mark.parametrize("path", MERGED_SLASHES)
def test_a_merged_slash_redirect_names_only_this_site(client: FlaskClient, path: str) -> None:
    foreign(client, path)
    redirect = client.get(path, headers={"Host": "localhost:5000"})
    assert redirect.status_code == 308
    assert redirect.headers["Location"] == "http://localhost:5000" + MERGED_SLASHES[path]


def test_a_foreign_host_is_refused_before_limits_csrf_and_the_view(
    build_app: AppBuilder, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    app = build_app(database_url, RATELIMIT_ENABLED=True, USERHUB_RATELIMIT_LOGIN="1 per minute")
    client = app.test_client()
    with caplog.at_level(logging.INFO, logger="userhub"):
        for _ in range(3):  # not counted by the limit (1 a minute), nor checked as a log-in
            refused = foreign(client, "/api/v1/tokens", "POST", json={"username": "x"})
            assert refused.get_json()["type"] == "/problems/host-not-allowed"
        page = foreign(client, "/register", "POST", data={"username": "x"})  # no CSRF token
        assert REFUSAL in page.get_data(as_text=True)
    assert (
        client.post("/api/v1/tokens", json={"username": "x", "password": PASSWORD}).status_code
        == 401
    )
    logged = [r.getMessage() for r in caplog.records if "USERHUB_ALLOWED_HOSTS" in r.getMessage()]
    assert len(logged) == 4 and all(repr(FOREIGN) in line for line in logged)


def test_behind_a_trusted_proxy_the_forwarded_host_is_checked(
    build_app: AppBuilder, database_url: str
) -> None:
    client = build_app(database_url, USERHUB_TRUSTED_PROXIES=1).test_client()
    path = "/static//hello-flask.gif"
    refused = client.get(path, headers={"X-Forwarded-Host": FOREIGN})  # Host: localhost
    assert refused.status_code == 400 and "Location" not in refused.headers
    assert_never_named(refused)
    forwarded = {"X-Forwarded-Host": "localhost", "X-Forwarded-Proto": "https"}
    redirect = client.get(path, headers={"Host": "10.0.0.5:8101", **forwarded})
    assert redirect.status_code == 308
    assert redirect.headers["Location"] == "https://localhost/static/hello-flask.gif"


def test_without_trusted_proxies_a_forwarded_host_is_ignored(client: FlaskClient) -> None:
    redirect = client.get("/static//hello-flask.gif", headers={"X-Forwarded-Host": FOREIGN})
    assert redirect.status_code == 308
    assert redirect.headers["Location"] == "http://localhost/static/hello-flask.gif"


@pytest.mark.parametrize(
    ("host", "status"),
    [
        ("localhost", 200),
        ("localhost:5000", 200),
        ("127.0.0.1:5000", 200),
        ("LocalHost:5000", 200),  # Werkzeug compares as sent; userhub in lower case
        ("[::1]:5000", 200),  # Werkzeug never matches IPv6; userhub compares addresses
        ("[::1]", 200),
        ("[0:0:0:0:0:0:0:1]:5000", 200),
        ("[::2]:5000", 400),
        ("[::1]:99999", 400),
        ("[::1]evil.example", 400),
        ("127.0.0.2", 400),
        ("localhost.evil.example", 400),
        ("evil.example:5000", 400),
        ("local host", 400),
        ("", 400),
    ],
)
def test_the_development_hosts_are_localhost_and_the_loopback_addresses(
    client: FlaskClient, host: str, status: int
) -> None:
    response = client.get("/response_json", headers={"Host": host})
    assert response.status_code == status
    if status == 400:
        assert_problem(response, 400)


def test_a_leading_dot_allows_the_name_and_every_subdomain(
    build_app: AppBuilder, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("USERHUB_ALLOWED_HOSTS", ".example.com, userhub.example.org")
    client = build_app(database_url).test_client()

    def status(host: str) -> int:
        return client.get("/response_json", headers={"Host": host}).status_code

    allowed = ["example.com", "a.example.com", "a.b.example.com:8443", "userhub.example.org"]
    refused = ["badexample.com", "example.com.evil.example", "example.org", "localhost"]
    assert [status(host) for host in allowed] == [200] * len(allowed)
    assert [status(host) for host in refused] == [400] * len(refused)


# --- a real server, and the shipped nginx in front of it ------------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """``userhub serve`` in production (granian, 2 workers), allowed hosts 127.0.0.1 and
    localhost (``live_server.ALLOWED_HOSTS``), behind one proxy (nginx, in the tests that start
    it; a request sent straight to it carries no X-Forwarded-* unless the test adds them)."""
    workdir = tmp_path_factory.mktemp("hosts")
    url = f"sqlite:///{workdir / 'hosts.sqlite3'}"
    proxied = {"USERHUB_TRUSTED_PROXIES": "1"}
    with running_server("production", url, workdir, env=proxied) as up:
        yield up


def port_of(base: str) -> int:
    return int(base.rsplit(":", 1)[1])


def exchange(port: int, request: bytes) -> bytes:
    """Send raw bytes, as curl would with a Host of its choosing; everything answered."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


def raw_get(path: str, host: str, extra: str = "") -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: {host}\r\n{extra}Connection: close\r\n\r\n".encode()


def get(
    port: int, path: str, host: str, extra: str = ""
) -> tuple[str, dict[str, list[str]], bytes]:
    """A raw GET: its status line, headers (lower-case names, every value) and body."""
    answer = exchange(port, raw_get(path, host, extra))
    head, _, body = answer.partition(b"\r\n\r\n")
    status, *lines = head.decode("latin-1").split("\r\n")
    headers: dict[str, list[str]] = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers.setdefault(name.lower(), []).append(value.strip())
    return status, headers, body


@pytest.mark.parametrize("path", MERGED_SLASHES)
def test_finding_5_replayed_against_userhub_serve(server: ServerProcess, path: str) -> None:
    port = port_of(server.base)
    status, headers, body = get(port, path, FOREIGN)
    assert status.startswith("HTTP/1.1 400 ")
    assert "location" not in headers
    assert FOREIGN not in str(headers) and FOREIGN.encode() not in body
    status, headers, _ = get(port, path, f"127.0.0.1:{port}")
    assert status.startswith("HTTP/1.1 308 ")
    assert headers["location"] == [f"http://127.0.0.1:{port}{MERGED_SLASHES[path]}"]
    # The same through the one proxy it trusts: X-Forwarded-Host is the host checked.
    status, headers, body = get(port, path, "127.0.0.1", f"X-Forwarded-Host: {FOREIGN}\r\n")
    assert status.startswith("HTTP/1.1 400 ")
    assert "location" not in headers and FOREIGN.encode() not in body


NGINX_OWN_HEADERS = {
    "content-security-policy": [
        "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    ],
    "x-content-type-options": ["nosniff"],
    "x-frame-options": ["DENY"],
    "referrer-policy": ["same-origin"],
}


def test_nginx_passes_its_own_host_and_closes_on_any_other(
    server: ServerProcess, tmp_path: Path
) -> None:
    with running_nginx(tmp_path, port_of(server.base)) as port:
        path = "/static//hello-flask.gif"
        status, headers, _ = get(port, path, "127.0.0.1")
        assert status.startswith("HTTP/1.1 308 ")
        assert headers["location"] == [f"http://127.0.0.1:{port}/static/hello-flask.gif"]
        # userhub's own headers, each once: nginx adds its own only where an answer lacks them.
        assert headers["content-security-policy"] == [CONTENT_SECURITY_POLICY]
        assert headers["x-frame-options"] == ["DENY"]

        for host in (FOREIGN, f"{FOREIGN}:{port}", "localhost", "127.0.0.1.evil.example"):
            assert exchange(port, raw_get(path, host)) == b""  # closed unanswered (444)
        assert exchange(port, b"GET / HTTP/1.0\r\n\r\n") == b""  # no Host at all

        # What nginx answers itself carries the security headers too.
        status, headers, _ = get(port, "/" + "a" * 9000, "127.0.0.1")
        assert status.startswith("HTTP/1.1 414 ")
        assert {name: headers.get(name) for name in NGINX_OWN_HEADERS} == NGINX_OWN_HEADERS


def test_nginx_answers_with_its_security_headers_when_no_instance_does(tmp_path: Path) -> None:
    with running_nginx(tmp_path, free_port()) as port:  # nothing listens upstream
        status, headers, _ = get(port, "/api/v1/health", "127.0.0.1")
    assert status.startswith("HTTP/1.1 502 ")
    assert {name: headers.get(name) for name in NGINX_OWN_HEADERS} == NGINX_OWN_HEADERS


def test_granians_own_replies_are_bare(server: ServerProcess) -> None:
    """What docs/production.md says a deployer without a proxy gets: granian refuses these
    itself, before userhub sees them, with an empty body and no security headers."""
    port = port_of(server.base)
    too_many = "".join(f"X-Header-{n}: v\r\n" for n in range(100))
    for request, status in [
        (b"GARBAGE\r\n\r\n", "400"),
        (f"GET /{'a' * 70_000} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode(), "414"),
        (f"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n{too_many}\r\n".encode(), "431"),
    ]:
        head = exchange(port, request).partition(b"\r\n\r\n")[0].decode("latin-1").lower()
        assert head.startswith(f"http/1.1 {status} ")
        assert "content-length: 0" in head and "content-security-policy" not in head
