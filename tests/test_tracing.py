"""Opt-in tracing (web/tracing.py): a request's span, its statements' spans under it and its
request id; spans sent over OTLP/HTTP to a real listener; nothing loaded when it is off."""

from __future__ import annotations

import http.server
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from flask import Flask
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from tests.helpers import PASSWORD, REPO, AppBuilder
from userhub import create_app
from userhub.config import ConfigError
from userhub.extensions import db
from userhub.web import tracing

SAVE = "/save_data_to_mysql"  # the tutorial's route that writes a user


@pytest.fixture
def traced(
    build_app: AppBuilder, database_url: str
) -> Iterator[tuple[Flask, InMemorySpanExporter]]:
    """An app whose spans go to an in-memory exporter, the way tests turn tracing on."""
    exporter = InMemorySpanExporter()
    app = build_app(database_url, TRACING_EXPORTER=exporter)
    yield app, exporter
    tracing.shutdown(app)


def server_span(spans: tuple[ReadableSpan, ...]) -> ReadableSpan:
    [span] = [span for span in spans if span.kind == SpanKind.SERVER]
    return span


def test_a_request_span_holds_its_statements_and_its_request_id(
    traced: tuple[Flask, InMemorySpanExporter], backend: str
) -> None:
    app, exporter = traced
    response = app.test_client().post(SAVE, json={"username": "张三", "password": PASSWORD})
    assert response.status_code == 200, response.get_data(as_text=True)

    spans = exporter.get_finished_spans()
    request = server_span(spans)
    assert request.name == f"POST {SAVE}"
    assert request.attributes is not None
    assert request.attributes["http.route"] == SAVE
    assert request.attributes[tracing.REQUEST_ID_ATTRIBUTE] == response.headers["X-Request-ID"]
    assert request.parent is None

    statements = [span for span in spans if span.kind == SpanKind.CLIENT]
    assert request.context is not None
    for span in statements:
        assert span.parent is not None and span.context is not None
        assert span.context.trace_id == request.context.trace_id
        assert span.parent.span_id == request.context.span_id
        assert span.attributes is not None
        assert span.attributes["db.system"] == backend
    insert = [
        span
        for span in statements
        if str((span.attributes or {})["db.statement"]).startswith("INSERT INTO `user`")
        or str((span.attributes or {})["db.statement"]).startswith("INSERT INTO user ")
    ]
    assert len(insert) == 1, [span.name for span in statements]


def test_statements_outside_a_request_are_not_traced(
    traced: tuple[Flask, InMemorySpanExporter],
) -> None:
    """A command's or the mail sender's statements would each be a trace of their own."""
    app, exporter = traced
    with app.app_context():
        assert db.session.execute(sa.text("SELECT 1")).scalar() == 1
    assert exporter.get_finished_spans() == ()
    app.test_client().get("/api/v1/users/me")  # while a request still is traced
    assert exporter.get_finished_spans()


def test_the_id_a_client_sent_names_its_span_and_its_trace_continues(
    traced: tuple[Flask, InMemorySpanExporter],
) -> None:
    app, exporter = traced
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    response = app.test_client().get(
        "/test_get?user_name=a",
        headers={
            "X-Request-ID": "support-ticket-42",
            "traceparent": f"00-{trace_id}-00f067aa0ba902b7-01",
        },
    )
    assert response.headers["X-Request-ID"] == "support-ticket-42"
    request = server_span(exporter.get_finished_spans())
    assert request.attributes is not None
    assert request.attributes[tracing.REQUEST_ID_ATTRIBUTE] == "support-ticket-42"
    assert request.context is not None and request.parent is not None
    assert f"{request.context.trace_id:032x}" == trace_id
    assert f"{request.parent.span_id:016x}" == "00f067aa0ba902b7"


def test_a_request_refused_before_its_view_is_traced_too(
    traced: tuple[Flask, InMemorySpanExporter],
) -> None:
    """The span starts before every other hook: a foreign host's 400 has one."""
    app, exporter = traced
    response = app.test_client().get("/test_get", headers={"Host": "evil.example"})
    assert response.status_code == 400
    request = server_span(exporter.get_finished_spans())
    assert request.attributes is not None
    assert request.attributes["http.status_code"] == 400
    assert request.attributes[tracing.REQUEST_ID_ATTRIBUTE] == response.headers["X-Request-ID"]


class OtlpListener(http.server.ThreadingHTTPServer):
    """A collector's OTLP/HTTP port, keeping each POST's path and body."""

    def __init__(self) -> None:
        self.received: list[tuple[str, str, bytes]] = []
        super().__init__(("127.0.0.1", 0), OtlpHandler)

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class OtlpHandler(http.server.BaseHTTPRequestHandler):
    server: OtlpListener

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.received.append((self.path, self.headers["Content-Type"], body))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture
def otlp_listener() -> Iterator[OtlpListener]:
    listener = OtlpListener()
    thread = threading.Thread(target=listener.serve_forever, daemon=True)
    thread.start()
    yield listener
    listener.shutdown()
    listener.server_close()


def exported(listener: OtlpListener) -> tuple[str, set[str]]:
    """The service name and span names the listener received at /v1/traces."""
    names: set[str] = set()
    services: set[str] = set()
    for path, content_type, body in listener.received:
        assert (path, content_type) == ("/v1/traces", "application/x-protobuf")
        export = ExportTraceServiceRequest.FromString(body)
        for resource_spans in export.resource_spans:
            for attribute in resource_spans.resource.attributes:
                if attribute.key == "service.name":
                    services.add(attribute.value.string_value)
            for scope_spans in resource_spans.scope_spans:
                names.update(span.name for span in scope_spans.spans)
    [service] = services
    return service, names


@pytest.mark.parametrize(
    ("variables", "service"),
    [
        ({"USERHUB_OTEL_ENDPOINT": "{origin}"}, "userhub"),  # a bare origin: /v1/traces added
        (
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "{origin}", "OTEL_SERVICE_NAME": "accounts"},
            "accounts",
        ),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "{origin}/v1/traces"}, "userhub"),
    ],
)
def test_spans_go_over_otlp_http_where_the_environment_says(
    otlp_listener: OtlpListener,
    monkeypatch: pytest.MonkeyPatch,
    build_app: AppBuilder,
    database_url: str,
    variables: dict[str, str],
    service: str,
) -> None:
    for name, value in variables.items():
        monkeypatch.setenv(name, value.format(origin=otlp_listener.origin))
    app = build_app(database_url)
    response = app.test_client().post(SAVE, json={"username": "张三", "password": PASSWORD})
    assert response.status_code == 200
    tracing.shutdown(app)  # sends what the batch holds
    name, spans = exported(otlp_listener)
    assert name == service
    assert f"POST {SAVE}" in spans
    assert any(span.startswith("INSERT") for span in spans), spans


def test_otel_sdk_disabled_turns_everything_off(
    monkeypatch: pytest.MonkeyPatch, build_app: AppBuilder, database_url: str
) -> None:
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")
    exporter = InMemorySpanExporter()
    app = build_app(database_url, TRACING_EXPORTER=exporter)
    response = app.test_client().post(SAVE, json={"username": "张三", "password": PASSWORD})
    assert response.status_code == 200
    assert tracing.provider_of(app) is None
    assert not getattr(app, "_is_instrumented_by_opentelemetry", False)
    assert exporter.get_finished_spans() == ()


def test_a_bad_endpoint_stops_the_start(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("USERHUB_OTEL_ENDPOINT", "collector:4318")
    with pytest.raises(ConfigError, match=r"USERHUB_OTEL_ENDPOINT='collector:4318' is invalid"):
        create_app()


def test_tracing_without_its_packages_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("USERHUB_OTEL_ENDPOINT", "http://127.0.0.1:4318/v1/traces")
    monkeypatch.setitem(sys.modules, "opentelemetry.instrumentation.flask", None)
    with pytest.raises(ConfigError) as raised:
        create_app()
    message = raised.value.format_message()
    assert "USERHUB_OTEL_ENDPOINT turns tracing on" in message
    assert "pip install 'userhub[otel]'" in message


NOTHING_LOADED = """
import json, sys
SAVE = "/save_data_to_mysql"
from userhub import create_app
app = create_app({"SQLALCHEMY_DATABASE_URI": sys.argv[1]})
answer = app.test_client().post(SAVE, json={"username": "x", "password": "correct horse"})
loaded = sorted(name for name in sys.modules if name.split(".")[0] == "opentelemetry")
print(json.dumps({"status": answer.status_code, "body": answer.get_data(as_text=True),
                  "loaded": loaded}))
"""


def test_off_nothing_of_opentelemetry_is_imported(database_url: str, tmp_path: Path) -> None:
    """In a fresh process, as a server starts: the app built and a request that reaches the
    database, without any tracing setting."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("USERHUB_", "OTEL_", "FLASK_"))}
    env.update(USERHUB_INSTANCE_PATH=str(tmp_path / "instance"), USERHUB_LOG_LEVEL="WARNING")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO / "src"), env.get("PYTHONPATH")]))
    result = subprocess.run(  # noqa: S603 (our own code)
        [sys.executable, "-c", NOTHING_LOADED, database_url],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    outcome = json.loads(result.stdout.splitlines()[-1])
    assert outcome["status"] == 200  # a real request, which wrote a user
    assert "Succeeded" in outcome["body"]
    assert outcome["loaded"] == []
