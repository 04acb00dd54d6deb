"""Alerts: a figure at or over its threshold, logged once when it starts and once when it ends."""

import glob
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from prometheus_client.multiprocess import MultiProcessCollector

from . import metrics

logger = logging.getLogger(__name__)
# Below this many requests in the window an error rate says little (1 of 2 is 50 %).
MIN_REQUESTS_FOR_ERROR_RATE = 20


@dataclass(frozen=True)
class Threshold:
    name: str
    setting: str
    describe: Callable[[float, float], str]


THRESHOLDS = (
    Threshold(
        "slow_query",
        "ALERT_QUERY_SECONDS",
        lambda value, limit: f"a query took {value:.1f} s (alert at {limit:g} s)",
    ),
    Threshold(
        "pool_utilisation",
        "ALERT_POOL_PERCENT",
        lambda value, limit: f"connection pool {value:.0f} % in use (alert at {limit:g} %)",
    ),
    Threshold(
        "memory",
        "ALERT_MEMORY_PERCENT",
        lambda value, limit: f"system memory {value:.0f} % used (alert at {limit:g} %)",
    ),
    Threshold(
        "error_rate",
        "ALERT_ERROR_RATE_PERCENT",
        lambda value, limit: f"{value:.1f} % of requests failed (alert at {limit:g} %)",
    ),
    Threshold(
        "pool_timeouts",
        "ALERT_POOL_TIMEOUTS",
        lambda value, limit: f"{value:.0f} pool timeouts (alert at {limit:g})",
    ),
    Threshold(
        "failed_sign_ins",
        "ALERT_FAILED_SIGN_INS",
        lambda value, limit: f"{value:.0f} failed sign-ins (alert at {limit:g})",
    ),
)
BY_NAME = {threshold.name: threshold for threshold in THRESHOLDS}


@dataclass(frozen=True)
class Alert:
    name: str
    message: str
    value: float
    limit: float
    since: float  # epoch seconds


class AlertBook:
    """The alerts of this process: which are on, since when."""

    def __init__(self, limits: Mapping[str, float], window_seconds: int) -> None:
        self.limits = {t.name: float(limits[t.setting]) for t in THRESHOLDS}
        self.window_seconds = window_seconds
        self.lock = threading.Lock()
        self.active: dict[str, Alert] = {}

    def update(self, readings: Mapping[str, float | None]) -> None:
        """Compare the readings with the thresholds; log and count what starts or ends."""
        with self.lock:
            for threshold in THRESHOLDS:
                self._update_one(threshold, readings.get(threshold.name))

    def _update_one(self, threshold: Threshold, value: float | None) -> None:
        name, limit = threshold.name, self.limits[threshold.name]
        was = self.active.get(name)
        on = value is not None and value >= limit
        metrics.ALERT_ACTIVE.labels(name).set(int(on))
        metrics.ALERT_VALUE.labels(name).set(value or 0.0)
        if value is not None and on:
            message = threshold.describe(value, limit)
            since = was.since if was else time.time()
            self.active[name] = Alert(name, message, value, limit, since)
            metrics.ALERT_SINCE.labels(name).set(since)
            if was is None:
                metrics.ALERTS.labels(name).inc()
                logger.warning("alert started: %s: %s", name, message)
        elif was is not None:
            del self.active[name]
            # Out of the running for "earliest start" over the workers.
            metrics.ALERT_SINCE.labels(name).set(float("inf"))
            lasted = time.time() - was.since
            logger.warning("alert ended: %s after %.0f s (was: %s)", name, lasted, was.message)

    def current(self) -> list[Alert]:
        with self.lock:
            return list(self.active.values())


def alerts_of_all_workers(book: AlertBook) -> list[Alert]:
    """Return the alerts on in any worker (this process's own when workers share nothing)."""
    path = metrics.multiprocess_dir()
    if not path:
        return book.current()
    files = glob.glob(os.path.join(path, "gauge_live*.db"))
    values: dict[str, dict[str, float]] = {}
    for metric in MultiProcessCollector.merge(files, accumulate=False):
        for sample in metric.samples:
            if "alert" in sample.labels:
                values.setdefault(sample.name, {})[sample.labels["alert"]] = sample.value
    found = []
    for name, active in values.get("studio_alert_active", {}).items():
        if active < 1 or name not in BY_NAME:
            continue
        value, limit = values.get("studio_alert_value", {}).get(name, 0.0), book.limits[name]
        since = values.get("studio_alert_since", {}).get(name, time.time())
        found.append(Alert(name, BY_NAME[name].describe(value, limit), value, limit, since))
    return found
