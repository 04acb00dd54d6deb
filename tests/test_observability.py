"""Request timing and slow-query logging."""

import ast
import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

import studio
from studio.extensions import db
from studio.observability import observatory
from studio.observability.queries import masked, shortened

SERVER_TIMING = re.compile(r"^db;dur=[\d.]+, cache;dur=[\d.]+, total;dur=[\d.]+$")


@pytest.mark.parametrize(
    "path", ["/api/v1/paints", "/login", "/health", "/health/ready", "/nowhere"]
)
def test_every_response_says_where_its_time_went(extra_apps, path):
    # Only signed-in admins see it by default (tests/test_transport.py); here everyone does.
    response = extra_apps(SERVER_TIMING="everyone").test_client().get(path)
    assert SERVER_TIMING.match(response.headers["Server-Timing"]), response.headers["Server-Timing"]


def test_an_https_redirect_is_timed_and_its_total_covers_every_hook(extra_apps):
    app = extra_apps(FORCE_HTTPS=True, ALLOWED_HOSTS=("localhost",), SERVER_TIMING="everyone")
    response = app.test_client().get("/login")
    assert response.status_code == 308
    assert SERVER_TIMING.match(response.headers["Server-Timing"])
    # Its clock stops after the other hooks ran: the security headers were already on.
    names = list(response.headers.keys())
    assert names.index("Content-Security-Policy") < names.index("Server-Timing")


def test_database_time_is_counted_in_the_header(api, make_paint):
    make_paint()
    timing = api.get("/api/v1/paints?q=paint").headers["Server-Timing"]
    db_ms = float(re.search(r"db;dur=([\d.]+)", timing).group(1))
    total_ms = float(re.search(r"total;dur=([\d.]+)", timing).group(1))
    assert 0 < db_ms <= total_ms


def test_figures_per_endpoint(app, api):
    request_times = observatory(app).requests
    before = request_times.snapshot().get("api.get_stats", {"count": 0, "errors": 0})
    for _ in range(5):
        api.get("/api/v1/stats")
    figures = request_times.snapshot()["api.get_stats"]
    assert figures["count"] == before["count"] + 5 and figures["errors"] == before["errors"]
    assert 0 < figures["p50"] <= figures["p95"] <= figures["p99"]


def test_slow_requests_are_logged(extra_apps, caplog):
    app = extra_apps(SLOW_REQUEST_MS=0)
    with caplog.at_level(logging.WARNING, logger="studio"):
        app.test_client().get("/health")
    assert "slow request: GET /health took" in caplog.text


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_slow_queries_are_logged_with_masked_parameters_when_very_slow(extra_apps, caplog):
    app = extra_apps(SLOW_QUERY_MS=50, SLOW_QUERY_PARAMETERS_MS=120)
    statement = text("SELECT pg_sleep(:seconds), :password_hash AS h, :name AS n")
    with app.app_context(), caplog.at_level(logging.WARNING, logger="studio"):
        db.session.execute(statement, {"seconds": 0.08, "password_hash": "s3cret", "name": "x"})
        db.session.execute(statement, {"seconds": 0.15, "password_hash": "s3cret", "name": "y"})
        db.session.remove()
    logged = [r.getMessage() for r in caplog.records if "slow query" in r.getMessage()]
    assert len(logged) == 2
    assert "parameters" not in logged[0] and "pg_sleep" in logged[0]
    assert "'name': 'y'" in logged[1] and "***" in logged[1] and "s3cret" not in caplog.text
    assert observatory(app).slow_queries.latest()[-1].parameters is not None


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_a_statement_cancelled_by_a_timeout_is_timed_and_logged_too(extra_apps, caplog):
    app = extra_apps(SLOW_QUERY_MS=100, SLOW_QUERY_PARAMETERS_MS=10_000)
    with app.app_context(), caplog.at_level(logging.WARNING, logger="studio"):
        db.session.execute(text("SET LOCAL statement_timeout = 150"))
        with pytest.raises(OperationalError, match="statement timeout"):
            db.session.execute(text("SELECT pg_sleep(2)"))
        db.session.rollback()
        db.session.remove()
    logged = [r.getMessage() for r in caplog.records if "slow query" in r.getMessage()]
    assert len(logged) == 1 and "pg_sleep(2)" in logged[0]
    assert 140 <= observatory(app).slow_queries.latest()[-1].milliseconds < 2000


def test_bulk_statements_are_timed_like_single_ones(extra_apps, caplog):
    """executemany and statements without parameters go through their own hooks."""
    app = extra_apps(SLOW_QUERY_MS=0, SLOW_QUERY_PARAMETERS_MS=10_000)
    with app.app_context(), caplog.at_level(logging.WARNING, logger="studio"):
        db.session.execute(text("CREATE TEMPORARY TABLE bulk_probe (n INTEGER)"))
        db.session.execute(
            text("INSERT INTO bulk_probe (n) VALUES (:n)"), [{"n": n} for n in range(50)]
        )
        count = db.session.execute(text("SELECT count(*) FROM bulk_probe")).scalar()
        db.session.rollback()
        db.session.remove()
    assert count == 50
    logged = " ".join(r.getMessage() for r in caplog.records if "slow query" in r.getMessage())
    assert "CREATE TEMPORARY TABLE bulk_probe" in logged
    assert "INSERT INTO bulk_probe" in logged and "SELECT count(*) FROM bulk_probe" in logged


def test_observability_can_be_switched_off_to_price_it(extra_apps):
    app = extra_apps(OBSERVABILITY=False)
    response = app.test_client().get("/health")
    assert "Server-Timing" not in response.headers
    with app.app_context():
        assert type(db.engine.pool).__name__ == "QueuePool"
    assert observatory(app).requests.totals() == (0, 0)


def test_bulk_statements_and_their_rows_are_shortened_and_masked():
    rows = [{"name": f"paint {n}", "token_hash": f"secret-{n}"} for n in range(1000)]
    shown = masked(rows)
    assert len(shown) < 2100 and shown.endswith("more characters)")
    assert "secret-" not in shown and "'token_hash': '***'" in shown
    assert shortened("INSERT " + "x" * 5000).startswith("INSERT xxx")
    assert len(shortened("INSERT " + "x" * 5000)) < 2100


def imports_of(path: Path, package: str) -> set[str]:
    """Return the absolute names of the modules a studio module imports from."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join([*package.split(".")[: len(package.split(".")) - node.level + 1]])
                base = f"{base}.{node.module}" if node.module else base
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def test_nothing_outside_the_observability_package_imports_it():
    """Measuring sits at the edge: the product talks to it through signals and the clock."""
    root = Path(studio.__file__).parent
    offenders = []
    for path in sorted(root.rglob("*.py")):
        relative = path.relative_to(root.parent).with_suffix("")
        parts = relative.parts[:-1] if relative.name == "__init__" else relative.parts
        module = ".".join(parts)
        if module == "studio.observability" or module.startswith("studio.observability."):
            continue
        package = module if relative.name == "__init__" else module.rpartition(".")[0]
        names = imports_of(path, package)
        if any(n == "studio.observability" or n.startswith("studio.observability.") for n in names):
            offenders.append(module)
    # create_app binds the extension; nothing else may reach into it.
    assert offenders == ["studio"]


def test_the_import_scan_sees_relative_and_absolute_imports(tmp_path):
    module = tmp_path / "m.py"
    module.write_text(
        "from ..observability import metrics\nfrom .. import observability\n"
        "import studio.observability.timing\n"
    )
    found = imports_of(module, "studio.admin")
    assert {"studio.observability", "studio.observability.metrics"} <= found
    assert "studio.observability.timing" in found


OFF_SCRIPT = """
import sys
import weakref
from flask import request_started
from studio import create_app, signals
from studio.extensions import db
from sqlalchemy import event
app = create_app({"STUDIO_ENV": "testing", "TESTING": True, "DATABASE_URL": sys.argv[1],
                  "OBSERVABILITY": OBSERVED})
client = app.test_client()
assert client.get("/health").status_code == 200
def ours(function):
    return getattr(function, "__module__", "").startswith("studio.observability")
hooks = [f for funcs in (*app.before_request_funcs.values(), *app.after_request_funcs.values(),
         *app.teardown_request_funcs.values(), *app.template_context_processors.values())
         for f in funcs if ours(f)]
def receiver(held):  # blinker keeps a weak reference, or the function itself (weak=False)
    return held() if isinstance(held, weakref.ref) else held
named = [*vars(signals).items(), ("request_started", request_started)]
receivers = [name for name, signal in named if hasattr(signal, "receivers")
             and any(ours(receiver(held)) for held in signal.receivers.values())]
with app.app_context():
    engine = db.engine
    pool_events = [f for f in engine.pool.dispatch.checkout if ours(f)]
    sql_events = [f for f in engine.dialect.dispatch.do_execute if ours(f)]
import threading
threads = [t for t in threading.enumerate() if t.name in ("studio-sampler", "studio-metrics-flush")]
print(len(hooks), len(receivers), len(pool_events), len(sql_events), len(threads))
"""


@pytest.mark.parametrize("observed, expected", [(False, "0 0 0 0 0"), (True, None)])
def test_with_observability_off_nothing_of_it_is_in_the_request_path(tmp_path, observed, expected):
    """No hooks, signal receivers, pool or SQL events, threads; the same check finds them on."""
    script = OFF_SCRIPT.replace("OBSERVED", str(observed))
    url = f"sqlite:///{tmp_path / 'off.db'}"
    done = subprocess.run(
        [sys.executable, "-c", script, url], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    counts = [int(n) for n in done.stdout.split()]
    if expected is not None:
        assert done.stdout.strip() == expected
    else:
        assert all(counts), counts  # the check can fail: on, each kind is found


def test_samples_are_taken_on_a_thread_of_their_own_never_in_a_request(extra_apps):
    app = extra_apps(METRICS_SAMPLE_SECONDS=0.5)
    sampler = observatory(app).sampler
    taken_on: list[str] = []
    sample = sampler.sample

    def recorded():
        taken_on.append(threading.current_thread().name)
        return sample()

    sampler.sample = recorded
    client = app.test_client()
    for _ in range(5):
        assert client.get("/health").status_code == 200
    deadline = time.monotonic() + 5
    while len(taken_on) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(taken_on) >= 2 and set(taken_on) == {"studio-sampler"}


def test_a_forked_worker_samples_on_a_thread_of_its_own(extra_apps):
    app = extra_apps()
    sampler = observatory(app).sampler
    app.test_client().get("/health")
    assert sampler.thread_pid == os.getpid()
    child = os.fork()
    if child == 0:  # gunicorn's worker: the parent's thread did not come along
        code = 2
        try:
            time.sleep(1.1)  # requests check once a second that the thread runs here
            app.test_client().get("/health")
            names = [thread.name for thread in threading.enumerate()]
            code = 0 if sampler.thread_pid == os.getpid() and "studio-sampler" in names else 1
        finally:
            os._exit(code)
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_a_worker_forked_while_its_parent_sampled_does_not_wait_for_the_parents_lock(extra_apps):
    app = extra_apps()
    observed = observatory(app)
    app.test_client().get("/health")
    held, release = threading.Event(), threading.Event()

    def sampling():  # what the sampling thread holds while it counts the requests
        with observed.requests.lock:
            held.set()
            release.wait(10)

    sampler = threading.Thread(target=sampling)
    sampler.start()
    held.wait(5)
    child = os.fork()
    if child == 0:
        code = 2
        try:
            signal.alarm(10)  # a child stuck on the lock is killed, not left hanging
            code = 0 if app.test_client().get("/health").status_code == 200 else 1
        finally:
            os._exit(code)
    release.set()
    sampler.join()
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0
