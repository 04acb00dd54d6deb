"""Two studio instances on one PostgreSQL and Redis: no stale read outlives a blip or a race."""

import threading
import time

from redis import Redis

from .load import call, seed_paints


def stock_seen(base: str, token: str, paint_id: int) -> int | None:
    answer = call(base, "GET", f"/api/v1/paints/{paint_id}", token)
    return answer.body["stock"] if answer.status == 200 else None


def assert_fresh_within(
    seconds: float, base: str, token: str, paint_id: int, stock: int, since: float
) -> None:
    """Read for twice `seconds` (at least 2 s; each read on either worker); after `seconds`,
    only `stock`.

    Each worker reads the cache epoch every CACHE_EPOCH_POLL_SECONDS (0.5 s).
    """
    seen = []
    while time.monotonic() - since < max(2 * seconds, 2):
        seen.append((time.monotonic() - since, stock_seen(base, token, paint_id)))
        time.sleep(0.02)
    stale = [at for at, found in seen if found != stock]
    assert not stale or max(stale) < seconds, f"old stock served {max(stale):.1f} s later"
    assert all(found == stock for at, found in seen if at >= seconds)


def test_a_write_redis_missed_is_not_served_by_another_instance_once_redis_is_back(
    fault_database, own_redis, studio_server
):
    url, token = fault_database
    writer = studio_server(url, own_redis.url)
    reader = studio_server(url, own_redis.url)
    paint_id = seed_paints(writer.base, token, 1)[0]
    before = stock_seen(reader.base, token, paint_id)  # now cached in Redis
    assert stock_seen(reader.base, token, paint_id) == before

    own_redis.pause()
    try:
        written = call(
            writer.base,
            "POST",
            f"/api/v1/paints/{paint_id}/stock",
            token,
            {"delta": 5, "reason": "delivery while Redis was paused"},
        )
    finally:
        own_redis.resume()
    resumed = time.monotonic()
    assert written.status == 201, written.body
    assert written.body["paint"]["stock"] == before + 5
    for pid in writer.worker_pids():  # whichever worker wrote is gone, with its memory
        writer.kill_worker(pid)

    # The write was answered once no worker could still believe the old epoch.
    assert_fresh_within(0, reader.base, token, paint_id, before + 5, since=resumed)


def test_writes_on_one_instance_and_reads_on_another_race_without_500_or_stale_end(
    fault_database, own_postgres, own_redis, studio_server
):
    url, token = fault_database
    writer = studio_server(url, own_redis.url)
    reader = studio_server(url, own_redis.url)
    paint_id = seed_paints(writer.base, token, 1)[0]
    stop = threading.Event()
    statuses: list[int] = []
    lock = threading.Lock()

    def read_forever() -> None:
        while not stop.is_set():
            answer = call(reader.base, "GET", f"/api/v1/paints/{paint_id}", token)
            with lock:
                statuses.append(answer.status)

    readers = [threading.Thread(target=read_forever) for _ in range(3)]
    for thread in readers:
        thread.start()
    writes = []
    finish = time.monotonic() + 10
    while time.monotonic() < finish:
        body = {"delta": 1, "reason": "race"}
        writes.append(call(writer.base, "POST", f"/api/v1/paints/{paint_id}/stock", token, body))
    stop.set()
    for thread in readers:
        thread.join()

    assert {w.status for w in writes} == {201}, {w.status for w in writes}
    assert len(writes) > 100 and len(statuses) > 300
    assert set(statuses) == {200}, sorted(set(statuses))
    [(in_database,)] = own_postgres.execute(
        "SELECT stock FROM paints WHERE id = %s", (paint_id,), database="studio"
    )
    assert in_database == writes[-1].body["paint"]["stock"]
    assert {stock_seen(reader.base, token, paint_id) for _ in range(30)} == {in_database}
    time.sleep(3.5)  # past the tombstones: what the readers cached since must be fresh too
    assert {stock_seen(reader.base, token, paint_id) for _ in range(30)} == {in_database}


def test_a_redis_that_comes_back_with_an_old_snapshot_is_not_believed(
    fault_database, own_redis, studio_server
):
    """Managed Redis keeps snapshots: a restart may bring back what a write had retired."""
    url, token = fault_database
    writer = studio_server(url, own_redis.url)
    reader = studio_server(url, own_redis.url)
    paint_id = seed_paints(writer.base, token, 1)[0]
    before = stock_seen(reader.base, token, paint_id)
    assert stock_seen(reader.base, token, paint_id) == before  # cached
    with Redis.from_url(own_redis.url) as redis:
        redis.save()  # the snapshot holds the cached paint
    body = {"delta": 5, "reason": "after the snapshot"}
    written = call(writer.base, "POST", f"/api/v1/paints/{paint_id}/stock", token, body)
    assert written.status == 201
    own_redis.stop()
    own_redis.start()  # loads the snapshot: the old paint is back in the cache
    restarted = time.monotonic()
    assert_fresh_within(2, reader.base, token, paint_id, before + 5, since=restarted)


def test_each_write_is_seen_by_the_next_read_on_another_instance(
    fault_database, own_redis, studio_server
):
    """The reader's workers keep the paints in their near caches: each write must retire one.

    One write per paint: after a write its tombstone keeps it out of every cache a while.
    """
    url, token = fault_database
    writer = studio_server(url, own_redis.url)
    reader = studio_server(url, own_redis.url)
    paint_ids = seed_paints(writer.base, token, 30)
    for _ in range(12):  # cached in Redis, then in both reader workers' near caches
        for paint_id in paint_ids:
            stock_seen(reader.base, token, paint_id)
    for paint_id in paint_ids:
        body = {"delta": 1, "reason": "read right after"}
        written = call(writer.base, "POST", f"/api/v1/paints/{paint_id}/stock", token, body)
        assert written.status == 201, written.body
        for _ in range(2):  # on either worker
            assert stock_seen(reader.base, token, paint_id) == written.body["paint"]["stock"]
