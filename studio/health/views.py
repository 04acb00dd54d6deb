"""GET /health (alive, touches nothing) and GET /health/ready (database and cache)."""

import logging
from datetime import UTC, datetime

from flask import Blueprint, current_app
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from ..extensions import db
from ..resilience import database_breaker
from ..resilience.faults import DatabaseUnavailable, cause, retry_after
from ..services import cached_reads

logger = logging.getLogger(__name__)
bp = Blueprint("health", __name__, url_prefix="/health")


@bp.get("")
def alive():
    return {"status": "ok"}


@bp.get("/ready")
def ready():
    breaker = database_breaker()
    database, wait = database_state()
    cache_state = cached_reads.probe()
    status = "ok" if database == "ok" and cache_state == "ok" else "degraded"
    body = {
        "status": "unavailable" if database != "ok" else status,
        "database": database,
        "database_breaker": breaker.state if breaker else None,
        "cache": cache_state,
        "timestamp": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
    }
    if database == "ok":
        return body, 200
    return body, 503, {"Retry-After": str(wait)}


def database_state() -> tuple[str, int]:
    """Return ("ok", 0) if SELECT 1 answers in time, else the state and seconds to wait.

    The statement timeout is READINESS_TIMEOUT_MS; an open circuit breaker answers at once.
    """
    try:
        if db.session.get_bind().dialect.name == "postgresql":
            timeout = int(current_app.config["READINESS_TIMEOUT_MS"])
            db.session.execute(text(f"SET LOCAL statement_timeout = {timeout}"))
        db.session.execute(text("SELECT 1"))
        db.session.rollback()
        return "ok", 0
    except (SQLAlchemyError, DatabaseUnavailable) as exc:
        db.session.rollback()
        logger.warning("readiness check: database unreachable (%s)", cause(exc))
        return "unreachable", retry_after(exc)
