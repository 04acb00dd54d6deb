"""Per-request timing: a Server-Timing header, per-endpoint figures, a log line when slow."""

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from statistics import quantiles

from flask import Flask, Response, request, request_started

from .. import signals
from ..clock import RequestClock, current_clock, mark_admin
from ..logs import burst_log
from . import metrics

logger = logging.getLogger(__name__)
WINDOW = 1000  # latest requests kept per endpoint


class EndpointTimes:
    """One endpoint's requests: counts, a sliding window of durations, its metric series."""

    def __init__(self, endpoint: str) -> None:
        self.count = 0
        self.errors = 0
        self.durations: deque[float] = deque(maxlen=WINDOW)
        # Looked up once: finding a labelled series costs more than updating it.
        series = metrics.REQUEST_SECONDS.labels
        self.by_status = {
            status: metrics.PendingHistogram(
                series(endpoint, f"{status}xx"), metrics.LATENCY_BUCKETS
            )
            for status in (1, 2, 3, 4, 5)
        }

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
        # Called at most once a second, from a request: a check that the threads that
        # flush and sample run in this process (gunicorn forks its workers after import).
        self.every_second: Callable[[], None] = lambda: None
        self.lock = threading.Lock()
        self.endpoints: dict[str, EndpointTimes] = {}
        self.window_seconds = window_seconds
        # [second, requests, failures] for each second with requests, oldest first.
        self.outcomes: deque[list[int]] = deque()

    def record(self, endpoint: str, seconds: float, status: int, db: float, cache: float) -> None:
        """Count one answered request, with its time in SQL and the cache, here and in metrics."""
        second = int(time.monotonic())
        failed = int(status >= 500)
        with self.lock:
            times = self.endpoints.get(endpoint) or self.endpoints.setdefault(
                endpoint, EndpointTimes(endpoint)
            )
            times.count += 1
            times.errors += failed
            times.durations.append(seconds * 1000)
            latest = self.outcomes[-1] if self.outcomes else None
            if latest is not None and latest[0] == second:
                latest[1] += 1
                latest[2] += failed
            else:
                self.outcomes.append([second, 1, failed])
                while self.outcomes[0][0] <= second - self.window_seconds:
                    self.outcomes.popleft()
                self.every_second()
        with metrics.PENDING_LOCK:
            times.by_status[min(max(status // 100, 1), 5)].observe(seconds)
            if db:
                metrics.REQUEST_DB_PENDING.inc(db)
            if cache:
                metrics.REQUEST_CACHE_PENDING.inc(cache)

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


def register_request_timing(app: Flask, request_times: RequestTimes) -> None:
    """Time every request of the app, whatever blueprint serves it."""
    slow_ms = app.config["SLOW_REQUEST_MS"]
    # Timings tell anyone which lookups hit the database: shown to admins only, unless set.
    shown_to = app.config["SERVER_TIMING"]
    signals.admin_identified.connect(mark_admin)

    # On request_started, which Flask sends before any before_request hook: CSRFProtect's
    # and the limiter's hooks, registered with the extensions, read the body, and a
    # request they refuse is timed and counted too.
    def start_clock(sender: Flask, **extra: object) -> None:
        current_clock.set(RequestClock())

    request_started.connect(start_clock, app, weak=False)

    @app.after_request
    def stop_clock(response: Response) -> Response:
        clock = current_clock.get()
        if clock is None:
            return response
        # Stopped here rather than in a teardown hook: one hook fewer for Flask to call on
        # every request. If this is never reached, the next request's clock replaces it.
        current_clock.set(None)
        total = time.perf_counter() - clock.started
        db, cached = clock.db, clock.cache
        if shown_to == "everyone" or (clock.for_admin and shown_to == "admins"):
            # add() rather than item assignment, which compares every header's name.
            response.headers.add(
                "Server-Timing",
                f"db;dur={db * 1000:.1f}, cache;dur={cached * 1000:.1f}, "
                f"total;dur={total * 1000:.1f}",
            )
        request_times.record(
            request.endpoint or "unmatched", total, response.status_code, db, cached
        )
        if total * 1000 > slow_ms:
            burst_log.note(
                logger,
                f"slow-request:{request.endpoint}",
                "slow request: %s %s took %.0f ms (db %.0f ms, cache %.0f ms) -> %s",
                request.method,
                request.path,
                total * 1000,
                db * 1000,
                cached * 1000,
                response.status_code,
            )
        return response
