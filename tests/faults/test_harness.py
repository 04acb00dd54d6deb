"""The harness itself: its servers start, break and recover as the fault tests rely on."""

import psycopg2
import pytest
from psycopg2 import errors
from redis import Redis

from .load import LOAD_REASON_PREFIX, SEED_STOCK, Load, call, mixed_pick, seed_paints

START_TIME = "SELECT pg_postmaster_start_time()"


def test_own_postgres_restarts_and_thaws(own_postgres):
    before = own_postgres.execute(START_TIME)
    own_postgres.restart()
    assert own_postgres.execute(START_TIME) > before
    own_postgres.freeze()
    with pytest.raises(psycopg2.OperationalError, match="timeout expired"):
        own_postgres.execute("SELECT 1", connect_timeout=1)
    own_postgres.thaw()
    assert own_postgres.execute("SELECT 1") == [(1,)]


def test_own_postgres_holds_a_table_lock(own_postgres):
    own_postgres.execute("CREATE TABLE shelf (id int)")
    lock = own_postgres.hold_lock("shelf", 1, database="postgres")
    lock.wait_held()
    with pytest.raises(errors.LockNotAvailable):
        own_postgres.execute("SET lock_timeout = '100ms'; SELECT * FROM shelf")
    lock.join()
    assert own_postgres.execute("SET lock_timeout = '100ms'; SELECT count(*) FROM shelf") == [(0,)]


def test_own_redis_pauses_and_resumes(own_redis):
    assert own_redis.ping()
    own_redis.pause()
    assert not own_redis.ping(timeout=0.2)
    own_redis.resume()
    assert own_redis.ping()


def test_studio_under_load_records_every_write_it_confirms(
    fault_database, own_postgres, own_redis, studio_server
):
    url, token = fault_database
    server = studio_server(url, own_redis.url)
    ready = call(server.base, "GET", "/health/ready")
    assert (ready.status, ready.body["database"], ready.body["cache"]) == (200, "ok", "ok")
    assert len(server.worker_pids()) == 2
    ids = seed_paints(server.base, token, 5)

    load = Load(server.base, token, clients=4)
    answers = load.run(2, mixed_pick(ids))

    assert all(200 <= answer.status < 300 for answer in answers), load.summary()
    writes = [answer for answer in answers if answer.kind == "write"]
    confirmed = {answer.request_body["reason"] for answer in writes if answer.status == 201}
    assert confirmed, load.summary()
    stored = own_postgres.execute(
        "SELECT reason FROM stock_movements WHERE reason LIKE %s",
        (f"{LOAD_REASON_PREFIX}%",),
        database="studio",
    )
    assert sorted(reason for (reason,) in stored) == sorted(confirmed)
    assert own_postgres.execute("SELECT sum(stock) FROM paints", database="studio") == [
        (5 * SEED_STOCK + len(confirmed),)
    ]
    # studio cached in this test's Redis, not in any other.
    with Redis.from_url(own_redis.url) as redis:
        assert redis.dbsize() > 0
