"""How a unit of work commits: so that a saved write is never answered as failed.

`commit()` flushes first, so every statement has run before COMMIT is sent; a failure
until then left nothing behind and may be retried. If the connection drops while COMMIT
is on its way, nobody knows whether it arrived: on PostgreSQL studio noted the
transaction's id beforehand and asks the server (txid_status) once it answers again.
Committed: carry on as if nothing happened. Aborted: NotCommitted, safe to retry. No
answer within DB_COMMIT_CONFIRM_SECONDS: CommitOutcomeUnknown, a 503 that says so.

The cache is told what changed before the commit (studio.services.cached_reads); if it cannot
be told, the transaction itself starts a new epoch of the whole cache, so the reset holds
even if this worker dies right after the commit.
"""

import logging
import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field

from flask import current_app
from sqlalchemy import event, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from ..extensions import AUTOCOMMIT, db
from ..logs import burst_log
from ..resilience.deadline import watchdog
from ..resilience.faults import (
    CommitOutcomeUnknown,
    DatabaseUnavailable,
    NotCommitted,
    is_disconnect,
)
from ..resilience.retry import note_commit_sent
from . import cached_reads
from .cache_epochs import add_epoch

logger = logging.getLogger(__name__)


@dataclass
class Enclosing:
    """A block whose commits become one transaction, committed when it ends."""

    retirements: list[cached_reads.Retirement] = field(default_factory=list)


_enclosing: ContextVar[Enclosing | None] = ContextVar("studio_enclosing", default=None)


@event.listens_for(Session, "before_commit")
def _commit_is_about_to_be_sent(session: Session) -> None:
    # Any commit, also one not made through commit() below, makes its try unsafe to repeat.
    note_commit_sent()


def commit(retire: cached_reads.Retirement | None = None) -> None:
    """Commit the session's work and retire from the cache what it changed.

    Inside `one_transaction()` this only flushes; the block commits at its end.
    """
    enclosing = _enclosing.get()
    if enclosing is not None:
        db.session.flush()
        if retire is not None:
            enclosing.retirements.append(retire)
        return
    _commit_now([retire] if retire is not None else [])


@contextmanager
def one_transaction() -> Iterator[None]:
    """Make every commit() inside the block part of one transaction, committed at its end."""
    if _enclosing.get() is not None:
        yield  # already inside one: the outermost block commits
        return
    enclosing = Enclosing()
    token = _enclosing.set(enclosing)
    try:
        yield
    except BaseException:
        db.session.rollback()
        raise
    finally:
        _enclosing.reset(token)
    _commit_now(enclosing.retirements)


def _commit_now(retirements: list[cached_reads.Retirement]) -> None:
    session = db.session
    if session.connection().info.get(AUTOCOMMIT):
        # Its statements would each have committed already, one by one.
        raise RuntimeError("a write inside a GET request, which studio runs without transactions")
    session.flush()
    new_epoch = told = None
    if retirements:
        told = cached_reads.retire_before_commit(retirements)
        if told is None:
            new_epoch = add_epoch(session, "a write the cache could not be told of")
    xid = _transaction_id(session)
    try:
        session.commit()
    except DBAPIError as exc:
        session.rollback()
        if xid is None or not is_disconnect(exc):
            raise  # the server answered, with an error: the transaction did not commit
        _confirm_commit(xid, exc)
    cached_reads.after_commit(retirements, told, new_epoch)


def _transaction_id(session: Session) -> int | None:
    """Return the PostgreSQL id of the session's transaction, to ask about it later.

    None when it wrote nothing (no id was assigned): then there is nothing to lose.
    """
    if session.get_bind().dialect.name != "postgresql":
        return None
    return session.execute(text("SELECT txid_current_if_assigned()")).scalar()


def _confirm_commit(xid: int, lost: DBAPIError) -> None:
    """Find out from the server whether transaction `xid` committed; raise unless it did."""
    config = current_app.config
    limit = config["DB_COMMIT_CONFIRM_SECONDS"]
    remaining = watchdog.remaining()
    if remaining is not None:
        limit = min(limit, remaining)
    deadline = time.monotonic() + limit
    wait = config["DB_RETRY_WAIT_SECONDS"]
    while True:
        status = _ask_status(xid)
        if status == "committed":
            logger.warning(
                "the connection dropped during COMMIT of transaction %s, which did commit", xid
            )
            return
        if status == "aborted":
            raise NotCommitted("The database went away before the change was saved.") from lost
        if time.monotonic() + wait > deadline:
            raise CommitOutcomeUnknown(
                "The database went away while saving; whether the change was saved is not "
                "known yet. Check before repeating it, or repeat it with the same "
                "Idempotency-Key."
            ) from lost
        time.sleep(random.uniform(0, wait))
        wait = min(wait * 2, 1.0)


def _ask_status(xid: int) -> str | None:
    """Return txid_status(xid): committed, aborted, in progress; None if it cannot be asked."""
    try:
        with db.engine.connect() as connection:
            status = connection.execute(text("SELECT txid_status(:xid)"), {"xid": xid}).scalar()
            connection.rollback()
    except (DBAPIError, DatabaseUnavailable) as exc:
        burst_log.note(logger, "commit-status", "cannot ask about a commit yet: %s", exc)
        return None
    # A transaction the server no longer knows of in progress, after a restart, was aborted.
    return status
