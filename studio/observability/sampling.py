"""Every few seconds a worker samples its pool and process, publishes them and checks alerts."""

import os
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

import psutil
from sqlalchemy import Engine

from . import metrics
from .alerts import MIN_REQUESTS_FOR_ERROR_RATE, AlertBook
from .pool import MeasuredPool
from .queries import SlowQueries
from .sign_ins import FailedSignIns
from .timing import RequestTimes

HISTORY = 120  # samples kept for the performance page's charts
MIN_CPU_INTERVAL_SECONDS = 0.5


@dataclass(frozen=True)
class PoolFigures:
    size: int
    capacity: int
    checked_in: int
    checked_out: int
    overflow: int
    busiest: int  # most connections out at once since the previous sample
    peak: int  # most out at once since the process started
    timeouts_in_window: int
    timeouts_total: int

    @property
    def utilisation_percent(self) -> float:
        return 100.0 * self.busiest / self.capacity if self.capacity else 0.0


@dataclass(frozen=True)
class Sample:
    at: float  # epoch seconds
    pid: int
    requests: int  # answered by this process so far
    errors: int
    pool: PoolFigures | None  # None where the engine's pool is not a measured one
    rss_bytes: int
    cpu_percent: float
    memory_percent: float
    slowest_query_seconds: float | None  # within the alert window


def pool_figures(pool: Any, window_seconds: float) -> PoolFigures | None:
    if not isinstance(pool, MeasuredPool):
        return None
    out = pool.checkedout()
    stats = pool.stats
    return PoolFigures(
        size=pool.size(),
        capacity=pool.capacity,
        checked_in=pool.checkedin(),
        checked_out=out,
        overflow=max(pool.overflow(), 0),
        busiest=stats.take_interval_peak(out),
        peak=max(stats.peak, out),
        timeouts_in_window=stats.timeouts_within(window_seconds),
        timeouts_total=stats.timeouts_total,
    )


class Sampler:
    """Samples one app's pool and this process; throttled to once per interval."""

    def __init__(
        self,
        engine: Engine,
        requests: RequestTimes,
        slow_queries: SlowQueries,
        alerts: AlertBook,
        interval_seconds: float,
        failed_sign_ins: FailedSignIns,
    ) -> None:
        self.engine = engine
        self.failed_sign_ins = failed_sign_ins
        self.requests = requests
        self.slow_queries = slow_queries
        self.alerts = alerts
        self.interval = interval_seconds
        self.window = alerts.window_seconds
        self.lock = threading.Lock()
        self.next_due = 0.0
        self.history: deque[Sample] = deque(maxlen=HISTORY)
        self._process: psutil.Process | None = None
        self._cpu = (0.0, 0.0)  # (monotonic time, percent) of the last CPU reading

    def maybe_sample(self) -> None:
        """Sample if the interval has passed since the last sample."""
        if time.monotonic() >= self.next_due:
            self.sample()

    def sample(self) -> Sample:
        """Take a sample now: publish it as metrics, check the alerts, keep it for charts."""
        with self.lock:
            self.next_due = time.monotonic() + self.interval
            sample = self._measure()
            self.history.append(sample)
        publish(sample)
        self.alerts.update(self.readings(sample))
        return sample

    def _measure(self) -> Sample:
        process = self.process()
        count, errors = self.requests.totals()
        slowest = self.slow_queries.slowest_within(self.window)
        return Sample(
            at=time.time(),
            pid=process.pid,
            requests=count,
            errors=errors,
            pool=pool_figures(self.engine.pool, self.window),
            rss_bytes=process.memory_info().rss,
            cpu_percent=self.cpu_percent(process),
            memory_percent=psutil.virtual_memory().percent,
            slowest_query_seconds=slowest,
        )

    def readings(self, sample: Sample) -> dict[str, float | None]:
        total, failed = self.requests.outcomes_within(self.window)
        error_rate = 100.0 * failed / total if total >= MIN_REQUESTS_FOR_ERROR_RATE else None
        pool = sample.pool
        return {
            "slow_query": sample.slowest_query_seconds,
            "pool_utilisation": pool.utilisation_percent if pool else None,
            "memory": sample.memory_percent,
            "error_rate": error_rate,
            "pool_timeouts": pool.timeouts_in_window if pool else None,
            "failed_sign_ins": self.failed_sign_ins.within_window(),
        }

    def process(self) -> psutil.Process:
        # A process object made before gunicorn forked would describe the master.
        if self._process is None or self._process.pid != os.getpid():
            self._process = psutil.Process()
            self._process.cpu_percent(interval=None)
            self._cpu = (time.monotonic(), 0.0)
        return self._process

    def cpu_percent(self, process: psutil.Process) -> float:
        """Return CPU use since the last reading; over a few clock ticks it means nothing."""
        at, percent = self._cpu
        now = time.monotonic()
        if now - at < MIN_CPU_INTERVAL_SECONDS:
            return percent
        self._cpu = (now, process.cpu_percent(interval=None))
        return self._cpu[1]

    def recent(self) -> list[Sample]:
        with self.lock:
            return list(self.history)


def publish(sample: Sample) -> None:
    """Write a sample's figures to this worker's gauges."""
    metrics.PROCESS_RSS.set(sample.rss_bytes)
    metrics.PROCESS_CPU.set(sample.cpu_percent)
    metrics.SYSTEM_MEMORY.set(sample.memory_percent)
    pool = sample.pool
    if pool is None:
        return
    metrics.POOL_SIZE.set(pool.size)
    metrics.POOL_CAPACITY.set(pool.capacity)
    metrics.POOL_CHECKED_IN.set(pool.checked_in)
    metrics.POOL_CHECKED_OUT.set(pool.checked_out)
    metrics.POOL_OVERFLOW.set(pool.overflow)
    metrics.POOL_BUSIEST.set(pool.busiest)
    metrics.POOL_UTILISATION.set(pool.utilisation_percent / 100)
    metrics.POOL_PEAK.set(pool.peak)
