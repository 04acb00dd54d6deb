"""Logging set-up, the start-up summary, and quiet logs when many things fail at once."""

import logging
import os
import sys
import threading
import time
from dataclasses import dataclass
from enum import Enum

from flask import Flask

from .config import mask_database_url
from .request_ids import current_request_id

logger = logging.getLogger("studio")
BURST_WINDOW_SECONDS = 60.0
LINES_PER_BURST = 5


def configure_logging(app: Flask) -> None:
    """Send studio's log records to stderr at the configured level, once."""
    logger.setLevel(app.config["LOG_LEVEL"])
    add_request_ids_to_records()
    # A dead connection handed back to the pool is logged with its traceback; during an
    # outage that is every request, so those records go through the burst limiter.
    pool_logger = logging.getLogger("sqlalchemy.pool.impl.QueuePool")
    if not any(isinstance(f, BurstFilter) for f in pool_logger.filters):
        pool_logger.addFilter(BurstFilter())
    if not logger.handlers and not logging.getLogger().handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
        logger.addHandler(handler)


LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s]: %(message)s"
NO_REQUEST = "-"


def add_request_ids_to_records() -> None:
    """Give every log record `request_id`: the id of the request it was made in, or "-".

    A record factory rather than a filter, so that records of any logger get it (the
    pool's, SQLAlchemy's), whichever handler writes them; installed once per process.
    """
    previous = logging.getLogRecordFactory()
    if getattr(previous, "adds_request_id", False):
        return

    def make_record(*args, **kwargs) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        record.request_id = current_request_id() or NO_REQUEST
        return record

    make_record.adds_request_id = True
    logging.setLogRecordFactory(make_record)


def log_startup(app: Flask) -> None:
    """Log, in one line, the environment, the masked database URL, engine options and cache."""
    cache_url = app.config.get("CACHE_REDIS_URL")
    logger.info(
        "studio starting: environment=%s database=%s engine_options=%s proxy_hops=%s cache=%s%s",
        app.config["STUDIO_ENV"],
        mask_database_url(app.config["SQLALCHEMY_DATABASE_URI"]),
        app.config["SQLALCHEMY_ENGINE_OPTIONS"],
        app.config["PROXY_HOPS"],
        app.config["CACHE_TYPE"].rsplit(".", 1)[-1],
        f" ({mask_database_url(cache_url)})" if cache_url else "",
    )
    if app.config["STUDIO_ENV"] == "production" and not app.config["ALLOWED_HOSTS"]:
        logger.warning(
            "ALLOWED_HOSTS is not set: studio answers to any Host header. Set it to the site's "
            "names (e.g. ALLOWED_HOSTS=shop.example.com; on Railway ${{RAILWAY_PUBLIC_DOMAIN}})."
        )
    if app.config.get("CACHE_STALE_RISK"):
        logger.warning(
            "Several workers and no Redis: each worker keeps its own cache, which can be stale "
            "after another worker's write, so cache TTLs are capped at 5 s. Set REDIS_URL to "
            "share one cache."
        )


class Shown(Enum):
    WITH_TRACEBACK = "with traceback"
    LINE = "line"
    NOTHING = "nothing"


SUMMARY = "studio_burst_summary"  # marks a summary record, which BurstFilter lets pass


@dataclass
class Burst:
    """Occurrences of one cause within the current window."""

    logger: logging.Logger
    started: float
    count: int = 0
    suppressed: int = 0
    last: float = 0.0
    summary_due: bool = False


class BurstLog:
    """One line per failure; the traceback once per cause a minute; the rest summarised.

    The first LINES_PER_BURST occurrences of a cause in a window are logged, the first
    with its traceback; later ones are counted and summarised when the window closes:
    "... 434 more like this in 12 s". Nothing is logged while the lock is held: a
    logger's own BurstFilter comes back here.
    """

    def __init__(self) -> None:
        self._reset()
        os.register_at_fork(after_in_child=self._reset)

    def _reset(self) -> None:
        self.lock = threading.Lock()
        self.bursts: dict[str, Burst] = {}

    def clear(self) -> None:
        """Forget every burst, as a new process starts (tests run many apps in one).

        Their summaries due later are forgotten too: no count of an earlier burst is logged.
        """
        with self.lock:
            bursts, self.bursts = self.bursts, {}
            for burst in bursts.values():
                burst.suppressed = 0

    def decide(self, log: logging.Logger, key: str) -> Shown:
        """Count one occurrence of `key` and return how much of it to show."""
        now = time.monotonic()
        ended = None
        with self.lock:
            burst = self.bursts.get(key)
            if burst is None or now - burst.started >= BURST_WINDOW_SECONDS:
                ended = burst
                burst = self.bursts[key] = Burst(log, now)
            burst.count += 1
            burst.last = now
            shown = self._count(key, burst, now)
        if ended is not None:
            self._summarise(key, ended)
        return shown

    def _count(self, key: str, burst: Burst, now: float) -> Shown:
        if burst.count == 1:
            return Shown.WITH_TRACEBACK
        if burst.count <= LINES_PER_BURST:
            return Shown.LINE
        burst.suppressed += 1
        if not burst.summary_due:
            burst.summary_due = True
            delay = burst.started + BURST_WINDOW_SECONDS - now
            timer = threading.Timer(delay, self._summarise, (key, burst))
            timer.daemon = True
            timer.start()
        return Shown.NOTHING

    def note(
        self,
        log: logging.Logger,
        key: str,
        message: str,
        *args: object,
        exc_info: BaseException | None = None,
        level: int = logging.WARNING,
    ) -> None:
        """Log `message` unless its cause is in a burst; the traceback only the first time."""
        shown = self.decide(log, key)
        if shown is not Shown.NOTHING:
            with_traceback = exc_info if shown is Shown.WITH_TRACEBACK else None
            log.log(level, message, *args, exc_info=with_traceback)

    def _summarise(self, key: str, burst: Burst) -> None:
        """Log how many occurrences a window left out (once, from whichever thread is first)."""
        with self.lock:
            suppressed, burst.suppressed = burst.suppressed, 0
        if suppressed:
            burst.logger.warning(
                "... %d more like this in %.0f s (%s)",
                suppressed,
                burst.last - burst.started,
                key,
                extra={SUMMARY: True},
            )


burst_log = BurstLog()


class BurstFilter(logging.Filter):
    """Pass a logger's records through the burst limiter, keyed by their message."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, SUMMARY, False):
            return True
        exc = record.exc_info[1] if record.exc_info else None
        key = f"{record.name}:{record.msg}:{type(exc).__name__ if exc else ''}"
        shown = burst_log.decide(logging.getLogger(record.name), key)
        if shown is Shown.LINE and record.exc_info:
            # The exception's class and first line, on the same line, without the traceback.
            first_line = (str(exc).strip().splitlines() or [""])[0]
            record.msg = f"{record.getMessage()} ({type(exc).__name__}: {first_line})"
            record.args = None
            record.exc_info = None
        return shown is not Shown.NOTHING
