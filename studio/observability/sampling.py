"""Every few seconds a worker samples its pool and process, publishes them and checks alerts.

On a thread of its own in each worker, never in a request: psutil's readings and the
alerts' gauges cost a request nothing.
"""

import logging
import os
import threading
import time
import weakref
from collections import deque
from dataclasses import dataclass
from typing import Any

import psutil
from sqlalchemy import Engine
from sqlalchemy.pool import QueuePool

from . import metrics
from .alerts import MIN_REQUESTS_FOR_ERROR_RATE, AlertBook
from .pool import PoolStats
from .queries import SlowQueries
from .sign_ins import FailedSignIns
from .timing import RequestTimes

logger = logging.getLogger(__name__)
HISTORY = 120  # samples kept for the performance page's charts
MIN_CPU_INTERVAL_SECONDS = 0.5
MIN_SAMPLE_SECONDS = 0.5  # METRICS_SAMPLE_SECONDS=0 samples as often as this


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


def pool_figures(pool: Any, stats: PoolStats, window_seconds: float) -> PoolFigures | None:
    """Return a QueuePool's figures from its public counts; None for another kind of pool."""
    if not isinstance(pool, QueuePool):
        return None
    out = pool.checkedout()
    return PoolFigures(
        size=pool.size(),
        capacity=pool.size() + stats.max_overflow,
        checked_in=pool.checkedin(),
        checked_out=out,
        overflow=max(pool.overflow(), 0),
        busiest=stats.take_interval_peak(out),
        peak=max(stats.peak, out),
        timeouts_in_window=stats.timeouts_within(window_seconds),
        timeouts_total=stats.timeouts_total,
    )


class Sampler:
    """Samples one app's pool and this process: every interval on its thread, or when asked."""

    def __init__(
        self,
        engine: Engine,
        requests: RequestTimes,
        pool_stats: PoolStats,
        slow_queries: SlowQueries,
        alerts: AlertBook,
        interval_seconds: float,
        failed_sign_ins: FailedSignIns,
    ) -> None:
        self.engine = engine
        self.pool_stats = pool_stats
        self.failed_sign_ins = failed_sign_ins
        self.requests = requests
        self.slow_queries = slow_queries
        self.alerts = alerts
        self.interval = interval_seconds
        self.window = alerts.window_seconds
        self.lock = threading.Lock()
        self.thread_pid = 0  # the process whose sampling thread runs; 0 before it starts
        self.stopped = False
        self.history: deque[Sample] = deque(maxlen=HISTORY)
        self._process: psutil.Process | None = None
        self._cpu = (0.0, 0.0)  # (monotonic time, percent) of the last CPU reading
        _SAMPLERS.add(self)

    def keep_sampling(self) -> None:
        """Sample every interval on a thread of this process, started on the first call.

        Started lazily, from a request, because gunicorn forks its workers after import:
        a thread started in the master would not exist in them.
        """
        metrics.keep_flushing()
        pid = os.getpid()
        if self.thread_pid == pid or self.stopped:
            return
        with self.lock:
            if self.thread_pid == pid:
                return
            self.thread_pid = pid
        # A weak reference: an app that is gone (a test's) takes its thread with it.
        thread = threading.Thread(
            target=_sample_forever,
            args=(weakref.ref(self), max(self.interval, MIN_SAMPLE_SECONDS)),
            name="studio-sampler",
            daemon=True,
        )
        thread.start()

    def stop(self) -> None:
        """Stop sampling on the thread (a test's app that is done with); sample() still works."""
        self.stopped = True

    def sample(self) -> Sample:
        """Take a sample now: publish it as metrics, check the alerts, keep it for charts."""
        with self.lock:
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
            pool=pool_figures(self.engine.pool, self.pool_stats, self.window),
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


_SAMPLERS: "weakref.WeakSet[Sampler]" = weakref.WeakSet()


def _start_afresh_in_child() -> None:
    """A forked process samples on a thread of its own; its parent's may have held a lock.

    gunicorn forks from a master that never served a request, so never sampled; a process
    forked after serving (a test's) would otherwise wait forever on a lock held by a thread
    it does not have.
    """
    for sampler in list(_SAMPLERS):
        parts = (sampler, sampler.requests, sampler.slow_queries, sampler.alerts)
        for part in (*parts, sampler.pool_stats, sampler.failed_sign_ins):
            part.lock = threading.Lock()


os.register_at_fork(after_in_child=_start_afresh_in_child)


def _sample_forever(sampler_ref: "weakref.ref[Sampler]", interval: float) -> None:
    """Sample at once (a worker's gauges appear with its first request), then every interval."""
    pid = os.getpid()
    while True:
        sampler = sampler_ref()
        if sampler is None or sampler.thread_pid != pid or sampler.stopped:
            return
        try:
            sampler.sample()
        except Exception:  # psutil or the metric files failing: keep sampling
            logger.exception("could not take a sample")
        del sampler
        time.sleep(interval)


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
