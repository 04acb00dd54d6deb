"""Prometheus metrics of studio, merged over gunicorn's workers.

prometheus_client keeps each process's values in memory, or, when
PROMETHEUS_MULTIPROC_DIR is set before it is first imported (gunicorn.conf.py
does that), in files in that directory that any worker can merge when scraped.
Gauges that describe one worker are kept per process ("liveall": a pid label,
dropped when the worker exits); peaks keep the highest value any worker saw.
"""

import atexit
import glob
import logging
import math
import os
import threading
import time
import urllib.error
import urllib.request
from bisect import bisect_left
from collections.abc import Callable, Iterable, Sequence
from functools import partial

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

logger = logging.getLogger(__name__)
Samples = dict[str, list[tuple[dict[str, str], float]]]
FLUSH_SECONDS = 1.0  # the longest a worker holds figures of its hot path back from the files
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

# Its _count series is the request counter: one update per request instead of two. Requests
# and checkouts update these through Pending* (below); a scrape flushes its own process first.
REQUEST_SECONDS = Histogram(
    "studio_request_duration_seconds",
    "Time to answer a request, per endpoint and status class (2xx, 4xx, 5xx...).",
    ["endpoint", "status"],
    buckets=LATENCY_BUCKETS,
)
REQUEST_DB_SECONDS = Counter("studio_request_db_seconds", "Time requests spent in SQL.")
REQUEST_CACHE_SECONDS = Counter("studio_request_cache_seconds", "Time requests spent in the cache.")
SLOW_QUERIES = Counter("studio_slow_queries", "Statements slower than SLOW_QUERY_MS.")

POOL_CHECKOUTS = Counter("studio_db_pool_checkouts", "Connections taken from the pool.")
POOL_TIMEOUTS = Counter("studio_db_pool_timeouts", "Checkouts that gave up after pool_timeout.")


class PendingHistogram:
    """Observations of one histogram series, held in the process until the next flush.

    Under gunicorn every update of a series takes a lock, calls getpid() and writes into a
    memory-mapped file, and a request made several of them. Held here an observation costs
    a bisect and two additions. A flush, on the flusher's thread, hands each bucket's
    observations to the series' public observe(), at their mean: the mean of values within
    one bucket lies within it, so buckets, count and sum come out as if observed one by one.
    """

    __slots__ = ("series", "bounds", "counts", "sums")

    def __init__(self, series: Histogram, buckets: Sequence[float]) -> None:
        self.series = series
        # observe() counts an amount in the first bucket whose bound is at or above it.
        self.bounds = (*buckets, math.inf)
        self.counts = [0] * len(self.bounds)
        self.sums = [0.0] * len(self.bounds)
        _PENDING.append(self)

    def observe(self, value: float) -> None:
        """Count one observation; the caller holds PENDING_LOCK."""
        index = bisect_left(self.bounds, value)
        self.counts[index] += 1
        self.sums[index] += value

    def take(self) -> Callable[[], None] | None:
        """Return the writing of what is held, and start afresh; the caller holds PENDING_LOCK."""
        if not any(self.counts):
            return None
        counts, sums = self.counts, self.sums
        self.reset()
        return partial(self.write, counts, sums)

    def write(self, counts: list[int], sums: list[float]) -> None:
        """Observe what was taken, each bucket's observations at their mean."""
        lower = -math.inf
        for bound, count, total in zip(self.bounds, counts, sums, strict=True):
            if count:
                # Rounding may put a mean just past its bucket's edge: keep it inside.
                mean = min(max(total / count, math.nextafter(lower, math.inf)), bound)
                for _ in range(count):
                    self.series.observe(mean)
            lower = bound

    def reset(self) -> None:
        self.counts, self.sums = [0] * len(self.bounds), [0.0] * len(self.bounds)


class PendingCounter:
    """Increments of one counter, held in the process until the next flush."""

    __slots__ = ("series", "total")

    def __init__(self, series: Counter) -> None:
        self.series = series
        self.total = 0.0
        _PENDING.append(self)

    def inc(self, amount: float) -> None:
        """Add to the counter; the caller holds PENDING_LOCK."""
        self.total += amount

    def take(self) -> Callable[[], None] | None:
        """Return the writing of what is held, and start afresh; the caller holds PENDING_LOCK."""
        if not self.total:
            return None
        total, self.total = self.total, 0.0
        return partial(self.series.inc, total)

    def reset(self) -> None:
        self.total = 0.0


_PENDING: list[PendingHistogram | PendingCounter] = []
PENDING_LOCK = threading.Lock()
_flusher_pid = 0


def _start_afresh_in_child() -> None:
    """A forked worker starts with nothing held back: its parent's figures are the parent's."""
    global PENDING_LOCK, _flusher_pid
    PENDING_LOCK = threading.Lock()  # another thread of the parent may have held it
    _flusher_pid = 0
    for pending in _PENDING:
        pending.reset()


os.register_at_fork(after_in_child=_start_afresh_in_child)


def flush_pending() -> None:
    """Write what this process holds back into prometheus_client's values."""
    with PENDING_LOCK:
        writes = [pending.take() for pending in _PENDING]
    # Outside the lock: a request holding back its figures need not wait for the files.
    for write in writes:
        if write is not None:
            write()


def keep_flushing() -> None:
    """Flush every FLUSH_SECONDS from a thread of this process, started on the first call.

    A thread, rather than the next request, so that a worker that falls quiet still hands
    over its last second. Started lazily because gunicorn forks its workers after import.
    """
    global _flusher_pid
    pid = os.getpid()
    if _flusher_pid == pid:
        return
    with PENDING_LOCK:
        if _flusher_pid == pid:
            return
        _flusher_pid = pid
    threading.Thread(target=_flush_forever, name="studio-metrics-flush", daemon=True).start()


def _flush_forever() -> None:
    while True:
        time.sleep(FLUSH_SECONDS)
        try:
            flush_pending()
        except Exception:  # a full disk, say: keep the worker serving and try again
            logger.exception("could not write the metrics")


REQUEST_DB_PENDING = PendingCounter(REQUEST_DB_SECONDS)
REQUEST_CACHE_PENDING = PendingCounter(REQUEST_CACHE_SECONDS)
POOL_CHECKOUTS_PENDING = PendingCounter(POOL_CHECKOUTS)


def _worker_gauge(name: str, documentation: str) -> Gauge:
    return Gauge(name, documentation, multiprocess_mode="liveall")


POOL_SIZE = _worker_gauge("studio_db_pool_size", "pool_size of the worker's pool.")
POOL_CAPACITY = _worker_gauge("studio_db_pool_capacity", "pool_size + max_overflow.")
POOL_CHECKED_IN = _worker_gauge("studio_db_pool_checked_in", "Idle connections in the pool.")
POOL_CHECKED_OUT = _worker_gauge("studio_db_pool_checked_out", "Connections in use at the sample.")
POOL_OVERFLOW = _worker_gauge("studio_db_pool_overflow", "Connections beyond pool_size.")
POOL_BUSIEST = _worker_gauge(
    "studio_db_pool_checked_out_interval_peak", "Most connections in use since the last sample."
)
POOL_UTILISATION = _worker_gauge(
    "studio_db_pool_utilisation_ratio", "Busiest moment since the last sample / capacity."
)
POOL_PEAK = Gauge(
    "studio_db_pool_checked_out_peak",
    "Most connections one worker had in use at once since it started.",
    multiprocess_mode="max",
)
PROCESS_RSS = _worker_gauge("studio_process_resident_memory_bytes", "Worker's resident memory.")
PROCESS_CPU = _worker_gauge("studio_process_cpu_percent", "Worker's CPU use since the last sample.")
SYSTEM_MEMORY = Gauge(
    "studio_system_memory_percent", "Memory in use on the machine.", multiprocess_mode="livemax"
)
ALERT_ACTIVE = Gauge(
    "studio_alert_active", "1 while an alert is on.", ["alert"], multiprocess_mode="livemax"
)
ALERT_VALUE = Gauge(
    "studio_alert_value", "The figure an alert watches.", ["alert"], multiprocess_mode="livemax"
)
ALERT_SINCE = Gauge(
    "studio_alert_since_seconds",
    "When an alert started (epoch seconds), the earliest over workers.",
    ["alert"],
    multiprocess_mode="livemin",
)
ALERTS = Counter("studio_alerts", "Times an alert started.", ["alert"])


def multiprocess_dir() -> str | None:
    """Return the directory workers share their metrics through, if there is one."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def _at_exit() -> None:
    """Hand over what is held back, then take this process's per-worker gauges off the files.

    gunicorn's child_exit hook removes its workers' gauges; a `flask monitor` or `flask tune`
    run with PROMETHEUS_MULTIPROC_DIR set would otherwise count as a worker for good.
    """
    flush_pending()
    path = multiprocess_dir()
    if path and os.path.isdir(path):
        mark_process_dead(os.getpid(), path)


atexit.register(_at_exit)


def live_worker_pids() -> set[int]:
    """Return the workers whose per-worker gauges are on file (a dead worker's are removed)."""
    path = multiprocess_dir()
    if not path:
        return {os.getpid()}
    prefix = "gauge_liveall_"
    names = (os.path.basename(name) for name in glob.glob(os.path.join(path, prefix + "*.db")))
    return {int(name[len(prefix) : -3]) for name in names if name[len(prefix) : -3].isdigit()}


def registry(extra: Iterable[Collector] = ()) -> CollectorRegistry:
    """Return a registry with every worker's metrics (or this process's) and `extra`."""
    flush_pending()
    if multiprocess_dir():
        merged = CollectorRegistry()
        MultiProcessCollector(merged)
    else:
        merged = CollectorRegistry(auto_describe=False)
        merged.register(_Forward(REGISTRY))
    for collector in extra:
        merged.register(collector)
    return merged


class _Forward(Collector):
    """Serve the process-wide registry's metrics from another registry."""

    def __init__(self, source: CollectorRegistry) -> None:
        self.source = source

    def collect(self) -> Iterable[Metric]:
        return self.source.collect()


def exposition(extra: Iterable[Collector] = ()) -> tuple[bytes, str]:
    """Return the text exposition of all metrics and its content type."""
    return generate_latest(registry(extra)), CONTENT_TYPE_LATEST


def samples(extra: Iterable[Collector] = ()) -> Samples:
    """Return every sample by name: [(labels, value)], merged over workers like a scrape."""
    found: dict[str, list[tuple[dict[str, str], float]]] = {}
    for metric in registry(extra).collect():
        for sample in metric.samples:
            found.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
    return found


def parse_exposition(text: str) -> Samples:
    """Return the samples of a scrape in the shape `samples()` returns."""
    found: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
    return found


def fetch(url: str, token: str | None, timeout: float = 10) -> str:
    """Scrape a running studio's /metrics."""
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"not an http(s) URL: {url}")
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.read().decode()
    except urllib.error.HTTPError as refused:
        refused.close()  # it holds the answer's socket
        raise


# Database faults, counted from the product's signals (studio.signals).
DB_RETRIES = Counter(
    "studio_db_retries", "Units of database work tried again after a passing failure.", ["error"]
)
DB_UNAVAILABLE = Counter(
    "studio_db_unavailable",
    "Requests answered 503 because the database was unavailable.",
    ["error"],
)
DB_BREAKER_OPENED = Counter(
    "studio_db_breaker_opened", "Outages: times a database circuit breaker opened from closed."
)
DB_BREAKER_STATE = _worker_gauge(
    "studio_db_breaker_state",
    "The worker's database circuit breaker: 0 closed, 1 half-open, 2 open.",
)
CACHE_INVALIDATIONS_MISSED = Counter(
    "studio_cache_invalidations_missed",
    "Committed writes whose cache retirement failed (healed by a new cache epoch).",
)
IDEMPOTENT_REPLAYS = Counter(
    "studio_idempotent_replays", "Writes answered with the first answer to their Idempotency-Key."
)

# Sign-ins, counted from the product's signal (studio.signals).
SIGN_INS_FAILED = Counter(
    "studio_sign_ins_failed",
    "Refused sign-ins: wrong credentials, or throttled before the password was checked.",
    ["reason"],
)
