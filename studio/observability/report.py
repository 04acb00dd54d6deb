"""The performance page's figures: what this worker measured, and the alerts of every worker."""

import math
import os
import socket
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import pairwise
from typing import Any

from flask import current_app

from ..admin.charts import bars, duration, gauge, line_chart
from ..resilience import database_breaker
from ..services import cached_reads
from . import metrics
from .alerts import THRESHOLDS, Alert, alerts_of_all_workers
from .fault_counts import fault_counts
from .queries import SlowQuery
from .sampling import Sample
from .state import observatory

MIB = 1024 * 1024
ALERTS_KEY = "studio.observability.alerts"
ALERTS_READ_SECONDS = 1.0
# How the page names each threshold's figure: label, unit, decimals.
READINGS = {
    "slow_query": ("Slowest query", "s", 1),
    "pool_utilisation": ("Connection pool in use", "%", 0),
    "memory": ("System memory used", "%", 0),
    "error_rate": ("Requests failed (5xx)", "%", 1),
    "pool_timeouts": ("Pool timeouts", "", 0),
    "failed_sign_ins": ("Failed sign-ins", "", 0),
}


@dataclass(frozen=True)
class Worker:
    pid: int
    host: str
    live: int | None  # workers sharing their metrics; None when this process is on its own


@dataclass(frozen=True)
class EndpointRow:
    endpoint: str
    count: int
    errors: int
    p50: float
    p95: float
    p99: float


@dataclass(frozen=True)
class ThresholdRow:
    label: str
    reading: str  # this worker's figure now, "–" when it has none
    limit: str
    on: bool  # on in some worker


@dataclass(frozen=True)
class Report:
    worker: Worker
    sample: Sample
    history: list[Sample]
    alerts: list[Alert]
    thresholds: list[ThresholdRow]
    window_seconds: int
    endpoints: list[EndpointRow]
    checkouts: int  # since the process started
    cache: dict[str, Any]
    slow_queries: list[SlowQuery]  # newest first
    faults: dict[str, Any]


def gather() -> Report:
    """Sample this worker now and return everything the performance page shows."""
    watch = observatory()
    sample = watch.sampler.sample()
    alerts = active_alerts(fresh=True)
    config = current_app.config
    return Report(
        worker=this_worker(),
        sample=sample,
        history=watch.sampler.recent(),
        alerts=alerts,
        thresholds=threshold_rows(config, watch.sampler.readings(sample), alerts),
        window_seconds=config["ALERT_WINDOW_SECONDS"],
        endpoints=endpoint_rows(watch.requests.snapshot()),
        checkouts=watch.sampler.pool_stats.checkouts,
        cache=cached_reads.status(),
        slow_queries=watch.slow_queries.latest()[::-1],
        faults=fault_figures(),
    )


def fault_figures() -> dict[str, Any]:
    """Return this worker's breaker state and its database failures since it started."""
    breaker = database_breaker()
    counts = fault_counts.snapshot()
    return {
        "breaker": breaker.state if breaker else None,
        "retries": sum(counts["retries"].values()),
        "unavailable": sum(counts["unavailable"].values()),
        "breaker_opened": counts["breaker_opened"],
        "invalidations_missed": counts["invalidations_missed"],
        "replays": counts["replays"],
    }


def this_worker() -> Worker:
    """Return who answers: this process, and how many workers are live beside it."""
    live = None
    if metrics.multiprocess_dir():
        # This worker is live whatever the files say (another server may have cleared them).
        live = max(len(metrics.live_worker_pids()), 1)
    return Worker(os.getpid(), socket.gethostname(), live)


def endpoint_rows(snapshot: Mapping[str, Mapping[str, float]]) -> list[EndpointRow]:
    """Return one row per endpoint, the busiest first."""
    rows = [
        EndpointRow(name, int(f["count"]), int(f["errors"]), f["p50"], f["p95"], f["p99"])
        for name, f in snapshot.items()
    ]
    return sorted(rows, key=lambda row: (-row.count, row.endpoint))


def threshold_rows(
    config: Mapping[str, Any], readings: Mapping[str, float | None], alerts: Sequence[Alert]
) -> list[ThresholdRow]:
    """Return each alert's threshold beside this worker's reading."""
    on = {alert.name for alert in alerts}
    rows = []
    for threshold in THRESHOLDS:
        label, unit, decimals = READINGS.get(threshold.name, (threshold.name, "", 1))
        value = readings.get(threshold.name)
        reading = "–" if value is None else f"{value:,.{decimals}f} {unit}".strip()
        limit = f"{float(config[threshold.setting]):g} {unit}".strip()
        rows.append(ThresholdRow(label, reading, limit, threshold.name in on))
    return rows


def requests_per_second(history: Sequence[Sample]) -> list[tuple[float, float]]:
    """Return (time, requests per second) between consecutive samples of one process."""
    rates = []
    for before, after in pairwise(history):
        elapsed, answered = after.at - before.at, after.requests - before.requests
        if after.pid == before.pid and elapsed > 0 and answered >= 0:
            rates.append((after.at, answered / elapsed))
    return rates


def report_charts(report: Report, pool_alert_percent: float) -> dict[str, Any]:
    """Return the page's charts: p95 per endpoint, dials, and lines over the recent samples."""
    history, pool, hit_rate = report.history, report.sample.pool, report.cache["hit_rate"]
    whole = "{:,.0f}".format
    return {
        "p95": bars(
            "Slowest endpoints (p95, ms)",
            [(row.endpoint, row.p95) for row in report.endpoints],
            unit="ms",
            empty="No requests yet.",
            show="{:,.1f}".format,
            limit=10,
        ),
        "pool": gauge(
            "Pool in use", pool.utilisation_percent if pool else None, alert_at=pool_alert_percent
        ),
        "hit_rate": gauge("Hit rate", None if hit_rate is None else 100 * hit_rate),
        "rate": line_chart("Requests per second", requests_per_second(history), unit="req/s"),
        "busiest": line_chart(
            "Connections in use (busiest)",
            [(s.at, s.pool.busiest) for s in history if s.pool],
            unit="connections",
            show=whole,
        ),
        "rss": line_chart(
            "Resident memory", [(s.at, s.rss_bytes / MIB) for s in history], unit="MiB", show=whole
        ),
        "cpu": line_chart("CPU", [(s.at, s.cpu_percent) for s in history], unit="%"),
    }


class RecentAlerts:
    """The alerts of every worker, read from the shared metrics at most once a second."""

    def __init__(self, seconds: float = ALERTS_READ_SECONDS) -> None:
        self.seconds = seconds
        self.lock = threading.Lock()
        self.alerts: list[Alert] = []
        self.expires = 0.0

    def read(self, fresh: bool = False) -> list[Alert]:
        now = time.monotonic()
        with self.lock:
            if not fresh and now < self.expires:
                return self.alerts
        alerts = sorted(alerts_of_all_workers(observatory().alerts), key=lambda a: a.since)
        with self.lock:
            self.alerts, self.expires = alerts, now + self.seconds
        return alerts


def active_alerts(fresh: bool = False) -> list[Alert]:
    """Return the alerts on in any worker; every admin page asks, so reuse a read for a second."""
    extensions = current_app.extensions
    if ALERTS_KEY not in extensions:
        extensions[ALERTS_KEY] = RecentAlerts()
    return extensions[ALERTS_KEY].read(fresh)


def clock(moment: float | datetime) -> str:
    """Return the time of day in UTC of an epoch or a datetime, as the page prints it."""
    if not isinstance(moment, datetime):
        if not math.isfinite(moment):
            return "–"
        moment = datetime.fromtimestamp(moment, UTC)
    return moment.astimezone(UTC).strftime("%H:%M:%S UTC")


def ago(epoch: float) -> str:
    """Return how long ago an epoch was: 45 s, 12 min, 3 h 5 min."""
    return duration(time.time() - epoch)
