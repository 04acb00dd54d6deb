"""The retry policy, the circuit breaker and the quiet failure log, on their own."""

import logging
import sys
import threading
import time

import pytest
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from studio import logs
from studio.resilience import breaker as breakers
from studio.resilience.faults import (
    BreakerOpen,
    CommitOutcomeUnknown,
    NotCommitted,
    is_transient,
    is_unavailable,
    retry_after,
)
from studio.resilience.retry import note_commit_sent, retry_transient


class ServerError(Exception):
    """What psycopg2 raises: a message and the server's SQLSTATE (None from libpq itself)."""

    def __init__(self, message: str, pgcode: str | None) -> None:
        super().__init__(message)
        self.pgcode = pgcode


class SqliteError(Exception):
    """What sqlite3 raises: no SQLSTATE at all."""


def server_error(message: str, pgcode: str | None, invalidated: bool = False) -> Exception:
    return OperationalError("SELECT 1", {}, ServerError(message, pgcode), invalidated)


DISCONNECT = server_error("server closed the connection unexpectedly", None, invalidated=True)
REFUSED = server_error('connection to server at "db" failed: Connection refused', None)
SHUTTING_DOWN = server_error("terminating connection due to administrator command", "57P01")
STARTING = server_error("the database system is starting up", "57P03")
TOO_MANY = server_error("sorry, too many clients already", "53300")
SERIALIZATION = server_error("could not serialize access", "40001")
DEADLOCK = server_error("deadlock detected", "40P01")
LOCK_TIMEOUT = server_error("canceling statement due to lock timeout", "55P03")
STATEMENT_TIMEOUT = server_error("canceling statement due to statement timeout", "57014")
SQLITE_LOCKED = OperationalError("SELECT 1", {}, SqliteError("database is locked"))
DUPLICATE = IntegrityError("INSERT", {}, ServerError("duplicate key", "23505"))


@pytest.mark.parametrize(
    "error",
    [DISCONNECT, REFUSED, SHUTTING_DOWN, STARTING, TOO_MANY, SERIALIZATION, DEADLOCK],
    ids=["disconnect", "refused", "57P01", "57P03", "53300", "40001", "40P01"],
)
def test_passing_failures_are_transient_and_unavailable(error):
    assert is_transient(error)
    assert is_unavailable(error)


@pytest.mark.parametrize(
    "error",
    [LOCK_TIMEOUT, STATEMENT_TIMEOUT, SQLITE_LOCKED, PoolTimeout(), CommitOutcomeUnknown("?")],
    ids=["lock timeout", "statement timeout", "sqlite locked", "pool timeout", "unknown commit"],
)
def test_timeouts_are_503s_but_never_retried(error):
    assert not is_transient(error)
    assert is_unavailable(error)


@pytest.mark.parametrize("error", [DUPLICATE, ValueError("bug"), KeyError("bug")])
def test_errors_of_the_request_or_the_code_are_neither(error):
    assert not is_transient(error)
    assert not is_unavailable(error)


def test_retry_after_is_whole_seconds_and_at_least_one():
    assert retry_after(BreakerOpen("open", retry_after=0.2, outage_seconds=0)) == 1
    assert retry_after(BreakerOpen("open", retry_after=2.1, outage_seconds=0)) == 3
    assert retry_after(SHUTTING_DOWN) == 2


class Flaky:
    """A unit of work that fails with the given errors, then succeeds."""

    def __init__(self, *errors: BaseException, commit_before_failing: bool = False) -> None:
        self.errors = list(errors)
        self.calls = 0
        self.commit_before_failing = commit_before_failing

    def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            if self.commit_before_failing:
                note_commit_sent()
            raise self.errors.pop(0)
        return "done"


@pytest.fixture
def policy(app):
    app.config.update(DB_RETRY_ATTEMPTS=4, DB_RETRY_SECONDS=2.0, DB_RETRY_WAIT_SECONDS=0.001)
    return app.config


def test_a_transient_failure_is_retried_until_it_passes(policy):
    work = Flaky(REFUSED, SHUTTING_DOWN, SERIALIZATION)
    assert retry_transient(work)() == "done"
    assert work.calls == 4


@pytest.mark.parametrize("error", [LOCK_TIMEOUT, DUPLICATE, ValueError("bug")])
def test_other_failures_are_raised_at_once(policy, error):
    work = Flaky(error)
    with pytest.raises(type(error)):
        retry_transient(work)()
    assert work.calls == 1


def test_attempts_are_bounded(policy):
    work = Flaky(*[REFUSED] * 10)
    with pytest.raises(OperationalError):
        retry_transient(work)()
    assert work.calls == 4


def test_the_time_budget_bounds_the_retries(policy):
    policy.update(DB_RETRY_ATTEMPTS=100, DB_RETRY_SECONDS=0.3, DB_RETRY_WAIT_SECONDS=0.05)
    work = Flaky(*[REFUSED] * 1000)
    with pytest.raises(OperationalError):
        retry_transient(work)()
    # Waits of up to 0.05, 0.1, 0.2, ... s: the budget, not the 100 tries, ended it.
    assert 2 <= work.calls < 20


def test_a_try_that_sent_commit_is_never_repeated(policy):
    work = Flaky(DISCONNECT, commit_before_failing=True)
    with pytest.raises(OperationalError):
        retry_transient(work)()
    assert work.calls == 1


def test_a_commit_the_server_says_aborted_is_repeated(policy):
    work = Flaky(NotCommitted("aborted"), commit_before_failing=True)
    assert retry_transient(work)() == "done"
    assert work.calls == 2


def test_decorated_functions_inside_another_leave_retrying_to_the_outer(policy):
    inner = Flaky(REFUSED)
    outer_calls = []

    @retry_transient
    def outer():
        outer_calls.append(1)
        return retry_transient(inner)()

    assert outer() == "done"
    assert inner.calls == 2 and len(outer_calls) == 2


def test_a_young_outage_is_waited_out_but_an_old_one_fails_at_once(policy):
    young = Flaky(BreakerOpen("open", retry_after=0.05, outage_seconds=0.1))
    started = time.monotonic()
    assert retry_transient(young)() == "done"
    assert time.monotonic() - started >= 0.05
    old = Flaky(BreakerOpen("open", retry_after=0.05, outage_seconds=30))
    with pytest.raises(BreakerOpen):
        retry_transient(old)()
    assert old.calls == 1


# --- The circuit breaker ----------------------------------------------------------------


def test_the_breaker_opens_after_failures_in_a_row_and_closes_after_a_probe():
    breaker = breakers.CircuitBreaker("test", failures=3, open_seconds=0.1)
    breaker.failed("refused")
    breaker.succeeded()  # a success resets the count
    breaker.failed("refused")
    breaker.failed("refused")
    assert breaker.state == breakers.CLOSED and breaker.allows()
    breaker.failed("refused")
    assert breaker.state == breakers.OPEN and not breaker.allows()
    assert 0 < breaker.seconds_until_probe() <= 0.1
    time.sleep(0.11)
    assert breaker.allows()  # the probe
    assert breaker.state == breakers.HALF_OPEN
    assert not breaker.allows()  # one probe at a time
    breaker.succeeded()
    assert breaker.state == breakers.CLOSED and breaker.outage_seconds() == 0


def test_a_failed_probe_opens_it_again_and_the_outage_keeps_its_start():
    breaker = breakers.CircuitBreaker("test", failures=1, open_seconds=0.05)
    breaker.failed("refused")
    time.sleep(0.06)
    assert breaker.allows()
    breaker.failed("refused")
    assert breaker.state == breakers.OPEN
    assert breaker.outage_seconds() >= 0.06


def test_a_probe_that_never_reports_lets_another_through():
    breaker = breakers.CircuitBreaker("test", failures=1, open_seconds=0.05)
    breaker.failed("refused")
    time.sleep(0.06)
    assert breaker.allows()
    assert not breaker.allows()
    time.sleep(0.06)
    assert breaker.allows()


def test_the_breaker_logs_its_outage_once_and_its_end_once(caplog):
    caplog.set_level(logging.WARNING, logger="studio")
    breaker = breakers.CircuitBreaker("database", failures=1, open_seconds=0.01)
    for _ in range(5):
        breaker.failed("refused")
        time.sleep(0.011)
        breaker.allows()
    breaker.succeeded()
    messages = [record.getMessage() for record in caplog.records]
    assert sum("unreachable" in message for message in messages) == 1
    assert sum("reachable again" in message for message in messages) == 1


# --- Quiet logs ----------------------------------------------------------------------------


def test_a_burst_logs_a_traceback_once_a_few_lines_and_a_summary(monkeypatch, caplog):
    monkeypatch.setattr(logs, "BURST_WINDOW_SECONDS", 0.2)
    log = logging.getLogger("studio.test-burst")
    caplog.set_level(logging.WARNING, logger="studio")
    burst = logs.BurstLog()
    try:
        raise OperationalError("SELECT 1", {}, ServerError("refused", None))
    except OperationalError as exc:
        for number in range(435):
            burst.note(log, "refused", "failure %d", number, exc_info=exc)
    time.sleep(0.35)
    records = [r for r in caplog.records if r.name == "studio.test-burst"]
    assert len(records) == logs.LINES_PER_BURST + 1
    assert records[0].exc_info and not any(r.exc_info for r in records[1:])
    assert records[-1].getMessage().startswith(f"... {435 - logs.LINES_PER_BURST} more like this")


def test_pool_errors_lose_their_traceback_after_the_first(monkeypatch):
    burst = logs.BurstLog()
    monkeypatch.setattr(logs, "burst_log", burst)
    flt = logs.BurstFilter()
    try:
        raise OperationalError("ROLLBACK", {}, ServerError("server closed the connection", None))
    except OperationalError:
        records = [
            logging.LogRecord(
                "sqlalchemy.pool.impl.QueuePool",
                logging.ERROR,
                __file__,
                1,
                "Exception during reset or similar",
                None,
                sys.exc_info(),
            )
            for _ in range(20)
        ]
    shown = [record for record in records if flt.filter(record)]
    assert len(shown) == logs.LINES_PER_BURST
    assert shown[0].exc_info and not any(record.exc_info for record in shown[1:])
    assert "server closed the connection" in shown[1].getMessage()


# Views that never touch the database, and so have nothing to retry.
NO_DATABASE = {"api.openapi", "observability.performance", "auth.index", "auth.logout", "static"}


def test_every_view_that_uses_the_database_retries(app):
    views = {
        endpoint: view
        for endpoint, view in app.view_functions.items()
        if endpoint.split(".")[0] in ("api", "admin", "auth") and endpoint not in NO_DATABASE
    }
    assert len(views) > 15
    bare = sorted(name for name, view in views.items() if not getattr(view, "retries_transient", 0))
    assert bare == []


def test_a_filtered_logger_summarises_its_burst_without_locking_itself(monkeypatch):
    """The summary goes through the logger's own BurstFilter, which must not wait for itself."""
    monkeypatch.setattr(logs, "BURST_WINDOW_SECONDS", 0.2)
    burst = logs.BurstLog()
    monkeypatch.setattr(logs, "burst_log", burst)
    log = logging.getLogger("studio.test-filtered-burst")
    log.addFilter(logs.BurstFilter())
    seen = []
    handler = logging.Handler()
    handler.emit = seen.append
    log.addHandler(handler)
    try:

        def log_a_burst_twice() -> None:
            for _ in range(2):
                for _ in range(8):
                    log.error("Exception during reset or similar")
                time.sleep(0.3)  # the window closes: its timer summarises

        worker = threading.Thread(target=log_a_burst_twice, daemon=True)
        worker.start()
        worker.join(5)
        assert not worker.is_alive(), "logging hung on the burst limiter's lock"
    finally:
        log.removeHandler(handler)
        log.filters.clear()
    summaries = [r.getMessage() for r in seen if r.getMessage().startswith("...")]
    assert len(summaries) == 2
    assert all(s.startswith(f"... {8 - logs.LINES_PER_BURST} more like this") for s in summaries)
