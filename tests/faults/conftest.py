"""Fault-test fixtures: servers of the test's own, each stopped when the test ends.

The fault tests run where the PostgreSQL tests run (STUDIO_TEST_DATABASE_URL is set),
but never touch that server: they start PostgreSQL, Redis and gunicorn themselves.
"""

import fcntl
import os
import shutil
from collections.abc import Callable, Iterator, Mapping, Sequence
from functools import cache as once
from pathlib import Path

import pytest

from ..conftest import PG_SKIP_REASON, PG_VARIABLE
from .servers import (
    OwnPgBouncer,
    OwnPostgres,
    OwnRedis,
    StudioServer,
    postgres_bindir,
    prepare_database,
    tail,
)


@once
def missing_programs() -> str | None:
    """Return what is missing to start the servers, or None."""
    if postgres_bindir() is None:
        return (
            "PostgreSQL's server programs (initdb, pg_ctl) are not installed "
            "(Debian's postgresql package)"
        )
    if shutil.which("redis-server") is None:
        return "redis-server is not installed (Debian's redis-server package)"
    if shutil.which("pgbouncer") is None:
        return "pgbouncer is not installed (Debian's pgbouncer package)"
    return None


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> pytest.TestReport:
    """Show the end of every server's log under a failed fault test."""
    report = yield
    tmp_path = getattr(item, "funcargs", {}).get("tmp_path")
    if report.failed and tmp_path is not None:
        for log in sorted(tmp_path.glob("*.log")):
            report.sections.append((f"end of {log.name}", tail(log, 3000)))
    return report


@pytest.fixture(autouse=True)
def fault_tests_can_run() -> None:
    """Skip the fault tests where they cannot run; on CI, fail them instead."""
    require_fault_programs()


@pytest.fixture(scope="module", autouse=True)
def one_fault_module_at_a_time(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Hold the fault-test lock for a whole module: the suite's test processes take turns.

    Each fault test loads servers of its own to the limit and times their answers; two at
    once on two cores would measure each other. A module's shared servers start before
    its first test, so the lock is taken for the module (pytest-xdist's `loadfile` keeps a
    file in one process). The file lies in the folder the run's test processes share (with
    one process, the folder every run of this user shares: runs take turns too).
    """
    lock_path = tmp_path_factory.getbasetemp().parent / "fault-tests.lock"
    with open(lock_path, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def require_fault_programs() -> None:
    """Skip the calling test where the fault tests cannot run; on CI, fail it instead."""
    if not os.environ.get(PG_VARIABLE):
        pytest.skip(f"the fault tests run with the PostgreSQL tests: {PG_SKIP_REASON}")
    missing = missing_programs()
    if missing:
        # As for Chromium: a CI run must not pass by skipping what it cannot run.
        if os.environ.get("CI"):
            pytest.fail(missing, pytrace=False)
        pytest.skip(missing)


def running(server):
    """Start the server, hand it to the test, and close it whatever happened."""
    try:
        server.start()
        yield server
    finally:
        server.close()


@pytest.fixture
def own_postgres(tmp_path: Path) -> Iterator[OwnPostgres]:
    """A PostgreSQL cluster of the test's own, started."""
    yield from running(OwnPostgres(tmp_path))


@pytest.fixture
def own_pgbouncer(own_postgres: OwnPostgres, tmp_path: Path) -> Iterator[OwnPgBouncer]:
    """A PgBouncer of the test's own, in transaction mode, in front of its PostgreSQL."""
    yield from running(OwnPgBouncer(tmp_path, own_postgres))


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[OwnRedis]:
    """A redis-server of the test's own, started."""
    yield from running(OwnRedis(tmp_path))


@pytest.fixture
def fault_database(own_postgres: OwnPostgres, tmp_path: Path) -> tuple[str, str]:
    """Create and migrate database studio with an admin; return (its URL, an API token)."""
    url = own_postgres.create_database("studio")
    return url, prepare_database(url, tmp_path / "prepare.log")


@pytest.fixture
def studio_server(tmp_path: Path) -> Iterator[Callable[..., StudioServer]]:
    """Start studio under gunicorn on given servers, as often as asked; stop all at the end."""
    started: list[StudioServer] = []

    def start(
        database_url: str,
        redis_url: str | None = None,
        workers: int = 2,
        extra_args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
    ) -> StudioServer:
        log_path = tmp_path / f"studio-{len(started) + 1}.log"
        server = StudioServer(database_url, redis_url, workers, extra_args, env, log_path=log_path)
        started.append(server)
        server.start()
        return server

    yield start
    for server in started:
        server.stop()
