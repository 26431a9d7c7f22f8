"""Tracing, opt-in: OpenTelemetry spans for each request and each SQL statement, sent over OTLP.

Off unless a deployer names where spans go: ``USERHUB_OTEL_ENDPOINT`` (an OTLP/HTTP traces
URL), or the standard ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` / ``OTEL_EXPORTER_OTLP_ENDPOINT``.
Off, nothing of OpenTelemetry is imported and no request pays anything: the packages are an
extra (``pip install 'userhub[otel]'``), imported here only once tracing is on.
``OTEL_SDK_DISABLED=true`` turns it off whatever else is set.

On, each request is a SERVER span named for its route (``GET /api/v1/users/me``), carrying the
request id the access log and the ``X-Request-ID`` header carry (``userhub.request_id``), so a
user's quoted id finds its trace; each SQL statement is a CLIENT span under it. The SDK reads
its other standard variables itself: ``OTEL_SERVICE_NAME`` (here "userhub" by default),
``OTEL_RESOURCE_ATTRIBUTES``, ``OTEL_TRACES_SAMPLER`` and its argument, the exporter's headers,
timeout and compression. An incoming ``traceparent`` header continues the caller's trace.

The tracer provider is this app's own, passed to each instrumentation and never made global:
every app built in a process (tests build many, ``userhub serve`` one per worker, after the
fork) has its own provider, whose batch exporter thread is started in the process that uses it.

Tests give an exporter of their own instead (``create_app({"TRACING_EXPORTER": exporter})``,
such as the SDK's ``InMemorySpanExporter``): spans then go to it as each one ends.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from flask import Flask
from sqlalchemy import Engine

from ..config import ConfigError
from ..extensions import db
from .logs import REQUEST_ID_KEY

# A test's SpanExporter, in app.config: tracing on, spans handed to it one by one.
EXPORTER_KEY = "TRACING_EXPORTER"
EXTENSION_KEY = "userhub.tracing"
REQUEST_ID_ATTRIBUTE = "userhub.request_id"
DEFAULT_SERVICE_NAME = "userhub"
ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
INSTALL = "pip install 'userhub[otel]'"


def wanted(config: Mapping[str, Any], environ: Mapping[str, str]) -> str | None:
    """Why tracing is on (the setting that turned it on), or None when it is off."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    if config.get(EXPORTER_KEY) is not None:
        return EXPORTER_KEY
    if config.get("USERHUB_OTEL_ENDPOINT"):
        return "USERHUB_OTEL_ENDPOINT"
    return next((name for name in ENDPOINT_VARIABLES if environ.get(name)), None)


def init_app(app: Flask, environ: Mapping[str, str] | None = None) -> None:
    """Trace this app's requests and its engine's statements, if tracing is configured (after
    ``database.init_app``: the engine must exist)."""
    environ = os.environ if environ is None else environ
    reason = wanted(app.config, environ)
    if reason is None:
        return  # nothing imported, nothing installed: no cost
    try:
        from opentelemetry.instrumentation.flask import FlaskInstrumentor
    except ImportError as exc:
        raise ConfigError(
            f"{reason} turns tracing on, but OpenTelemetry is not installed ({exc.name} is "
            f"missing). Install it with: {INSTALL}, or unset {reason}."
        ) from None
    provider = _provider(app, environ)
    hooks = app.before_request_funcs.setdefault(None, [])
    known = list(hooks)
    FlaskInstrumentor.instrument_app(  # type: ignore[no-untyped-call]
        app,
        request_hook=_note_request_id,
        tracer_provider=provider,
        meter_provider=_no_metrics(),
    )
    # Its span starts first, so a request another hook refuses (a foreign host, a rate limit,
    # CSRF) is traced too, and every hook's queries fall inside the span.
    hooks[:] = [hook for hook in hooks if hook not in known] + known
    with app.app_context():
        _trace_statements(db.engine, provider)
    app.extensions[EXTENSION_KEY] = provider


def _provider(app: Flask, environ: Mapping[str, str]) -> Any:
    """This app's TracerProvider, with its exporter: the test's, else OTLP/HTTP in batches."""
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    detected = Resource.create()  # OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES
    named = not str(detected.attributes.get(SERVICE_NAME, "")).startswith("unknown_service")
    resource = detected if named else Resource.create({SERVICE_NAME: DEFAULT_SERVICE_NAME})
    provider = TracerProvider(resource=resource)  # the sampler: OTEL_TRACES_SAMPLER
    exporter = app.config.get(EXPORTER_KEY)
    if exporter is not None:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        return provider
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    except ImportError as exc:
        raise ConfigError(
            f"Tracing is on, but the OTLP exporter is not installed ({exc.name} is missing). "
            f"Install it with: {INSTALL}."
        ) from None
    endpoint = app.config.get("USERHUB_OTEL_ENDPOINT") or None  # None: the OTEL_* variables
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    return provider


def _note_request_id(span: Any, environ: dict[str, Any]) -> None:
    """The request's id (``web/logs.py``'s middleware, outside this one, has set it)."""
    request_id = environ.get(REQUEST_ID_KEY)
    if request_id and span.is_recording():
        span.set_attribute(REQUEST_ID_ATTRIBUTE, request_id)


def _trace_statements(engine: Engine, provider: Any) -> None:
    """A span for each statement of this engine only, with this app's provider.

    ``SQLAlchemyInstrumentor().instrument(engine=...)`` would do the same, but it is a
    process-wide singleton: it also wraps ``create_engine`` for every later engine, and does
    nothing for the engine of a second app. Its ``EngineTracer`` is what it attaches to one
    engine; it is used here directly."""
    from opentelemetry.instrumentation.sqlalchemy.engine import EngineTracer
    from opentelemetry.instrumentation.sqlalchemy.version import __version__
    from opentelemetry.trace import get_tracer

    tracer = get_tracer("opentelemetry.instrumentation.sqlalchemy", __version__, provider)
    connections = _no_metrics().get_meter(__name__).create_up_down_counter("unused")
    EngineTracer(InsideRequests(tracer), engine, connections)  # type: ignore[no-untyped-call]


class InsideRequests:
    """A tracer that starts a statement's span only inside a traced request.

    Outside one, a statement would be a trace of its own: each worker's mail sender polls the
    outbox every few seconds, and every command (``db upgrade``) runs statements; those spans
    would outnumber the requests' and tell nothing. They get a span that records nothing."""

    def __init__(self, tracer: Any) -> None:
        self.tracer = tracer

    def start_span(self, *args: Any, **kwargs: Any) -> Any:
        from opentelemetry import trace

        if not trace.get_current_span().get_span_context().is_valid:
            return trace.INVALID_SPAN
        return self.tracer.start_span(*args, **kwargs)


def _no_metrics() -> Any:
    """Traces only: the instrumentations' own metrics are not collected."""
    from opentelemetry.metrics import NoOpMeterProvider

    return NoOpMeterProvider()


def provider_of(app: Flask) -> Any | None:
    """The app's TracerProvider, or None when tracing is off."""
    return app.extensions.get(EXTENSION_KEY)


def shutdown(app: Flask) -> None:
    """Send the spans still waiting, and stop the exporter's thread (nothing when off)."""
    provider = provider_of(app)
    if provider is not None:
        provider.shutdown()
