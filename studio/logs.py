"""Logging set-up and the start-up summary."""

import logging
import sys

from flask import Flask

from .config import mask_database_url

logger = logging.getLogger("studio")


def configure_logging(app: Flask) -> None:
    """Send studio's log records to stderr at the configured level, once."""
    logger.setLevel(app.config["LOG_LEVEL"])
    # SQLAlchemy names a pool's logger after its class: keep studio's pool as quiet as its own.
    logging.getLogger("studio.observability.pool").setLevel(logging.WARNING)
    if not logger.handlers and not logging.getLogger().handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)


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
    if app.config.get("CACHE_STALE_RISK"):
        logger.warning(
            "Several workers and no Redis: each worker keeps its own cache, which can be stale "
            "after another worker's write, so cache TTLs are capped at 5 s. Set REDIS_URL to "
            "share one cache."
        )
