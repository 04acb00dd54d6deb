"""Two instances of studio on one PostgreSQL (directly, or through PgBouncer) and one Redis.

Each instance is gunicorn with two workers, as the Procfile runs it, with production
settings. Clients send a 90/10 read/write mix to either instance for 30 s; every write
answered is read back at once from the OTHER instance, which must not show the paint as
it was before the write, neither on its own nor in the listing of its brand (cached under
that brand's generation). Meanwhile a sampler counts the app's connections on the server
every 100 ms: never more than instances x workers x (pool_size + max_overflow).

Every 3 s Redis holds its writes for 0.4 s (reads go on), longer than studio waits for
it (CACHE_REDIS_TIMEOUT, 0.25 s): a writer then cannot retire what it changed, starts a
new cache epoch instead, and is answered only once no worker can still believe the old
one (CACHE_EPOCH_LEASE_SECONDS). No stale read is excused.
"""

import http.client
import logging
import random
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import urlencode

import psycopg2
import pytest
from redis import Redis

from .conftest import require_fault_programs
from .load import Answer, connect, failed, mixed_pick, seed_paints, send
from .servers import OwnPgBouncer, OwnPostgres, OwnRedis, prepare_database

logger = logging.getLogger(__name__)
INSTANCES = 2
WORKERS = 2
POOL_SIZE, MAX_OVERFLOW = 2, 2
BUDGET = INSTANCES * WORKERS * (POOL_SIZE + MAX_OVERFLOW)
CLIENTS = 8
SECONDS = 30
PAINTS = 20
SETTINGS = {"DB_POOL_SIZE": str(POOL_SIZE), "DB_MAX_OVERFLOW": str(MAX_OVERFLOW)}
# PgBouncer in transaction mode hands a server connection to another client between
# transactions: the time limits are set per transaction (see README, DB_TIMEOUTS_PER).
BEHIND_PGBOUNCER = {"DB_TIMEOUTS_PER": "transaction"}
# A write whose retirement Redis missed (answered after the epoch's lease).
MISSED_RETIREMENT = re.compile(
    r"studio\.services\.cached_reads \[[^]]*\]: the cache missed the retirement"
)
# The app's connections to its database; the sampler's own sits in another database.
COUNT_CONNECTIONS = (
    "SELECT count(*) FROM pg_stat_activity WHERE datname = 'studio' "
    "AND backend_type = 'client backend'"
)


@dataclass
class Servers:
    """One PostgreSQL (with a PgBouncer in front) and one Redis, shared by both variants."""

    postgres: OwnPostgres
    pgbouncer: OwnPgBouncer
    redis: OwnRedis
    database_url: str
    token: str


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    """Start the servers once for both variants (a cluster and a migration cost ~15 s each)."""
    require_fault_programs()
    directory = tmp_path_factory.mktemp("scale-out")
    postgres = OwnPostgres(directory)
    pgbouncer = OwnPgBouncer(directory, postgres)
    redis = OwnRedis(directory)
    try:
        postgres.start()
        pgbouncer.start()
        redis.start()
        url = postgres.create_database("studio")
        token = prepare_database(url, directory / "prepare.log")
        yield Servers(postgres, pgbouncer, redis, url, token)
    finally:
        pgbouncer.close()
        redis.close()
        postgres.close()


@dataclass
class ReadBack:
    """A write's answer, and the paint as the other instance showed it right afterwards."""

    write: Answer
    read: Answer
    listing: Answer

    @property
    def stale(self) -> bool:
        written = self.write.body["paint"]["version"]
        if self.read.status != 200 or self.listing.status != 200:
            return True
        listed = [item for item in self.listing.body["items"] if item["id"] == self.read.body["id"]]
        return self.read.body["version"] < written or not listed or listed[0]["version"] < written


def missed_retirements(logs: list[str]) -> int:
    """Return how many lines of the servers' logs tell of a retirement Redis missed."""
    return sum(len(MISSED_RETIREMENT.findall(log)) for log in logs)


@dataclass
class Mix:
    """Clients sending a 90/10 mix to both instances, each write read back from the other."""

    bases: list[str]
    token: str
    paint_ids: list[int]
    answers: list[Answer] = field(default_factory=list)
    read_backs: list[ReadBack] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def client(self, index: int, deadline: float) -> None:
        rng = random.Random(index)
        pick = mixed_pick(self.paint_ids, write_share=0.1)
        connections = [connect(base, timeout=35) for base in self.bases]
        while time.monotonic() < deadline:
            request = pick(rng, index)
            here = rng.randrange(len(self.bases))
            answer = self.send(connections, here, request)
            if request[0] != "write" or answer.status != 201:
                continue
            other = (here + 1) % len(self.bases)
            paint = answer.body["paint"]
            read = self.send(
                connections, other, ("read", "GET", f"/api/v1/paints/{paint['id']}", None, None)
            )
            # Its brand's listing (searched for its code, as earlier runs left more paints).
            query = urlencode({"brand": paint["brand"], "q": paint["color_code"]})
            listing = self.send(
                connections, other, ("list", "GET", f"/api/v1/paints?{query}", None, None)
            )
            with self.lock:
                self.read_backs.append(ReadBack(answer, read, listing))
        for connection in connections:
            connection.close()

    def send(self, connections, index: int, request) -> Answer:
        started = time.monotonic()
        try:
            answer = send(connections[index], request, self.token)
        except (OSError, http.client.HTTPException) as exc:
            answer = failed(request, started, exc)
            connections[index].close()
        with self.lock:
            self.answers.append(answer)
        return answer

    def run(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        threads = [
            threading.Thread(target=self.client, args=(index, deadline), name=f"mix client {index}")
            for index in range(CLIENTS)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()


class ConnectionSampler:
    """Count the app's connections on the server every 100 ms, from a thread of its own."""

    def __init__(self, dsn: str) -> None:
        self.connection = psycopg2.connect(dsn, connect_timeout=5)
        self.connection.autocommit = True
        self.counts: list[int] = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._sample, name="connection sampler")
        self.thread.start()

    def _sample(self) -> None:
        with self.connection.cursor() as cursor:
            while not self.stopping.wait(0.1):
                cursor.execute(COUNT_CONNECTIONS)
                self.counts.append(cursor.fetchone()[0])

    def stop(self) -> list[int]:
        self.stopping.set()
        self.thread.join()
        self.connection.close()
        return self.counts


class RedisHiccups:
    """Hold Redis's writes (CLIENT PAUSE WRITE) for longer than studio waits, now and then.

    Reads go on meanwhile: a writer then cannot retire what it changed while the other
    workers keep reading the copies, the case the cache's epochs are for.
    """

    def __init__(self, url: str, every: float = 3.0, pause_ms: int = 400) -> None:
        self.url, self.every, self.pause_ms = url, every, pause_ms
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._pause, name="redis hiccups")
        self.thread.start()

    def _pause(self) -> None:
        with Redis.from_url(self.url) as redis:
            while not self.stopping.wait(self.every):
                redis.execute_command("CLIENT", "PAUSE", self.pause_ms, "WRITE")

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join()


# Direct first: PgBouncer keeps its server connections to the database open afterwards.
@pytest.mark.parametrize("route", ["direct", "pgbouncer"])
def test_two_instances_serve_fresh_reads_within_the_connection_budget(
    route, servers, studio_server
):
    url, token = servers.database_url, servers.token
    env = dict(SETTINGS)
    if route == "pgbouncer":
        url = servers.pgbouncer.url("studio")
        env.update(BEHIND_PGBOUNCER)
    instances = [
        studio_server(url, servers.redis.url, workers=WORKERS, env=env) for _ in range(INSTANCES)
    ]
    ids = seed_paints(instances[0].base, token, PAINTS)
    sampler = ConnectionSampler(servers.postgres.url())
    mix = Mix([instance.base for instance in instances], token, ids)
    hiccups = RedisHiccups(servers.redis.url)
    mix.run(SECONDS)
    hiccups.stop()
    counts = sampler.stop()

    missed = missed_retirements([instance.log_text() for instance in instances])
    stale = [read_back for read_back in mix.read_backs if read_back.stale]
    logger.info(
        "%s: %d answers, %d writes read back, %d stale, %d missed retirements; "
        "connections %d to %d (budget %d)",
        route,
        len(mix.answers),
        len(mix.read_backs),
        len(stale),
        missed,
        min(counts),
        max(counts),
        BUDGET,
    )
    statuses = sorted({answer.status for answer in mix.answers})
    errors = [a for a in mix.answers if a.status not in (200, 201)]
    assert not errors, [(a.kind, a.status, a.error, a.body) for a in errors[:5]]
    writes = [a for a in mix.answers if a.kind == "write"]
    assert len(mix.answers) > 500 and len(writes) > 30, (len(mix.answers), statuses)
    assert len(mix.read_backs) == len(writes)
    shown = [(r.write.body["paint"], r.read.body, r.listing.body) for r in stale[:3]]
    assert not stale, f"{len(stale)} stale reads of {len(mix.read_backs)}: {shown}"
    assert missed, "no write met a Redis that missed its retirement: the hiccups did nothing"
    assert len(counts) > SECONDS * 5, "the sampler fell behind"
    assert max(counts) <= BUDGET, f"up to {max(counts)} connections; budget {BUDGET}"
