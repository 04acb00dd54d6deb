"""The connection budget: will every worker's pool fit in what the server allows?"""

import logging
from dataclasses import dataclass, field
from typing import Any

from flask import Flask
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from ..config import ConfigError
from ..connection_budget import (
    ADVICE,
    HEADROOM,
    KEY,
    LIMITS_SQL,
    MAX_OVERFLOW,
    Hints,
    ServerView,
    application_name,
    me,
    probe_url,
    read_server_view,
    recommend,
    size_pools,
)
from ..extensions import db
from ..resilience.faults import cause
from ..serving import Serving
from .metrics import Samples

logger = logging.getLogger(__name__)
# The server's view, named as the advisor has always named it.
ServerLimits = ServerView
__all__ = ["HEADROOM", "MAX_OVERFLOW", "ServerLimits"]


# Production's pool_timeout (ProductionConfig): within the router's 30 s.
POOL_TIMEOUT = 10


@dataclass(frozen=True)
class Deployment:
    """The settings in force: hints of the deployment's shape, and the pool's numbers."""

    instances: int
    workers: int
    threads: int
    pool_size: int
    max_overflow: int
    pool_recycle: int
    overlap: int = 1
    pool_timeout: int = POOL_TIMEOUT
    pgbouncer_pool: int | None = None  # in PgBouncer mode, the pool it keeps on the server

    @property
    def hints(self) -> Hints:
        return Hints(self.instances, self.workers, self.threads, self.overlap, self.pgbouncer_pool)


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


def advise(
    limits: ServerView,
    plan: Deployment,
    observed: Observed | None = None,
    me: tuple[str, int] = ("", 0),
) -> Advice:
    """Check the plan against the server and recommend pool and worker settings, with reasons.

    Instances and workers are counted as the start-up sizing counts them (live ones seen,
    the hints as minimums, a deploy's overlap), and the recommended pool is the one
    DB_POOL_SIZE=auto picks (studio.connection_budget.recommend): following the advice
    draws no warning at start. With `observed` figures from running workers, the pool
    is sized by what they used, never below their threads.
    """
    advice = Advice()
    now = size_pools(limits, me, plan.hints)
    if plan.pgbouncer_pool is not None:
        advice.reasoning.extend(now.reasoning)
        advice.problems.extend(filter(None, [now.problem]))
        advice.recommended = {"DB_POOL_SIZE": now.pool_size, "DB_MAX_OVERFLOW": now.max_overflow}
        return advice
    counted, workers = now.instances + plan.overlap, now.workers
    worst_case = counted * workers * (plan.pool_size + plan.max_overflow)
    advice.reasoning.extend(now.reasoning[:2])
    advice.reasoning.append(
        f"{counted} instance(s) x {workers} worker(s) x (pool_size {plan.pool_size} + "
        f"max_overflow {plan.max_overflow}) = {worst_case} connections at worst."
    )
    if worst_case > limits.available:
        advice.problems.append(
            f"worst case {worst_case} connections exceeds the {limits.available} the server "
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
    chosen = recommend(limits, me, plan.hints)
    advice.reasoning.extend(chosen.reasoning)
    sizing = chosen.sizing
    pool_size, overflow = sizing.pool_size, sizing.max_overflow
    advice.reasoning.append(
        f"Each worker may hold {sizing.per_process} connection(s): pool_size {pool_size} covers "
        f"its {sizing.threads} thread(s) and one spare where it fits, max_overflow {overflow} "
        f"absorbs bursts (at most {MAX_OVERFLOW}: each overflow connection is opened for a "
        "burst and closed after it). DB_POOL_SIZE=auto picks these at start."
    )
    if not sizing.fits and sizing.problem:
        advice.problems.append(f"even the recommended settings do not fit: {sizing.problem}")
    if observed is not None:
        pool_size, overflow = fit_to_observed(
            advice, observed, plan, sizing.per_process, pool_size, sizing.threads
        )
    # What production starts with, or the setting where it is shorter.
    timeout = min(plan.pool_timeout, POOL_TIMEOUT)
    advice.reasoning.append(
        f"pool_timeout {timeout} s: a request that cannot get a connection fails well within "
        "the platform router's 30 s limit instead of hanging."
    )
    recycle = plan.pool_recycle
    if limits.idle_timeout_seconds:
        recycle = min(recycle, max(int(limits.idle_timeout_seconds * 0.8), 30))
    advice.recommended = {"WEB_CONCURRENCY": chosen.workers}
    if chosen.threads != plan.threads:
        advice.recommended["THREADS_PER_WORKER"] = chosen.threads
    advice.recommended.update(
        DB_POOL_SIZE=pool_size,
        DB_MAX_OVERFLOW=overflow,
        DB_POOL_TIMEOUT=timeout,
        DB_POOL_RECYCLE=recycle,
    )
    return advice


def fit_to_observed(
    advice: Advice,
    observed: Observed,
    plan: Deployment,
    per_process: int,
    pool_size: int,
    threads: int,
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
        return size, max(min(per_process - size, MAX_OVERFLOW), 0)
    size = max(min(pool_size, peak + 1), threads, 1)
    if size < pool_size:
        advice.reasoning.append(
            f"No request waited and the busiest worker used {peak}: pool_size {size} (that peak,"
            " its threads and one spare) is enough, leaving connections for others."
        )
    overflow = max(min(per_process - size, MAX_OVERFLOW), 0)
    return size, overflow


def connection_limits() -> tuple[int, int]:
    """Return PostgreSQL's max_connections and the connections reserved (as studio counts them)."""
    max_connections, reserved, _ = db.session.execute(LIMITS_SQL).one()
    return max_connections, reserved


def read_server_limits() -> ServerView:
    """Ask PostgreSQL for its limits, idle timeouts and who holds its connections."""
    try:
        return read_server_view(db.session.connection())
    finally:
        db.session.rollback()


def deployment(app: Flask, served: Serving | None = None) -> Deployment:
    """Return the deployment as configured; `served`: the workers and threads gunicorn runs."""
    options: dict[str, Any] = app.config["SQLALCHEMY_ENGINE_OPTIONS"]
    return Deployment(
        instances=app.config["STUDIO_INSTANCES"],
        workers=served.workers if served else app.config["WEB_CONCURRENCY"],
        threads=served.threads if served else app.config["THREADS_PER_WORKER"],
        pool_size=options.get("pool_size", 5),
        max_overflow=options.get("max_overflow", 10),
        pool_recycle=options.get("pool_recycle", -1),
        pool_timeout=options.get("pool_timeout", POOL_TIMEOUT),
        overlap=app.config["DB_DEPLOY_OVERLAP"],
        pgbouncer_pool=(
            app.config["DB_PGBOUNCER_POOL_SIZE"] if app.config["DB_POOL"] == "pgbouncer" else None
        ),
    )


def check_connection_budget(app: Flask) -> Advice | None:
    """At start on PostgreSQL: warn (or, with DB_BUDGET_STRICT, refuse) when pools cannot fit.

    A pool sized at start (DB_POOL_SIZE=auto) was checked then, with the server's view read
    once; explicit numbers are checked here against a view read on a connection of its own.
    """
    if not app.config.get("DB_BUDGET_CHECK"):
        return None
    if make_url(app.config["SQLALCHEMY_DATABASE_URI"]).get_backend_name() != "postgresql":
        return None
    sized = app.extensions.get(KEY)
    if sized is not None and (sized.view is None or sized.pgbouncer):
        return None  # unreachable (said at start), or PgBouncer's pool checked then
    limits = sized.view if sized is not None else probe_view(app)
    if limits is None:
        return None
    advice = advise(limits, deployment(app), me=me(app.config))
    if sized is not None and sized.sizing is not None and not sized.sizing.fits:
        return advice  # said and refused (DB_BUDGET_STRICT) at start already
    for problem in advice.problems:
        logger.warning("connection budget: %s %s", problem, ADVICE)
    if advice.problems and app.config.get("DB_BUDGET_STRICT"):
        raise ConfigError(f"Refusing to start: {advice.problems[0]} (DB_BUDGET_STRICT is set)")
    return advice


def probe_view(app: Flask) -> ServerView | None:
    """Read the server's view on a connection of its own, closed at once; None if unreachable.

    Nothing stays open in this process: gunicorn --preload forks its workers from it,
    and a socket shared with them would carry their queries crossed.
    """
    options = app.config["SQLALCHEMY_ENGINE_OPTIONS"]
    name = application_name(*me(app.config))
    try:
        return probe_url(
            app.config["SQLALCHEMY_DATABASE_URI"],
            {**options["connect_args"], "application_name": name},
        )
    except SQLAlchemyError as exc:
        logger.warning("connection budget not checked: database unreachable (%s)", cause(exc))
        return None
