"""Measuring studio from inside: requests, SQL, the pool, the process, alerts and metrics."""

from dataclasses import dataclass

from flask import Flask, current_app

from ..extensions import db
from .alerts import AlertBook
from .budget import check_connection_budget
from .fault_counts import count_faults
from .pool import MeasuredPool
from .queries import SlowQueries, register_query_timing
from .sampling import Sampler
from .sign_ins import FailedSignIns, count_failed_sign_ins
from .timing import RequestTimes, register_request_timing

EXTENSION_KEY = "studio.observability"


@dataclass
class Observatory:
    """What one app measured in this process."""

    requests: RequestTimes
    slow_queries: SlowQueries
    alerts: AlertBook
    sampler: Sampler
    failed_sign_ins: FailedSignIns


def use_measured_pool(app: Flask) -> None:
    """Have the engine's pool time its checkouts; call before the database is bound."""
    if not app.config["OBSERVABILITY"]:
        return
    options = app.config["SQLALCHEMY_ENGINE_OPTIONS"]
    app.config["SQLALCHEMY_ENGINE_OPTIONS"] = {"poolclass": MeasuredPool, **options}


def register_observability(app: Flask) -> None:
    """Time every request and SQL statement, sample the pool; check the connection budget."""
    config = app.config
    window = config["ALERT_WINDOW_SECONDS"]
    requests, slow_queries = RequestTimes(window), SlowQueries()
    alerts, failed_sign_ins = AlertBook(config, window), FailedSignIns(window)
    with app.app_context():
        engine = db.engine
    sampler = Sampler(
        engine, requests, slow_queries, alerts, config["METRICS_SAMPLE_SECONDS"], failed_sign_ins
    )
    app.extensions[EXTENSION_KEY] = Observatory(
        requests, slow_queries, alerts, sampler, failed_sign_ins
    )
    if config["OBSERVABILITY"]:
        register_request_timing(app, requests, after=sampler.maybe_sample)
        register_query_timing(app, slow_queries)
        count_faults()
        count_failed_sign_ins()
    check_connection_budget(app)


def observatory(app: Flask | None = None) -> Observatory:
    """Return the figures of the given app, or of the current one."""
    return (app or current_app).extensions[EXTENSION_KEY]
