"""Measuring studio from the edge: requests, SQL, the pool, the process, alerts and metrics.

One extension, bound with `init_app`; the product never imports it. It learns what the
product does from studio.signals and studio.clock, and brings its own pages (/metrics,
/admin/performance) and commands (`flask tune`, `flask monitor`).
"""

from flask import Flask

from ..extensions import db
from .alerts import AlertBook
from .budget import check_connection_budget
from .commands import COMMANDS
from .fault_counts import count_faults
from .pool import PoolStats, max_overflow_of, measure_pool
from .queries import SlowQueries, register_query_timing
from .sampling import Sampler
from .sign_ins import FailedSignIns, count_failed_sign_ins
from .state import EXTENSION_KEY, Observatory, observatory
from .timing import RequestTimes, register_request_timing
from .views import alerts_banner, bp

__all__ = ["init_app", "observatory"]


def init_app(app: Flask) -> None:
    """Add the pages and commands; with OBSERVABILITY on, measure every request of the app.

    Call after the database is bound. With OBSERVABILITY off nothing of this package is
    in a request's path: no hooks, no signal receivers, no pool or SQL events.
    """
    observed = make_observatory(app)
    app.extensions[EXTENSION_KEY] = observed
    app.register_blueprint(bp)
    for command in COMMANDS:
        app.cli.add_command(command)
    if app.config["OBSERVABILITY"]:
        register_request_timing(app, observed.requests)
        register_query_timing(app, observed.slow_queries)
        measure_pool(observed.sampler.engine, observed.sampler.pool_stats)
        count_faults()
        count_failed_sign_ins()
        app.context_processor(alerts_banner)
    check_connection_budget(app)


def make_observatory(app: Flask) -> Observatory:
    """Return the empty figures of one app."""
    config = app.config
    window = config["ALERT_WINDOW_SECONDS"]
    requests, slow_queries = RequestTimes(window), SlowQueries()
    alerts, failed_sign_ins = AlertBook(config, window), FailedSignIns(window)
    with app.app_context():
        engine = db.engine
    pool_stats = PoolStats(max_overflow_of(config["SQLALCHEMY_ENGINE_OPTIONS"]))
    interval = config["METRICS_SAMPLE_SECONDS"]
    sampler = Sampler(engine, requests, pool_stats, slow_queries, alerts, interval, failed_sign_ins)
    requests.every_second = sampler.keep_sampling
    return Observatory(requests, slow_queries, alerts, sampler, failed_sign_ins)
