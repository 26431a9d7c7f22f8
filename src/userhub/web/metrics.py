"""``/metrics`` for Prometheus, and the timing of every request it reports.

Off unless ``USERHUB_METRICS_TOKEN`` is set: then ``/metrics`` is 404 like any unknown path, and
nothing here runs on a request. Set, ``/metrics`` answers only a scraper that sends
``Authorization: Bearer <token>`` (401 otherwise), so it is never public by accident, wherever
the port is reachable from.

The timing is a WSGI middleware, like the request log (``logs.py``): it sees every answer,
errors and refusals included, with its status. Its route label is the URL rule's template
(``/api/v1/users/<int:user_id>``), noted in the environ when the request ends, since the
request is gone when the middleware looks; a request that matched no rule (404, 405) is
``<unmatched>``, so nobody can grow the series by asking for made-up paths.

The answer adds up every worker of ``userhub serve`` (its files in ``PROMETHEUS_MULTIPROC_DIR``,
``metrics.py``), whichever worker the scrape reaches; elsewhere, this process's own values. The
outbox's depth is asked of the database at scrape time, so it is right whoever sent the mail.
"""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from flask import Flask, Response, current_app, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    generate_latest,
    multiprocess,
)
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from sqlalchemy.exc import SQLAlchemyError

from .. import metrics
from ..services import outbox

log = logging.getLogger("userhub")

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
ROUTE_KEY = "userhub.route"  # in the environ: the URL rule the request matched
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
OTHER_METHOD = "other"


class RequestMetrics:
    """WSGI middleware: each request counted and timed by method, route and status, and
    counted in flight while the app works on it."""

    def __init__(self, app: WSGIApp) -> None:
        self.app = app
        # Each label set's two series, found once: prometheus_client's ``labels`` takes a lock
        # and builds a key on every call.
        self.series: dict[tuple[str, str, str], tuple[Any, Any]] = {}

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        started = time.perf_counter()
        status = "500"  # unless the app answers: an exception that escaped it

        def start_with_status(status_line: str, headers: Any, *exc: Any) -> Any:
            nonlocal status
            status = status_line[:3]
            return start_response(status_line, headers, *exc)

        metrics.HTTP_IN_FLIGHT.inc()
        try:
            return self.app(environ, start_with_status)
        finally:
            metrics.HTTP_IN_FLIGHT.dec()
            method = environ.get("REQUEST_METHOD", "")
            key = (
                method if method in METHODS else OTHER_METHOD,
                environ.get(ROUTE_KEY, metrics.UNMATCHED_ROUTE),
                status,
            )
            series = self.series.get(key)
            if series is None:
                series = self.series[key] = (
                    metrics.HTTP_REQUESTS.labels(*key),
                    metrics.HTTP_DURATION.labels(*key),
                )
            series[0].inc()
            series[1].observe(time.perf_counter() - started)


def note_route(_error: BaseException | None) -> None:
    """At the end of the request: the rule it matched, for the middleware's label."""
    rule = request.url_rule
    request.environ[ROUTE_KEY] = rule.rule if rule is not None else metrics.UNMATCHED_ROUTE


def outbox_depth() -> Iterator[Metric]:
    """The mail waiting in the outbox, and the mail given up, as the database has them now."""
    try:
        counts = outbox.counts()
    except SQLAlchemyError as exc:  # the scrape still answers; the series is missing
        log.warning("/metrics: the outbox could not be counted (%s)", type(exc).__name__)
        return
    yield GaugeMetricFamily(
        "userhub_outbox_depth", "Mails waiting in the outbox to be sent.", value=counts.pending
    )
    yield GaugeMetricFamily(
        "userhub_outbox_failed",
        "Mails given up and kept in the outbox (flask --app userhub mail retry sends them).",
        value=counts.failed,
    )


class Collected:
    """A collector made of a function (prometheus_client registers objects with ``collect``)."""

    def __init__(self, collect: Callable[[], Iterable[Metric]]) -> None:
        self.collect = collect


def authorized() -> bool:
    expected = "Bearer " + current_app.config["USERHUB_METRICS_TOKEN"]
    sent = request.headers.get("Authorization", "")
    # A header arrives as latin-1 text: its bytes are what the scraper sent (UTF-8 or not).
    return hmac.compare_digest(sent.encode("latin-1", "replace"), expected.encode("utf-8"))


def scrape() -> Response:
    """``GET /metrics``: every worker's values, in Prometheus' text format."""
    if not authorized():
        return Response(
            "Send the metrics token: Authorization: Bearer <USERHUB_METRICS_TOKEN>.\n",
            401,
            {"WWW-Authenticate": 'Bearer realm="metrics"', "Cache-Control": "no-store"},
            mimetype="text/plain",
        )
    registry = CollectorRegistry()
    if metrics.multiprocess_folder() is not None:
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    else:
        registry.register(Collected(REGISTRY.collect))
    registry.register(Collected(outbox_depth))
    return Response(
        generate_latest(registry),
        200,
        {"Content-Type": CONTENT_TYPE_LATEST, "Cache-Control": "no-store"},
    )


def init_app(app: Flask) -> None:
    if not app.config["USERHUB_METRICS_TOKEN"]:
        return
    app.add_url_rule("/metrics", "metrics", scrape, methods=["GET"])
    app.teardown_request(note_route)
    app.wsgi_app = RequestMetrics(app.wsgi_app)  # type: ignore[method-assign]
