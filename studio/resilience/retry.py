"""Retry with exponential backoff and jitter, around views and the services they call.

A function that wears `@retry_transient` is one unit of database work. When it fails
for a passing reason (studio.resilience.faults) it is run again after a short random
wait, a few times within DB_RETRY_SECONDS, unless its transaction may have committed:
a write is repeated only when the failure came before COMMIT was sent. Decorated
functions called from inside another one do not retry on their own; the outermost does.

The first try runs without tenacity, so the common case costs a try block; tenacity
schedules the retries (its object costs ~13 us to set up, a few % of a cached read).
"""

import functools
import logging
import random
import time
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, TypeVar

from flask import current_app
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    stop_before_delay,
    wait_random_exponential,
)

from .. import signals
from ..extensions import db
from ..logs import burst_log
from .deadline import watchdog
from .faults import BreakerOpen, NotCommitted, cause, is_transient

logger = logging.getLogger(__name__)
F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class Attempt:
    """What one try of a unit of work did: whether it sent COMMIT."""

    commit_sent: bool = False


current_attempt: ContextVar[Attempt | None] = ContextVar("studio_attempt", default=None)


def note_commit_sent() -> None:
    """Record that the current try sent COMMIT: from now on it must not be repeated."""
    attempt = current_attempt.get()
    if attempt is not None:
        attempt.commit_sent = True


def retry_transient(function: F) -> F:
    """Run `function` again after a transient database failure, as long as that is safe."""

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if current_attempt.get() is not None:
            return function(*args, **kwargs)
        return _with_retries(function, args, kwargs, current_app.config)

    wrapper.retries_transient = True  # type: ignore[attr-defined]
    return wrapper  # type: ignore[return-value]


def _with_retries(function: Callable, args: tuple, kwargs: dict, config: Any) -> Any:
    started = time.monotonic()
    tries: list[Attempt] = []

    def run_once() -> Any:
        attempt = Attempt()
        tries.append(attempt)
        token = current_attempt.set(attempt)
        try:
            return function(*args, **kwargs)
        finally:
            current_attempt.reset(token)

    patience = config["DB_RETRY_SECONDS"]
    try:
        return run_once()
    except Exception as exc:
        if not _may_retry(exc, tries[-1], patience):
            raise
        first_failure = exc
    budget = patience - (time.monotonic() - started)
    remaining = watchdog.remaining()
    if remaining is not None:
        budget = min(budget, remaining)

    def replay_then_run() -> Any:
        # tenacity's first try replays the failure already seen, so its schedule counts it.
        nonlocal first_failure
        if first_failure is not None:
            failure, first_failure = first_failure, None
            raise failure
        return run_once()

    retrying = Retrying(
        stop=stop_after_attempt(config["DB_RETRY_ATTEMPTS"]) | stop_before_delay(budget),
        wait=_backoff(config["DB_RETRY_WAIT_SECONDS"]),
        retry=retry_if_exception(lambda exc: _may_retry(exc, tries[-1], patience)),
        before_sleep=_before_sleep(function),
        reraise=True,
    )
    return retrying(replay_then_run)


def _may_retry(exc: BaseException, attempt: Attempt, patience: float) -> bool:
    # A failure after COMMIT was sent may hide a committed write: never repeat it
    # (studio.services.transactions asks the server and raises NotCommitted when it is safe).
    if attempt.commit_sent and not isinstance(exc, NotCommitted):
        return False
    if isinstance(exc, BreakerOpen):
        # Waiting for the breaker's probe rides out a restart; in a longer outage every
        # request would wait only to fail, so it fails at once.
        return exc.outage_seconds < patience
    return is_transient(exc)


def _backoff(first_wait: float) -> Callable[[RetryCallState], float]:
    """Full jitter, doubling from `first_wait`; an open breaker is waited out until its probe."""
    exponential = wait_random_exponential(multiplier=first_wait, max=1.0)

    def wait(state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, BreakerOpen):
            return exc.retry_after + random.uniform(0, first_wait)
        return exponential(state)

    return wait


def _before_sleep(function: Callable) -> Callable[[RetryCallState], None]:
    name = getattr(function, "__qualname__", repr(function))

    def before_sleep(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        # The failed try's transaction is gone; start the next one clean.
        try:
            db.session.rollback()
        except Exception:  # the connection is already invalidated
            logger.debug("rollback before a retry failed", exc_info=True)
        described = cause(exc) if exc else "unknown"
        signals.database_retry.send(name, error=type(exc).__name__, cause=described)
        burst_log.note(
            logger,
            f"retry:{described}",
            "retrying %s (try %d) after %s",
            name,
            state.attempt_number + 1,
            described,
        )

    return before_sleep
