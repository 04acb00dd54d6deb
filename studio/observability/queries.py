"""Slow SQL statements, from SQLAlchemy's cursor-execute events."""

import logging
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from flask import Flask
from sqlalchemy import event

from ..clock import add_time
from ..extensions import db
from ..logs import burst_log
from . import metrics

logger = logging.getLogger(__name__)
KEPT = 50
SHOWN_CHARACTERS = 2000
SECRET_NAMES = re.compile(r"password|token|secret|hash", re.IGNORECASE)


@dataclass(frozen=True)
class SlowQuery:
    at: datetime
    milliseconds: float
    statement: str
    parameters: str | None


class SlowQueries:
    """The latest slow statements, newest last."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.items: deque[SlowQuery] = deque(maxlen=KEPT)

    def add(self, item: SlowQuery) -> None:
        with self.lock:
            self.items.append(item)

    def latest(self) -> list[SlowQuery]:
        with self.lock:
            return list(self.items)

    def slowest_within(self, seconds: float) -> float | None:
        """Return the longest statement (in seconds) of the last `seconds`, if any was slow."""
        cutoff = datetime.now(UTC).timestamp() - seconds
        with self.lock:
            recent = [q.milliseconds for q in self.items if q.at.timestamp() >= cutoff]
        return max(recent) / 1000 if recent else None


def _mask(parameters: Any) -> Any:
    if isinstance(parameters, dict):
        return {k: "***" if SECRET_NAMES.search(str(k)) else v for k, v in parameters.items()}
    if isinstance(parameters, list | tuple):  # executemany: one set per row
        return [_mask(row) for row in parameters]
    return parameters


def masked(parameters: Any) -> str:
    """Return the parameters with the values of secret-looking names hidden, shortened."""
    return shortened(repr(_mask(parameters)))


def shortened(text: str) -> str:
    """Cut a bulk statement or its thousand rows of parameters down to a readable length."""
    if len(text) <= SHOWN_CHARACTERS:
        return text
    return f"{text[:SHOWN_CHARACTERS]}... ({len(text) - SHOWN_CHARACTERS} more characters)"


def register_query_timing(app: Flask, slow_queries: SlowQueries) -> None:
    """Time each statement; log and keep those over the configured thresholds.

    The hooks are the dialect's cursor-execute events (do_execute and its two siblings),
    which hand the cursor over to run the statement, rather than before/after_cursor_execute:
    any engine-level listener makes SQLAlchemy dispatch events around every connection, begin,
    commit and statement, which cost a paint read more than the timing itself (figures in
    the README's Performance section). A statement that fails, cancelled by a timeout say,
    is timed too.
    """
    warn_ms = app.config["SLOW_QUERY_MS"]
    with_params_ms = app.config["SLOW_QUERY_PARAMETERS_MS"]
    with app.app_context():
        engine = db.engine
    dialect = engine.dialect

    def finished(statement: str, parameters: Any, seconds: float) -> None:
        add_time("db", seconds)
        milliseconds = seconds * 1000
        if milliseconds < warn_ms:
            return
        metrics.SLOW_QUERIES.inc()
        shown = masked(parameters) if milliseconds >= with_params_ms else None
        statement = shortened(statement)
        slow_queries.add(SlowQuery(datetime.now(UTC), milliseconds, statement, shown))
        # A locked table makes every statement slow at once: a line each, then a summary.
        key = f"slow-query:{statement[:120]}"
        if shown is None:
            burst_log.note(logger, key, "slow query (%.0f ms): %s", milliseconds, statement)
        else:
            burst_log.note(
                logger,
                key,
                "slow query (%.0f ms): %s parameters=%s",
                milliseconds,
                statement,
                shown,
            )

    def timed(execute: Callable[..., None]) -> Callable[..., bool]:
        """Wrap one of the dialect's execute methods as the listener of its event."""

        # (cursor, statement, parameters, context), or (cursor, statement, context) for
        # do_execute_no_params. True tells SQLAlchemy the statement ran here: not to run it again.
        def listener(cursor: Any, statement: str, *rest: Any) -> bool:
            started = time.perf_counter()
            try:
                execute(cursor, statement, *rest)
            finally:
                parameters = rest[0] if len(rest) == 2 else None
                finished(statement, parameters, time.perf_counter() - started)
            return True

        return listener

    for name in ("do_execute", "do_executemany", "do_execute_no_params"):
        event.listen(engine, name, timed(getattr(dialect, name)))
