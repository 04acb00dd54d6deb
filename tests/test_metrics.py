"""GET /metrics: Prometheus exposition, behind a token, counting every gunicorn worker."""

import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from studio.extensions import db
from studio.models import User
from studio.observability import metrics
from studio.services import accounts

from .conftest import PASSWORD, free_port

REPO = Path(__file__).resolve().parent.parent
METRICS_TOKEN = "scraper-secret-0123456789"
# Workers in separate processes need a database server to share.
ON_POSTGRESQL = pytest.mark.parametrize("backend", ["postgresql"], indirect=True)


def parse(body: str) -> dict[str, list]:
    found: dict[str, list] = {}
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            found.setdefault(sample.name, []).append((sample.labels, sample.value))
    return found


def value(found, name, **labels):
    return sum(
        v for found_labels, v in found.get(name, []) if labels.items() <= found_labels.items()
    )


@pytest.mark.parametrize(
    "authorization", [None, "Bearer", "Bearer wrong", "Basic c2NyYXBlcjpzZWNyZXQ=", "Bearer st_x"]
)
def test_anonymous_and_wrong_credentials_get_401(app, monkeypatch, authorization):
    monkeypatch.setitem(app.config, "METRICS_TOKEN", METRICS_TOKEN)
    headers = {"Authorization": authorization} if authorization else {}
    response = app.test_client().get("/metrics", headers=headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="metrics"'
    assert "studio_" not in response.get_data(as_text=True)


def test_metrics_token_or_an_api_token_is_let_in(app, api, monkeypatch):
    monkeypatch.setitem(app.config, "METRICS_TOKEN", METRICS_TOKEN)
    client = app.test_client()
    for secret in (METRICS_TOKEN, api.token):
        response = client.get("/metrics", headers={"Authorization": f"Bearer {secret}"})
        assert response.status_code == 200, secret
        assert response.content_type.startswith("text/plain; version=")


def test_a_revoked_token_is_refused_at_once(app, api):
    assert api.get("/metrics").status_code == 200
    accounts.revoke_tokens(api.user.username)
    assert api.get("/metrics").status_code == 401


def test_without_metrics_token_only_api_tokens_work(app, api):
    assert app.config["METRICS_TOKEN"] is None
    assert (
        app.test_client().get("/metrics", headers={"Authorization": "Bearer "}).status_code == 401
    )
    assert api.get("/metrics").status_code == 200


def test_exposition_has_latency_pool_process_cache_and_alert_figures(app, api, make_paint):
    make_paint()
    before = parse(api.get("/metrics").get_data(as_text=True))
    for _ in range(3):
        assert api.get("/api/v1/paints").status_code == 200
    found = parse(api.get("/metrics").get_data(as_text=True))
    listed = dict(endpoint="api.list_paints")
    count = value(found, "studio_request_duration_seconds_count", **listed)
    assert count - value(before, "studio_request_duration_seconds_count", **listed) == 3
    assert value(found, "studio_request_duration_seconds_count", status="2xx", **listed) >= 3
    # Cumulative buckets: +Inf holds every request.
    assert value(found, "studio_request_duration_seconds_bucket", le="+Inf", **listed) == count
    for name in (
        "studio_db_pool_size",
        "studio_db_pool_capacity",
        "studio_db_pool_checked_out",
        "studio_db_pool_utilisation_ratio",
        "studio_db_pool_checkouts_total",
        "studio_process_resident_memory_bytes",
        "studio_system_memory_percent",
        "studio_cache_hits_total",
        "studio_cache_hit_ratio",
    ):
        assert name in found, name
    assert value(found, "studio_process_resident_memory_bytes") > 10_000_000
    assert value(found, "studio_cache_up") == 1
    assert {labels["alert"] for labels, _ in found["studio_alert_active"]} == {
        "slow_query",
        "pool_utilisation",
        "memory",
        "error_rate",
        "pool_timeouts",
        "failed_sign_ins",
    }


def test_metrics_is_left_out_of_the_api_document(app, api):
    document = api.get("/api/v1/openapi.json").get_json()
    assert "/metrics" not in document["paths"]


@pytest.fixture
def gunicorn_server(committed_app, tmp_path):
    """studio under gunicorn with two workers and gunicorn.conf.py, as the Procfile runs it."""
    port = free_port()
    env = {
        **os.environ,
        "STUDIO_ENV": "testing",
        "DATABASE_URL": committed_app.config["SQLALCHEMY_DATABASE_URI"],
        "METRICS_TOKEN": METRICS_TOKEN,
        "METRICS_SAMPLE_SECONDS": "0",
        "WEB_CONCURRENCY": "2",
        # Sync workers, whatever gunicorn.conf.py's default: one connection each at most.
        "THREADS_PER_WORKER": "1",
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
    }
    env.pop("REDIS_URL", None)
    command = [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "wsgi:app"]
    log = (tmp_path / "gunicorn.log").open("w")
    process = subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=log)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(base, process)
        yield base, process
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(15)
        log.close()


def wait_until_up(base, process):
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert process.poll() is None, "gunicorn exited"
        try:
            urllib.request.urlopen(f"{base}/health", timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError("gunicorn did not answer within 30 s")


def fetch(url, token=None):
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status, response.read().decode()


def scrape(base):
    status, body = fetch(f"{base}/metrics", METRICS_TOKEN)
    assert status == 200
    return parse(body)


def worker_pids(found):
    return {labels["pid"] for labels, _ in found.get("studio_process_resident_memory_bytes", [])}


def scrape_until(base, name, at_least, **labels):
    """Scrape until a figure reaches `at_least`: each worker hands its figures over every second."""
    deadline = time.monotonic() + 5 * metrics.FLUSH_SECONDS
    found = scrape(base)
    while value(found, name, **labels) < at_least and time.monotonic() < deadline:
        time.sleep(0.1)
        found = scrape(base)
    return found


@ON_POSTGRESQL
def test_all_gunicorn_workers_are_counted(gunicorn_server):
    base, _ = gunicorn_server
    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(lambda _: fetch(f"{base}/health/ready")[0], range(200)))
    assert statuses == [200] * 200
    ready = dict(endpoint="health.ready")
    found = scrape_until(base, "studio_request_duration_seconds_count", 200, **ready)
    assert value(found, "studio_request_duration_seconds_count", **ready) == 200
    assert value(found, "studio_request_duration_seconds_count", status="2xx", **ready) == 200
    assert len(worker_pids(found)) == 2, "both workers answered and published their gauges"
    assert len({labels["pid"] for labels, _ in found["studio_db_pool_size"]}) == 2


@ON_POSTGRESQL
def test_tune_sizes_the_pool_from_what_the_workers_used(gunicorn_server, committed_app):
    base, _ = gunicorn_server
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda _: fetch(f"{base}/health/ready"), range(100)))
    scrape_until(base, "studio_db_pool_checkouts_total", 100)
    result = committed_app.test_cli_runner().invoke(
        args=["tune", "--metrics-url", f"{base}/metrics", "--token", METRICS_TOKEN]
    )
    assert result.exit_code == 0, result.output
    checkouts = int(re.search(r"Observed over (\d+) checkout", result.output).group(1))
    assert checkouts >= 100
    # Sync workers answer one request at a time: one connection each at most.
    assert "at most 1 connection(s) out at once in one worker" in result.output


@ON_POSTGRESQL
def test_a_dead_workers_gauges_go_but_its_counts_stay(gunicorn_server):
    base, _ = gunicorn_server
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda _: fetch(f"{base}/health/ready"), range(100)))
        # On a busy machine one worker can take every connection for a while: the other
        # shows its gauges once it has answered or sampled.
        pids = worker_pids(scrape(base))
        deadline = time.monotonic() + 20
        while len(pids) < 2 and time.monotonic() < deadline:
            list(pool.map(lambda _: fetch(f"{base}/health/ready"), range(8)))
            pids = worker_pids(scrape(base))
    assert len(pids) == 2
    gone = int(sorted(pids)[0])
    os.kill(gone, signal.SIGTERM)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        fetch(f"{base}/health/ready")
        found = scrape(base)
        if str(gone) not in worker_pids(found) and len(worker_pids(found)) == 2:
            break
        time.sleep(0.2)
    assert str(gone) not in worker_pids(found)
    assert value(found, "studio_request_duration_seconds_count", endpoint="health.ready") >= 100


@ON_POSTGRESQL
def test_an_api_token_works_against_gunicorn_too(gunicorn_server, committed_app):
    base, _ = gunicorn_server
    with committed_app.app_context():
        db.session.add(User(username="scraper", password_hash=PASSWORD))
        db.session.commit()
        _, secret = accounts.create_token("scraper", "prometheus")
        db.session.remove()
    status, body = fetch(f"{base}/metrics", secret)
    assert status == 200 and "studio_db_pool_size" in body
    with pytest.raises(urllib.error.HTTPError) as refused:
        fetch(f"{base}/metrics")
    refused.value.close()
    assert refused.value.code == 401


def test_a_command_run_beside_the_workers_does_not_stay_counted_as_one(tmp_path):
    """A process that is no worker (flask tune, flask monitor) takes its gauges with it."""
    script = (
        "import os; from studio.observability import metrics;"
        "metrics.POOL_SIZE.set(5); print(os.getpid())"
    )
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    printed = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
    )
    pid = printed.stdout.strip()
    assert pid.isdigit()
    left = sorted(path.name for path in tmp_path.iterdir())
    assert not [name for name in left if name.startswith("gauge_live")], left
    assert f"counter_{pid}.db" in left  # its counts (all zero) are kept, as for a worker


def test_held_back_observations_add_up_as_if_observed_one_by_one():
    """The flush hands each bucket's observations to observe() at their mean."""
    buckets = (0.001, 0.01, 0.1, 1.0)
    direct, held = CollectorRegistry(), CollectorRegistry()
    observed = Histogram("seconds", "x", buckets=buckets, registry=direct)
    series = Histogram("seconds", "x", buckets=buckets, registry=held)
    pending = metrics.PendingHistogram(series, buckets)
    # Bounds themselves, between them, zero, past the last bound, negative; a bound 10 times
    # over (its mean, by rounding, may fall past the bound).
    values = [0.0, 0.001, 0.0011, 0.01, 0.05, 0.1, 0.5, 1.0, 1.5, 30.0, -0.2] * 3 + [0.1] * 7
    for number in values:
        observed.observe(number)
        with metrics.PENDING_LOCK:
            pending.observe(number)
    assert held.get_sample_value("seconds_count") == 0, "nothing written before the flush"
    metrics.flush_pending()
    for le in ("0.001", "0.01", "0.1", "1.0", "+Inf"):
        assert held.get_sample_value("seconds_bucket", {"le": le}) == direct.get_sample_value(
            "seconds_bucket", {"le": le}
        ), le
    assert held.get_sample_value("seconds_count") == len(values)
    assert held.get_sample_value("seconds_sum") == pytest.approx(sum(values))
    metrics.flush_pending()
    assert held.get_sample_value("seconds_count") == len(values), "a second flush adds nothing"


def test_a_forked_worker_does_not_write_what_its_parent_held_back():
    registry = CollectorRegistry()
    counter = metrics.PendingCounter(Counter("forked", "x", registry=registry))
    with metrics.PENDING_LOCK:
        counter.inc(3)
    child = os.fork()
    if child == 0:  # the worker: exit 0 only if it starts from nothing
        os._exit(0 if counter.total == 0 and metrics.PENDING_LOCK.acquire(timeout=5) else 1)
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    # An app of an earlier test may have left its flusher running in this process, so the
    # parent's 3 are either still held or already written: after a flush, they are written.
    metrics.flush_pending()
    assert registry.get_sample_value("forked_total") == 3, "the parent still writes its own"


QUIET_WORKER = """
import sys, time
from studio import create_app
app = create_app({"STUDIO_ENV": "testing", "DATABASE_URL": "sqlite://", "TESTING": True})
client = app.test_client()
for _ in range(5):
    assert client.get("/health").status_code == 200
print("answered", flush=True)
if sys.argv[1] == "stay":
    time.sleep(60)
"""


def requests_on_file(directory):
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(directory))
    found = parse(generate_latest(registry).decode())
    return value(found, "studio_request_duration_seconds_count")


@pytest.mark.parametrize("then", ["stay", "exit"])
def test_a_worker_hands_over_its_last_requests_when_quiet_or_exiting(tmp_path, then):
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    worker = subprocess.Popen(
        [sys.executable, "-c", QUIET_WORKER, then],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert worker.stdout.readline().strip() == "answered"
        if then == "exit":
            assert worker.wait(15) == 0
        # No request and no scrape reaches it: its flushing thread, or its exit, writes the five.
        deadline = time.monotonic() + 5 * metrics.FLUSH_SECONDS
        while requests_on_file(tmp_path) < 5 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert requests_on_file(tmp_path) == 5
    finally:
        worker.kill()
        worker.wait()
        worker.stdout.close()
