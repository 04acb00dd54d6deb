"""GET /health (alive, touches nothing) and GET /health/ready (database and cache)."""

import logging
from datetime import UTC, datetime

from flask import Blueprint, current_app
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from ..extensions import db
from ..services import cache

logger = logging.getLogger(__name__)
bp = Blueprint("health", __name__, url_prefix="/health")


@bp.get("")
def alive():
    return {"status": "ok"}


@bp.get("/ready")
def ready():
    database = database_state()
    cache_state = cache.probe()
    status = "ok" if database == "ok" and cache_state == "ok" else "degraded"
    body = {
        "status": "unavailable" if database != "ok" else status,
        "database": database,
        "cache": cache_state,
        "timestamp": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
    }
    return body, 200 if database == "ok" else 503


def database_state() -> str:
    """Return "ok" when SELECT 1 answers within READINESS_TIMEOUT_MS, else "unreachable"."""
    try:
        if db.session.get_bind().dialect.name == "postgresql":
            timeout = int(current_app.config["READINESS_TIMEOUT_MS"])
            db.session.execute(text(f"SET LOCAL statement_timeout = {timeout}"))
        db.session.execute(text("SELECT 1"))
        db.session.rollback()
        return "ok"
    except SQLAlchemyError as exc:
        db.session.rollback()
        logger.warning("readiness check: database unreachable (%s)", exc.__class__.__name__)
        return "unreachable"
