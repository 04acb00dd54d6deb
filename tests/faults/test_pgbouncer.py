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
    server = studio_server(through_bouncer, env={"DB_POOL": "pgbouncer", **NO_CACHE})
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
    # The budget counted PgBouncer's pool, not studio's client connections.
    assert "client connections to PgBouncer per worker" in server.log_text()


def test_pgbouncer_is_detected_when_the_pool_is_sized(fault_database, own_pgbouncer, studio_server):
    """Production sizes its pool at start; the probe's refused options reveal PgBouncer."""
    _, token = fault_database
    server = studio_server(own_pgbouncer.url("studio"), env=NO_CACHE)  # no DB_POOL given
    assert call(server.base, "GET", "/health/ready").status == 200
    created = call(server.base, "POST", "/api/v1/paints", token, {"name": "Seen", "brand": "B"})
    assert created.status == 201
    assert "running in PgBouncer mode" in server.log_text()


def test_connection_options_refused_by_pgbouncer_are_explained(
    fault_database, own_pgbouncer, studio_server
):
    # A fixed pool asks the server nothing at start, so nothing detects PgBouncer.
    server = studio_server(own_pgbouncer.url("studio"), env={"DB_POOL_SIZE": "3"})
    ready = call(server.base, "GET", "/health/ready")
    assert ready.status == 503
    assert "set DB_POOL=pgbouncer" in server.log_text()
