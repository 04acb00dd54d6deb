"""The benchmark's own PostgreSQL database and Redis keys: made afresh, seeded, or reused."""

import json
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass

import redis
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool

from .paint_app import paint_json
from .processes import REPO, VENV_BIN

ADMIN = "bench"
PASSWORD = "bench-password-not-secret"
CLI_TIMEOUT_SECONDS = 600


@dataclass(frozen=True)
class Seeded:
    """What the benchmark's database holds and how it came to."""

    token: str
    first_id: int
    last_id: int
    reused: bool
    seed_seconds: float | None


def flask(env: Mapping[str, str], *args: str, stdin: str | None = None) -> str:
    """Run `flask --app wsgi ARGS` as an operator would; return its standard output."""
    done = subprocess.run(
        [str(VENV_BIN / "flask"), "--app", "wsgi", *args],
        env=env,
        cwd=REPO,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_SECONDS,
    )
    if done.returncode != 0:
        raise RuntimeError(f"flask {' '.join(args)} failed:\n{done.stderr[-2000:]}")
    return done.stdout


def engine(url: str, database: str | None = None) -> Engine:
    target = make_url(url).set(drivername="postgresql+psycopg2")
    if database:
        target = target.set(database=database)
    return create_engine(
        target,
        poolclass=NullPool,
        isolation_level="AUTOCOMMIT",
        connect_args={"sslmode": "disable"},
    )


def server_version(url: str) -> str:
    with engine(url, "postgres").connect() as connection:
        return connection.scalar(text("SHOW server_version"))


def recreate(url: str, template: str | None = None) -> None:
    """Drop the benchmark's database (never another one) and create it empty, or as a copy."""
    name = make_url(url).database
    if not name or "bench" not in name:
        raise SystemExit(f"Refusing to drop database {name!r}: its name must contain 'bench'.")
    copy = f' TEMPLATE "{template}"' if template else ""
    with engine(url, "postgres").connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        connection.execute(text(f'CREATE DATABASE "{name}"{copy}'))


def reusable(url: str, paints: int) -> bool:
    """Tell whether the database already holds exactly `paints` paints, ids 1..N, and the admin."""
    try:
        with engine(url).connect() as connection:
            count, first, last = connection.execute(
                text("SELECT count(*), min(id), max(id) FROM paints")
            ).one()
            admin = connection.scalar(
                text("SELECT id FROM users WHERE username = :u"), {"u": ADMIN}
            )
    except DBAPIError:
        # No such database, or not migrated: seed it afresh.
        return False
    return count == paints and first == 1 and last == paints and admin is not None


def seed(url: str, env: Mapping[str, str], paints: int) -> float:
    """Migrate an empty database, add the admin and `paints` demo paints; return seconds taken."""
    recreate(url)
    flask(env, "db", "upgrade")
    flask(env, "create-admin", ADMIN, "--password-stdin", stdin=PASSWORD)
    started = time.monotonic()
    flask(env, "seed-demo", "--paints", str(paints))
    seconds = time.monotonic() - started
    vacuum(url)
    return seconds


def vacuum(url: str) -> None:
    """Vacuum and analyse the database, as autovacuum would have by now on a server with it.

    A reused database holds the row versions of the last run's writes (the mixes adjust
    thousands of paints), and a server without autovacuum keeps them: each run would
    start with more dead rows and fewer pages the index-only scans can skip than the last.
    """
    with engine(url).connect() as connection:
        connection.execute(text("VACUUM ANALYZE"))


def prepare(url: str, env: Mapping[str, str], paints: int, reuse: bool) -> Seeded:
    """Seed (or reuse) the database and return a new API token for the benchmark's admin."""
    reused = reuse and reusable(url, paints)
    seed_seconds = None if reused else seed(url, env, paints)
    if reused:
        flask(env, "db", "upgrade")
        vacuum(url)
    token = flask(env, "create-token", ADMIN, "--name", "benchmark").strip().splitlines()[-1]
    return Seeded(token, 1, paints, reused, seed_seconds)


def forget_cache(redis_url: str, prefix: str) -> int:
    """Delete the benchmark's keys (cache entries and counters) from Redis; return how many."""
    client = redis.Redis.from_url(redis_url)
    deleted = 0
    batch = []
    for key in client.scan_iter(match=f"{prefix}*", count=1000):
        batch.append(key)
        if len(batch) == 1000:
            deleted += client.delete(*batch)
            batch = []
    if batch:
        deleted += client.delete(*batch)
    return deleted


def redis_version(redis_url: str) -> str:
    return redis.Redis.from_url(redis_url).info("server")["redis_version"]


def store_floor_bodies(url: str, redis_url: str, prefix: str, ids: list[int]) -> int:
    """Store the JSON of the given paints in Redis for bench/redis_floor.py; return how many."""
    with engine(url).connect() as connection:
        rows = connection.execute(text("SELECT * FROM paints WHERE id = ANY(:ids)"), {"ids": ids})
        bodies = {
            f"{prefix}paint:{row.id}": json.dumps(paint_json(row), separators=(",", ":"))
            for row in rows
        }
    redis.Redis.from_url(redis_url).mset(bodies)
    return len(bodies)
