"""What userhub counts for Prometheus: every metric, defined once, here.

The services and the pipeline import the objects and move them (a log-in, a mail sent, a hash);
``web/metrics.py`` times each request and answers ``/metrics``. Counting costs a lock and an
addition, so it is done whether or not ``/metrics`` is on; only the request timing, which adds a
middleware, is installed when ``USERHUB_METRICS_TOKEN`` is set.

Several worker processes. prometheus_client keeps its values in memory, one process each,
unless ``PROMETHEUS_MULTIPROC_DIR`` names a folder: then each process writes its values to
files there (``counter_<pid>.db``, ``gauge_livesum_<pid>.db``, ...) and a scrape, whichever
worker answers it, adds them up (``MultiProcessCollector``). ``userhub serve`` sets the folder
(``use_folder``); anything else (``flask run``, tests, a server of one's own) keeps the
in-memory values of its one process. The gauges of a worker that died are forgotten by the next
worker that starts (``forget_dead_workers``), or by gunicorn's ``child_exit`` hook.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from prometheus_client import Counter, Gauge, Histogram, multiprocess, values
from prometheus_client.metrics import MetricWrapperBase
from sqlalchemy import Engine, event

MULTIPROC_DIR = "PROMETHEUS_MULTIPROC_DIR"
UNMATCHED_ROUTE = "<unmatched>"  # a request no URL rule matched (404, 405): one label value

HTTP_REQUESTS = Counter(
    "userhub_http_requests_total",
    "Requests answered, by method, URL rule (its template) and status.",
    ["method", "route", "status"],
)
HTTP_DURATION = Histogram(
    "userhub_http_request_duration_seconds",
    "Time from the request reaching the app to its answer, by method, URL rule and status.",
    ["method", "route", "status"],
)
HTTP_IN_FLIGHT = Gauge(
    "userhub_http_requests_in_flight",
    "Requests the app is working on now (all workers together).",
    multiprocess_mode="livesum",
)
LOGINS = Counter(
    "userhub_logins_total",
    "Log-ins by result: success (a session or token started), failure (wrong password or "
    "unknown username), limited (refused by the per-IP or the per-account limit).",
    ["result"],
)
REGISTRATIONS = Counter("userhub_registrations_total", "Accounts registered (form, API, CLI).")
TOKENS_ISSUED = Counter(
    "userhub_tokens_issued_total",
    "API credentials issued, by kind: log-in (POST /api/v1/tokens) or api-key.",
    ["kind"],
)
MAIL_SENT = Counter("userhub_mail_sent_total", "Mails the relay accepted.")
MAIL_DEFERRED = Counter(
    "userhub_mail_deferred_total", "Mails the relay refused for now; tried again later."
)
MAIL_FAILED = Counter(
    "userhub_mail_failed_total", "Mails given up: refused for good, or refused for 3 days."
)
POOL_IN_USE = Gauge(
    "userhub_db_pool_connections_in_use",
    "Database connections checked out of the workers' pools now.",
    multiprocess_mode="livesum",
)
POOL_WAITS = Counter(
    "userhub_db_pool_checkout_waits_total",
    "Times a thread found every connection of its worker's pool in use and waited (MySQL).",
)
POOL_WAIT_SECONDS = Counter(
    "userhub_db_pool_checkout_wait_seconds_total",
    "Seconds threads spent waiting for a connection of the pool (MySQL).",
)
PASSWORD_HASH_SECONDS = Histogram(
    "userhub_password_hash_seconds",
    "Time of one argon2id computation, by operation: hash (a new password) or verify.",
    ["operation"],
    buckets=(0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5),
)

EVERY_METRIC: tuple[MetricWrapperBase, ...] = tuple(
    value for value in list(globals().values()) if isinstance(value, MetricWrapperBase)
)

# The series the services move, each label value named once, here beside its help text.
# After EVERY_METRIC, which holds the metrics themselves (``use_folder`` remakes these series
# through them), and made at import, so every one is in a scrape from the start, at 0.
LOGIN_SUCCEEDED = LOGINS.labels("success")
LOGIN_FAILED = LOGINS.labels("failure")
LOGIN_LIMITED = LOGINS.labels("limited")
LOG_IN_TOKEN_ISSUED = TOKENS_ISSUED.labels("log-in")
API_KEY_ISSUED = TOKENS_ISSUED.labels("api-key")
HASH_TIME = PASSWORD_HASH_SECONDS.labels("hash")
VERIFY_TIME = PASSWORD_HASH_SECONDS.labels("verify")


def multiprocess_folder() -> str | None:
    """The folder the workers write their values to, when they do."""
    return os.environ.get(MULTIPROC_DIR) or None


def use_folder(folder: Path) -> None:
    """Make this process, and the workers it will fork, keep their values in ``folder``.

    prometheus_client chooses between memory and files when it is first imported, and
    ``userhub serve`` imports it with the package, before its ``main`` runs: so it chooses
    again here, and every value made already (a metric without labels has one from the start,
    and modules keep the series they use most) is made again, of the new kind, in the same
    objects. Call it before anything counts."""
    os.environ[MULTIPROC_DIR] = str(folder)
    values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]
    for metric in EVERY_METRIC:
        # There is no public way to remake a value; _metric_init is what the constructor and
        # ``labels`` call to make them.
        labelled = metric._labelnames  # noqa: SLF001
        for series in list(metric._metrics.values()) if labelled else [metric]:  # noqa: SLF001
            series._metric_init()  # type: ignore[no-untyped-call]  # noqa: SLF001


VALUE_FILE = re.compile(r".*_(\d+)\.db")


def forget_dead_workers() -> None:
    """Drop the live gauges of worker processes that are gone (granian respawns a worker
    that died, and has no hook to say so): their requests in flight and connections in use
    ended with them. Their counters stay: what they counted happened."""
    folder = multiprocess_folder()
    if folder is None:
        return
    pids = {int(m[1]) for p in Path(folder).glob("*.db") if (m := VALUE_FILE.fullmatch(p.name))}
    for pid in pids - {os.getpid()}:
        if not _alive(pid):
            forget_worker(pid)


def forget_worker(pid: int) -> None:
    """Drop the live gauges of the worker ``pid``, which has exited."""
    folder = multiprocess_folder()
    if folder is not None:
        multiprocess.mark_process_dead(pid, folder)  # type: ignore[no-untyped-call]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process has that id now
    return True


def watch_pool(engine: Engine) -> None:
    """Count the connections ``engine``'s pool has handed out and not yet taken back."""
    event.listen(engine, "checkout", _checked_out)
    event.listen(engine, "checkin", _checked_in)


def _checked_out(_dbapi_connection: object, _record: object, _proxy: object) -> None:
    POOL_IN_USE.inc()


def _checked_in(_dbapi_connection: object, _record: object) -> None:
    POOL_IN_USE.dec()
