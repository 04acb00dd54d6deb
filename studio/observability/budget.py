"""The connection budget: will every worker's pool fit in what the server allows?"""

import logging
from dataclasses import dataclass, field
from typing import Any

from flask import Flask
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from ..config import ConfigError
from ..extensions import db
from .metrics import Samples

logger = logging.getLogger(__name__)
# Kept free for a one-off shell, a migration or the monitor.
HEADROOM = 2
MAX_RECOMMENDED_OVERFLOW = 5


@dataclass(frozen=True)
class ServerLimits:
    max_connections: int
    reserved: int
    in_use_by_others: int
    idle_timeout_seconds: float | None

    @property
    def available(self) -> int:
        """Connections studio may count on, after superusers, other clients and headroom."""
        return max(self.max_connections - self.reserved - self.in_use_by_others - HEADROOM, 0)


@dataclass(frozen=True)
class Deployment:
    instances: int
    workers: int
    threads: int
    pool_size: int
    max_overflow: int
    pool_recycle: int

    @property
    def worst_case(self) -> int:
        return self.instances * self.workers * (self.pool_size + self.max_overflow)


@dataclass(frozen=True)
class Observed:
    """What the running workers reported in their metrics."""

    workers: int  # live workers that published pool figures
    peak_checked_out: int  # most connections one worker had out at once
    checkouts: int
    timeouts: int


def observed_from(samples: Samples) -> Observed | None:
    """Read pool peaks, checkouts and timeouts from metric samples; None if there are none."""

    def total(name: str, **labels: str) -> float:
        found = samples.get(name, [])
        return sum(v for got, v in found if labels.items() <= got.items())

    pids = {labels.get("pid", "") for labels, _ in samples.get("studio_db_pool_size", [])}
    if "studio_db_pool_checkouts_total" not in samples:
        return None
    peaks = [v for _, v in samples.get("studio_db_pool_checked_out_peak", [])]
    return Observed(
        workers=len(pids),
        peak_checked_out=int(max(peaks, default=0)),
        checkouts=int(total("studio_db_pool_checkouts_total")),
        timeouts=int(total("studio_db_pool_timeouts_total")),
    )


@dataclass
class Advice:
    problems: list[str] = field(default_factory=list)
    reasoning: list[str] = field(default_factory=list)
    recommended: dict[str, int] = field(default_factory=dict)


def advise(limits: ServerLimits, plan: Deployment, observed: Observed | None = None) -> Advice:
    """Check the plan against the server and recommend pool and worker settings, with reasons.

    With `observed` figures from running workers, size the pool by what they used.
    """
    advice = Advice()
    processes = plan.instances * plan.workers
    advice.reasoning.append(
        f"The server allows {limits.max_connections} connections; {limits.reserved} are reserved "
        f"for superusers, {limits.in_use_by_others} are held by other clients and {HEADROOM} are "
        f"kept free for shells and migrations: {limits.available} are left for studio."
    )
    advice.reasoning.append(
        f"{plan.instances} instance(s) x {plan.workers} worker(s) x (pool_size {plan.pool_size} + "
        f"max_overflow {plan.max_overflow}) = {plan.worst_case} connections at worst."
    )
    if plan.worst_case > limits.available:
        advice.problems.append(
            f"worst case {plan.worst_case} connections exceeds the {limits.available} the server "
            "can give; requests will fail with 'too many connections' under load."
        )
    if plan.pool_size < plan.threads:
        advice.problems.append(
            f"pool_size {plan.pool_size} is smaller than the {plan.threads} threads per worker: "
            "threads will queue for connections."
        )
    if limits.idle_timeout_seconds and plan.pool_recycle >= limits.idle_timeout_seconds:
        advice.problems.append(
            f"pool_recycle {plan.pool_recycle} s is not shorter than the server's idle timeout "
            f"({limits.idle_timeout_seconds:.0f} s): pooled connections will be cut."
        )
    per_process = limits.available // max(processes, 1)
    workers = plan.workers
    if per_process < plan.threads:
        workers = max(limits.available // (plan.instances * max(plan.threads, 1)), 1)
        per_process = limits.available // max(plan.instances * workers, 1)
        advice.reasoning.append(
            f"{plan.workers} worker(s) would leave each fewer connections than threads; "
            f"{workers} worker(s) leave {per_process} each."
        )
    # A sync worker uses one connection at a time; one spare covers a nested session.
    pool_size = max(min(per_process, plan.threads + 1), 1)
    overflow = max(min(per_process - pool_size, MAX_RECOMMENDED_OVERFLOW), 0)
    advice.reasoning.append(
        f"Each worker may hold {per_process} connection(s): pool_size {pool_size} covers its "
        f"{plan.threads} thread(s) and one spare, max_overflow {overflow} absorbs bursts "
        f"(at most {MAX_RECOMMENDED_OVERFLOW}: each overflow connection is opened for a burst "
        "and closed after it)."
    )
    if observed is not None:
        pool_size, overflow = fit_to_observed(advice, observed, plan, per_process, pool_size)
    timeout = 10 if overflow == 0 else 20
    advice.reasoning.append(
        f"pool_timeout {timeout} s: a request that cannot get a connection fails well within "
        "the platform router's 30 s limit instead of hanging."
    )
    recycle = plan.pool_recycle
    if limits.idle_timeout_seconds:
        recycle = min(recycle, max(int(limits.idle_timeout_seconds * 0.8), 30))
    advice.recommended = {
        "WEB_CONCURRENCY": workers,
        "DB_POOL_SIZE": pool_size,
        "DB_MAX_OVERFLOW": overflow,
        "DB_POOL_TIMEOUT": timeout,
        "DB_POOL_RECYCLE": recycle,
    }
    return advice


def fit_to_observed(
    advice: Advice, observed: Observed, plan: Deployment, per_process: int, pool_size: int
) -> tuple[int, int]:
    """Resize the recommended pool by what the workers used; return (pool_size, overflow)."""
    peak = observed.peak_checked_out
    advice.reasoning.append(
        f"Observed over {observed.checkouts} checkout(s): at most {peak} connection(s) out at "
        f"once in one worker, {observed.timeouts} timed out."
    )
    if observed.timeouts:
        # Requests queued for connections: give each worker all the budget allows.
        size = max(min(per_process, max(peak + 1, pool_size)), 1)
        advice.problems.append(
            f"{observed.timeouts} pool timeout(s) observed: requests waited for connections"
            " until they gave up."
        )
        advice.reasoning.append(
            f"Requests waited for connections, so pool_size {size} takes what the budget allows"
            f" per worker ({per_process}); if that is still short, the budget is the limit: "
            "fewer threads per worker, or a database plan with more connections."
        )
        return size, max(min(per_process - size, MAX_RECOMMENDED_OVERFLOW), 0)
    size = max(min(pool_size, peak + 1), plan.threads, 1)
    if size < pool_size:
        advice.reasoning.append(
            f"No request waited and the busiest worker used {peak}: pool_size {size} (that peak,"
            " its threads and one spare) is enough, leaving connections for others."
        )
    overflow = max(min(per_process - size, MAX_RECOMMENDED_OVERFLOW), 0)
    return min(size, per_process) or 1, overflow


LIMITS_SQL = text(
    "SELECT current_setting('max_connections')::int, "
    "current_setting('superuser_reserved_connections')::int"
)
OTHERS_SQL = text(
    "SELECT (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' "
    " AND coalesce(application_name, '') <> 'studio'), "
    "(SELECT min(setting::float) / 1000 FROM pg_settings WHERE name IN "
    " ('idle_session_timeout', 'idle_in_transaction_session_timeout') "
    " AND setting <> '0')"
)


def connection_limits() -> tuple[int, int]:
    """Return PostgreSQL's max_connections and the connections reserved for superusers."""
    max_connections, reserved = db.session.execute(LIMITS_SQL).one()
    return max_connections, reserved


def read_server_limits() -> ServerLimits:
    """Ask PostgreSQL for its connection limits, idle timeouts and current connections."""
    max_connections, reserved = connection_limits()
    others, idle_timeout = db.session.execute(OTHERS_SQL).one()
    db.session.rollback()
    return ServerLimits(max_connections, reserved, others, idle_timeout)


def deployment(app: Flask) -> Deployment:
    options: dict[str, Any] = app.config["SQLALCHEMY_ENGINE_OPTIONS"]
    return Deployment(
        instances=app.config["STUDIO_INSTANCES"],
        workers=app.config["WEB_CONCURRENCY"],
        threads=app.config["THREADS_PER_WORKER"],
        pool_size=options.get("pool_size", 5),
        max_overflow=options.get("max_overflow", 10),
        pool_recycle=options.get("pool_recycle", -1),
    )


def check_connection_budget(app: Flask) -> Advice | None:
    """At start on PostgreSQL: warn (or, with DB_BUDGET_STRICT, refuse) when pools cannot fit."""
    if not app.config.get("DB_BUDGET_CHECK"):
        return None
    with app.app_context():
        if db.engine.dialect.name != "postgresql":
            return None
        try:
            limits = read_server_limits()
        except SQLAlchemyError as exc:
            reason = exc.__class__.__name__
            logger.warning("connection budget not checked: database unreachable (%s)", reason)
            return None
        finally:
            db.session.remove()
            # Leave no connection in this process: gunicorn --preload forks its workers
            # from it, and a socket shared with them would carry their queries crossed.
            db.engine.dispose()
    advice = advise(limits, deployment(app))
    for problem in advice.problems:
        logger.warning("connection budget: %s Run 'flask --app wsgi tune' for advice.", problem)
    if advice.problems and app.config.get("DB_BUDGET_STRICT"):
        raise ConfigError(f"Refusing to start: {advice.problems[0]} (DB_BUDGET_STRICT is set)")
    return advice
