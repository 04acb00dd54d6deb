"""Behind PgBouncer in transaction mode the time limits hold and leave nothing behind."""

import time

import psycopg2

from .load import call
from .test_database_faults import (
    NO_CACHE,
    answered_while_locked,
    assert_writes_match_answers,
    lock_paints,
    start_load,
)


def test_time_limits_hold_behind_pgbouncer_and_leak_into_no_session(
    fault_database, own_postgres, own_pgbouncer, studio_server
):
    url, token = fault_database
    through_bouncer = own_pgbouncer.url("studio")
    server = studio_server(through_bouncer, env={"DB_TIMEOUTS_PER": "transaction", **NO_CACHE})
    load = start_load(server, token, clients=4, write_share=0.2)
    locked_at, released_at = lock_paints(own_postgres, 8)
    time.sleep(2)
    answers = load.stop()

    summary = load.summary()
    assert all(a.status in (200, 201, 503) for a in answers), summary
    locked = answered_while_locked(answers, locked_at, released_at)
    assert len(locked) >= 2 and {a.status for a in locked} == {503}, summary
    assert all(a.body["error"]["code"] == "unavailable" for a in locked)
    assert call(server.base, "GET", "/api/v1/paints", token).status == 200
    assert_writes_match_answers(answers, own_postgres, summary)
    # SET LOCAL ended with each transaction: the bouncer's server connections kept nothing.
    with psycopg2.connect(through_bouncer) as connection, connection.cursor() as cursor:
        cursor.execute("SHOW statement_timeout")
        assert cursor.fetchone() == ("0",)


def test_connection_options_refused_by_pgbouncer_are_explained(
    fault_database, own_pgbouncer, studio_server
):
    server = studio_server(own_pgbouncer.url("studio"))  # DB_TIMEOUTS_PER left at connection
    ready = call(server.base, "GET", "/health/ready")
    assert ready.status == 503
    assert "set DB_TIMEOUTS_PER=transaction" in server.log_text()
