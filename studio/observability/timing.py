"""Per-request timing: a Server-Timing header, per-endpoint figures, a log line when slow."""

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from statistics import quantiles

from flask import Flask, Response, g, has_request_context, request

from . import metrics

logger = logging.getLogger(__name__)
WINDOW = 1000  # latest requests kept per endpoint


def add_time(kind: str, seconds: float) -> None:
    """Count time spent in the database or the cache towards the current request."""
    if has_request_context():
        spent = g.setdefault("time_spent", {"db": 0.0, "cache": 0.0})
        spent[kind] = spent.get(kind, 0.0) + seconds


@dataclass
class EndpointTimes:
    """One endpoint's requests: counts and a sliding window of durations."""

    count: int = 0
    errors: int = 0
    durations: deque = field(default_factory=lambda: deque(maxlen=WINDOW))

    def percentiles(self) -> dict[str, float]:
        ordered = sorted(self.durations)
        if len(ordered) < 2:
            value = ordered[0] if ordered else 0.0
            return {"p50": value, "p95": value, "p99": value}
        cuts = quantiles(ordered, n=100, method="inclusive")
        return {"p50": cuts[49], "p95": cuts[94], "p99": cuts[98]}


class RequestTimes:
    """The figures of every endpoint this process served, and its recent outcomes."""

    def __init__(self, window_seconds: int) -> None:
        self.lock = threading.Lock()
        self.endpoints: dict[str, EndpointTimes] = {}
        self.window_seconds = window_seconds
        # [second, requests, failures] for each second with requests, oldest first.
        self.outcomes: deque[list[int]] = deque()

    def record(self, endpoint: str, seconds: float, failed: bool) -> None:
        second = int(time.monotonic())
        with self.lock:
            times = self.endpoints.setdefault(endpoint, EndpointTimes())
            times.count += 1
            times.errors += int(failed)
            times.durations.append(seconds * 1000)
            if self.outcomes and self.outcomes[-1][0] == second:
                self.outcomes[-1][1] += 1
                self.outcomes[-1][2] += int(failed)
            else:
                self.outcomes.append([second, 1, int(failed)])
                while self.outcomes[0][0] <= second - self.window_seconds:
                    self.outcomes.popleft()

    def outcomes_within(self, seconds: float) -> tuple[int, int]:
        """Return (requests, failures) answered in the last `seconds`."""
        cutoff = time.monotonic() - seconds
        with self.lock:
            recent = [entry for entry in self.outcomes if entry[0] > cutoff]
        return sum(entry[1] for entry in recent), sum(entry[2] for entry in recent)

    def totals(self) -> tuple[int, int]:
        """Return (requests, failures) answered since the process started."""
        with self.lock:
            times = list(self.endpoints.values())
        return sum(t.count for t in times), sum(t.errors for t in times)

    def snapshot(self) -> dict[str, dict[str, float]]:
        """Return count, errors and p50/p95/p99 (ms) per endpoint."""
        with self.lock:
            return {
                name: {"count": t.count, "errors": t.errors, **t.percentiles()}
                for name, t in self.endpoints.items()
            }


def register_request_timing(
    app: Flask, request_times: RequestTimes, after: Callable[[], None]
) -> None:
    """Time every request of the app, whatever blueprint serves it; call `after` for each."""
    slow_ms = app.config["SLOW_REQUEST_MS"]

    @app.before_request
    def start_clock() -> None:
        g.request_started = time.perf_counter()

    @app.after_request
    def stop_clock(response: Response) -> Response:
        started = g.get("request_started")
        if started is None:
            return response
        total = time.perf_counter() - started
        spent = g.get("time_spent", {})
        response.headers["Server-Timing"] = ", ".join(
            f"{name};dur={seconds * 1000:.1f}"
            for name, seconds in (
                ("db", spent.get("db", 0.0)),
                ("cache", spent.get("cache", 0.0)),
                ("total", total),
            )
        )
        endpoint = request.endpoint or "unmatched"
        request_times.record(endpoint, total, response.status_code >= 500)
        count(endpoint, response.status_code, total, spent)
        after()
        if total * 1000 > slow_ms:
            logger.warning(
                "slow request: %s %s took %.0f ms (db %.0f ms, cache %.0f ms) -> %s",
                request.method,
                request.path,
                total * 1000,
                spent.get("db", 0.0) * 1000,
                spent.get("cache", 0.0) * 1000,
                response.status_code,
            )
        return response


def count(endpoint: str, status: int, total: float, spent: dict[str, float]) -> None:
    """Add the request to the Prometheus metrics."""
    metrics.REQUEST_SECONDS.labels(endpoint).observe(total)
    metrics.REQUESTS.labels(endpoint, f"{status // 100}xx").inc()
    if spent:
        metrics.REQUEST_DB_SECONDS.inc(spent.get("db", 0.0))
        metrics.REQUEST_CACHE_SECONDS.inc(spent.get("cache", 0.0))
