"""Slow SQL statements, from SQLAlchemy's cursor events."""

import logging
import re
import threading
import time
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from flask import Flask
from sqlalchemy import event

from ..extensions import db
from . import metrics
from .timing import add_time

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
    """Time each statement; log and keep those over the configured thresholds."""
    warn_ms = app.config["SLOW_QUERY_MS"]
    with_params_ms = app.config["SLOW_QUERY_PARAMETERS_MS"]
    with app.app_context():
        engine = db.engine

    @event.listens_for(engine, "before_cursor_execute")
    def start(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool):
        conn.info["query_started"] = time.perf_counter()

    @event.listens_for(engine, "after_cursor_execute")
    def stop(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool):
        seconds = time.perf_counter() - conn.info["query_started"]
        add_time("db", seconds)
        milliseconds = seconds * 1000
        if milliseconds < warn_ms:
            return
        metrics.SLOW_QUERIES.inc()
        shown = masked(parameters) if milliseconds >= with_params_ms else None
        statement = shortened(statement)
        slow_queries.add(SlowQuery(datetime.now(UTC), milliseconds, statement, shown))
        if shown is None:
            logger.warning("slow query (%.0f ms): %s", milliseconds, statement)
        else:
            logger.warning("slow query (%.0f ms): %s parameters=%s", milliseconds, statement, shown)
