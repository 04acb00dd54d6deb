"""studio under gunicorn while its PostgreSQL restarts, stops, is locked or is forked past.

Every answer is counted: none may be a 500 or a dropped connection, a 503 only while the
database really is away, and the database must hold exactly the writes answered 201.
"""

import time

from .load import LOAD_REASON_PREFIX, Load, call, mixed_pick, seed_paints

# Cache off: every request goes to the database, which is what these tests break.
NO_CACHE = {"CACHE_TYPE": "NullCache"}
# How long after the server answers again a 503 may still be given: the breaker's open
# period (0.5 s) and its probe.
RECOVERY_SLACK = 1.0


def stored_reasons(own_postgres) -> set[str]:
    rows = own_postgres.execute(
        "SELECT reason FROM stock_movements WHERE reason LIKE %s",
        (f"{LOAD_REASON_PREFIX}%",),
        database="studio",
    )
    return {reason for (reason,) in rows}


def error_code(answer) -> str | None:
    body = answer.body
    return body.get("error", {}).get("code") if isinstance(body, dict) else None


def assert_writes_match_answers(answers, own_postgres, summary) -> None:
    """Every write answered 201 is stored; every write refused is not.

    A write whose COMMIT was on its way when the server stopped answering is answered 503
    `outcome_unknown`, which promises neither: it may be stored or not.
    """
    writes = [answer for answer in answers if answer.kind == "write"]
    confirmed = {a.request_body["reason"] for a in writes if a.status == 201}
    unknown = {a.request_body["reason"] for a in writes if error_code(a) == "outcome_unknown"}
    refused = {a.request_body["reason"] for a in writes if a.status != 201} - unknown
    stored = stored_reasons(own_postgres)
    assert confirmed <= stored, f"confirmed but missing: {confirmed - stored}; {summary}"
    wrongly = [(a.status, a.body) for a in writes if a.request_body["reason"] in refused & stored]
    assert not wrongly, f"refused, yet stored: {wrongly[:5]} ({len(wrongly)} in all); {summary}"
    assert stored <= confirmed | refused | unknown


def start_load(server, token: str, clients: int, write_share: float, paints: int = 10) -> Load:
    """Seed paints and put the server under a mixed load, running for a second already."""
    ids = seed_paints(server.base, token, paints)
    load = Load(server.base, token, clients=clients)
    load.start(mixed_pick(ids, write_share=write_share))
    time.sleep(1)
    return load


def lock_paints(own_postgres, seconds: float) -> tuple[float, float]:
    """Hold an exclusive lock on the paints table; return when it was taken and released."""
    lock = own_postgres.hold_lock("paints", seconds, database="studio")
    lock.wait_held()
    locked_at = time.monotonic()
    lock.join()
    return locked_at, time.monotonic()


def answered_while_locked(answers, locked_at: float, released_at: float) -> list:
    """Return the answers that came while the lock was held, after waiting out lock_timeout.

    A request that got the lock as it was released finishes at released_at: kept clear of.
    """
    return [a for a in answers if locked_at + 2.2 <= a.finished <= released_at - 0.5]


def test_a_restart_under_load_gives_no_500_and_loses_or_invents_no_write(
    fault_database, own_postgres, studio_server
):
    url, token = fault_database
    server = studio_server(url, env=NO_CACHE)
    load = start_load(server, token, clients=8, write_share=0.3, paints=20)
    windows = []
    for _ in range(3):
        time.sleep(1.5)
        own_postgres.restart()
        windows.append((own_postgres.down_since, own_postgres.up_since))
    time.sleep(1.5)
    answers = load.stop()

    summary = load.summary()
    assert len(answers) > 500, summary
    failures = [a for a in answers if a.status == 0 or (a.status >= 500 and a.status != 503)]
    assert not failures, [(a.kind, a.status, a.error, a.body) for a in failures[:5]]
    for answer in answers:
        if answer.status == 503:
            assert answer.headers.get("Retry-After"), answer.headers
            assert answer.body["error"]["code"] == "unavailable"
            assert any(
                answer.finished >= down and answer.started <= up + RECOVERY_SLACK
                for down, up in windows
            ), f"a 503 while the database was up: {answer}"
    assert_writes_match_answers(answers, own_postgres, summary)
    # Quiet logs: a traceback once per distinct cause, not one per failed request.
    failed = sum(1 for a in answers if a.status != 200 and a.status != 201)
    logged = server.log_text().count("Traceback (most recent call last)")
    assert logged <= 40, f"{logged} tracebacks for {failed} failed requests"


def test_a_stopped_database_gets_fast_503s_and_service_comes_back_by_itself(
    fault_database, own_postgres, studio_server
):
    url, token = fault_database
    server = studio_server(url, env=NO_CACHE)
    load = start_load(server, token, clients=4, write_share=0.2)
    own_postgres.stop()
    time.sleep(2)
    ready = call(server.base, "GET", "/health/ready")
    time.sleep(8)
    own_postgres.start()
    back = first_success_after(server.base, token, "/api/v1/paints", timeout=10)
    time.sleep(3)
    answers = load.stop()

    assert ready.status == 503 and ready.body["database"] == "unreachable", ready.body
    assert ready.headers.get("Retry-After")
    down, up = own_postgres.down_since, own_postgres.up_since
    # pg_ctl notices the server is up only when it polls (every 0.1 s): keep clear of both ends.
    during = [a for a in answers if a.started >= down + 0.5 and a.finished <= up - 0.5]
    assert len(during) > 100, load.summary()
    assert {a.status for a in during} == {503}, load.summary()
    slowest = max(a.finished - a.started for a in during)
    assert slowest < 1.0, f"slowest answer during the outage took {slowest:.2f} s"
    assert all(a.headers.get("Retry-After") for a in during)
    assert back - up < 2.0, f"served again {back - up:.2f} s after the database came back"
    late = [a for a in answers if a.started > up + 2.0]
    assert late and all(200 <= a.status < 300 for a in late), load.summary()
    assert_writes_match_answers(answers, own_postgres, load.summary())


def first_success_after(base: str, token: str, path: str, timeout: float) -> float:
    """Poll `path` until it answers 200; return when it did (time.monotonic())."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        answer = call(base, "GET", path, token)
        if answer.status == 200:
            return answer.finished
        time.sleep(0.05)
    raise AssertionError(f"{path} did not answer 200 within {timeout} s")


def test_a_locked_table_gets_503s_within_25_s_and_no_worker_is_killed(
    fault_database, own_postgres, studio_server
):
    url, token = fault_database
    server = studio_server(url, env=NO_CACHE)
    load = start_load(server, token, clients=8, write_share=0.2)
    locked_at, released_at = lock_paints(own_postgres, 40)
    time.sleep(3)
    answers = load.stop()

    summary = load.summary()
    assert all(a.status in (200, 201, 503) for a in answers), summary
    slowest = max(answers, key=lambda a: a.finished - a.started)
    assert slowest.finished - slowest.started < 25, f"{slowest}"
    locked = answered_while_locked(answers, locked_at, released_at)
    # Two sync workers, each request waiting out lock_timeout (2 s): about one answer a second.
    assert len(locked) > 20 and {a.status for a in locked} == {503}, summary
    assert all(a.body["error"]["code"] == "unavailable" for a in locked)
    after = [a for a in answers if a.started > released_at + 1]
    assert after and all(a.status in (200, 201) for a in after), summary
    assert "WORKER TIMEOUT" not in server.log_text()
    assert_writes_match_answers(answers, own_postgres, summary)


def test_preload_forks_workers_that_share_no_connection(
    fault_database, own_postgres, studio_server
):
    url, token = fault_database
    server = studio_server(url, extra_args=["--preload"], env=NO_CACHE)
    deadline = time.monotonic() + 10
    while len(server.worker_pids()) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    workers = set(server.worker_pids())
    assert len(workers) == 2
    ids = seed_paints(server.base, token, 10)
    answers = Load(server.base, token, clients=8).run(10, mixed_pick(ids, write_share=0.2))

    statuses = {a.status for a in answers}
    assert statuses <= {200, 201}, statuses
    assert len(answers) > 1000
    assert set(server.worker_pids()) == workers, "a worker died and was replaced"
    log = server.log_text()
    # gunicorn's words for a worker that crashed or was killed.
    for sign in ("was sent SIG", "terminated due to signal", "no message from the libpq"):
        assert sign not in log
    assert_writes_match_answers(answers, own_postgres, "")


def test_a_frozen_database_is_given_up_on_at_the_deadline_not_by_gunicorn(
    fault_database, own_postgres, studio_server
):
    """SIGSTOP: the server's kernel still acknowledges, so only studio's own deadline helps."""
    url, token = fault_database
    deadline = {"REQUEST_DEADLINE_SECONDS": "3", "DB_CONNECT_TIMEOUT": "2", **NO_CACHE}
    server = studio_server(url, extra_args=["--timeout", "10"], env=deadline)
    load = start_load(server, token, clients=4, write_share=0.2)
    own_postgres.freeze()
    time.sleep(12)
    own_postgres.thaw()
    thawed = time.monotonic()
    time.sleep(4)
    answers = load.stop()

    summary = load.summary()
    assert all(a.status in (200, 201, 503) for a in answers), summary
    assert sum(a.status == 503 for a in answers) > 5, summary
    assert max(a.finished - a.started for a in answers) < 10
    log = server.log_text()
    assert "WORKER TIMEOUT" not in log
    # A connection cut for not answering opened the breaker at once.
    assert "unreachable (a connection stopped answering" in log
    assert any(a.status == 200 and a.started > thawed + 2 for a in answers), summary
    assert_writes_match_answers(answers, own_postgres, summary)
