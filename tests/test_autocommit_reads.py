"""A GET's statements run without a transaction on PostgreSQL; anything else keeps one."""

import time

import pytest
from sqlalchemy import text

from studio.extensions import db
from studio.services import accounts

from .conftest import ON_POSTGRESQL


def statement_times(app, method: str) -> list:
    """Return now() read twice in one request: it only moves between transactions."""
    with app.test_request_context(method=method):
        first = db.session.execute(text("SELECT now()")).scalar()
        time.sleep(0.01)
        second = db.session.execute(text("SELECT now()")).scalar()
        db.session.remove()
    return [first, second]


@ON_POSTGRESQL
@pytest.mark.parametrize(
    ("method", "in_transaction"), [("GET", False), ("HEAD", False), ("POST", True), ("PATCH", True)]
)
def test_only_reads_run_without_a_transaction(migrated_app, extra_apps, method, in_transaction):
    first, second = statement_times(extra_apps(), method)
    assert (first == second) is in_transaction


@ON_POSTGRESQL
def test_a_connection_goes_back_to_transactions_after_a_get(migrated_app, extra_apps):
    app = extra_apps(DB_POOL_SIZE=1, DB_MAX_OVERFLOW=0)
    statement_times(app, "GET")
    with app.app_context():  # no request: a CLI command or a background thread
        first = db.session.execute(text("SELECT now()")).scalar()
        time.sleep(0.01)
        assert db.session.execute(text("SELECT now()")).scalar() == first
        db.session.remove()


@ON_POSTGRESQL
def test_a_write_reached_by_a_get_is_refused(migrated_app, extra_apps):
    app = extra_apps()
    with app.test_request_context(method="GET"), pytest.raises(RuntimeError, match="GET"):
        accounts.create_user("written-by-a-get", "correct horse battery staple")
    with app.app_context():
        assert accounts.find_user("written-by-a-get") is None
        db.session.remove()


@ON_POSTGRESQL
@pytest.mark.parametrize(
    "settings", [{"DB_AUTOCOMMIT_READS": False}, {"DB_TIMEOUTS_PER": "transaction"}]
)
def test_reads_keep_their_transaction_when_asked_or_timed_per_transaction(
    migrated_app, extra_apps, settings
):
    # SET LOCAL, which per-transaction timeouts use, does nothing outside a transaction.
    first, second = statement_times(extra_apps(**settings), "GET")
    assert first == second
