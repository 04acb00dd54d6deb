"""The connection budget: the advisor's arithmetic and the start-up check."""

import http.server
import logging
import os
import threading

import pytest
from sqlalchemy import text

from studio import serving
from studio.config import ConfigError
from studio.extensions import db
from studio.observability.budget import (
    HEADROOM,
    Deployment,
    Observed,
    ServerLimits,
    advise,
    observed_from,
)
from studio.observability.metrics import parse_exposition


def plan(**changes):
    values = dict(instances=1, workers=2, threads=1, pool_size=5, max_overflow=10, pool_recycle=300)
    return Deployment(**{**values, **changes})


@pytest.mark.parametrize(
    ("max_connections", "others", "overlap", "fits"),
    [
        (20, 0, 1, False),
        (25, 0, 0, False),
        (40, 0, 0, True),
        # A deploy's new instance beside the live one doubles the worst case.
        (40, 0, 1, False),
        (40, 10, 0, False),
        (100, 0, 1, True),
        (100, 40, 1, False),
        (500, 50, 1, True),
    ],
)
def test_worst_case_is_compared_with_what_the_server_can_give(
    max_connections, others, overlap, fits
):
    limits = ServerLimits(max_connections, 3, others, None)
    advice = advise(limits, plan(overlap=overlap))
    assert limits.available == max_connections - 3 - others - HEADROOM
    worst = 30 * (1 + overlap)
    assert f"= {worst} connections at worst" in " ".join(advice.reasoning)
    assert (not advice.problems) == fits


def test_the_heroku_essential_example():
    """20 connections, SQLAlchemy's 5 + 10 and two workers: 30 asked, 15 to give."""
    advice = advise(ServerLimits(20, 3, 0, None), plan(overlap=0))
    assert "worst case 30 connections exceeds the 15" in advice.problems[0]
    recommended = advice.recommended
    per_worker = recommended["DB_POOL_SIZE"] + recommended["DB_MAX_OVERFLOW"]
    assert recommended["WEB_CONCURRENCY"] * per_worker <= 15
    assert recommended["DB_POOL_SIZE"] >= 1


def test_several_instances_share_the_budget():
    advice = advise(ServerLimits(100, 3, 0, None), plan(instances=4, pool_size=5, max_overflow=10))
    # Four instances and a fifth starting during a deploy.
    assert advice.problems and "150 connections at worst" in advice.reasoning[2]
    recommended = advice.recommended
    total = (
        5
        * recommended["WEB_CONCURRENCY"]
        * (recommended["DB_POOL_SIZE"] + recommended["DB_MAX_OVERFLOW"])
    )
    assert total <= 95


def test_too_few_connections_for_the_threads_means_fewer_workers():
    advice = advise(
        ServerLimits(20, 3, 0, None), plan(workers=8, threads=4, pool_size=4, max_overflow=0)
    )
    assert advice.recommended["WEB_CONCURRENCY"] < 8
    assert advice.recommended["DB_POOL_SIZE"] >= 3


def test_pool_smaller_than_threads_is_a_problem():
    advice = advise(ServerLimits(100, 3, 0, None), plan(threads=8, pool_size=2, max_overflow=0))
    assert any("threads will queue" in problem for problem in advice.problems)


def test_recycle_must_beat_the_servers_idle_timeout():
    advice = advise(ServerLimits(100, 3, 0, 60.0), plan(pool_recycle=300))
    assert any("idle timeout" in problem for problem in advice.problems)
    assert advice.recommended["DB_POOL_RECYCLE"] < 60


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_start_up_warns_when_the_pools_cannot_fit(extra_apps, monkeypatch, caplog):
    monkeypatch.setenv("DB_POOL_SIZE", "400")
    monkeypatch.setenv("WEB_CONCURRENCY", "2")
    with caplog.at_level(logging.WARNING, logger="studio"):
        extra_apps(DB_BUDGET_CHECK=True)
    assert "connection budget: worst case" in caplog.text


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_strict_budget_refuses_to_start(extra_apps, monkeypatch):
    monkeypatch.setenv("DB_POOL_SIZE", "400")
    monkeypatch.setenv("DB_BUDGET_STRICT", "true")
    with pytest.raises(ConfigError, match="Refusing to start"):
        extra_apps(DB_BUDGET_CHECK=True)


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_tune_explains_its_numbers(extra_apps, monkeypatch):
    monkeypatch.setenv("WEB_CONCURRENCY", "2")
    result = extra_apps().test_cli_runner().invoke(args=["tune"])
    assert result.exit_code == 0, result.output
    assert "connections at worst" in result.output and "DB_POOL_SIZE=" in result.output
    assert "for a deploy's overlap" in result.output


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_tune_in_a_one_off_shell_counts_the_web_processes_threads(extra_apps, monkeypatch):
    """`heroku run` has no THREADS_PER_WORKER: tune advised 1 worker of 1 thread then."""
    for name in ("WEB_CONCURRENCY", "THREADS_PER_WORKER", "STUDIO_INSTANCES"):
        monkeypatch.delenv(name, raising=False)
    served = serving.decide(os.environ, serving.read_machine())
    result = extra_apps().test_cli_runner().invoke(args=["tune"])
    assert result.exit_code == 0, result.output
    assert "as gunicorn.conf.py serves on this machine" in result.output
    recommended = dict(
        line.strip().split("=")
        for line in result.output.split("Recommended:")[1].splitlines()
        if "=" in line
    )
    assert int(recommended["WEB_CONCURRENCY"]) >= served.workers
    assert int(recommended["DB_POOL_SIZE"]) >= served.threads > 1


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_tune_recommends_what_the_start_up_sizing_picks(extra_apps, monkeypatch):
    """Following tune's advice draws no warning at start, and auto picks the same pool."""
    for name in ("STUDIO_INSTANCES", "DB_DEPLOY_OVERLAP", "DB_BUDGET_STRICT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("STUDIO_INSTANCE_ID", "tuned")
    monkeypatch.setenv("WEB_CONCURRENCY", "2")
    monkeypatch.setenv("THREADS_PER_WORKER", "8")
    result = extra_apps().test_cli_runner().invoke(args=["tune"])
    assert result.exit_code == 0, result.output
    recommended = dict(
        line.strip().split("=")
        for line in result.output.split("Recommended:")[1].splitlines()
        if "=" in line
    )
    assert int(recommended["DB_POOL_SIZE"]) >= int(recommended.get("THREADS_PER_WORKER", 8))
    for name, value in recommended.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("DB_BUDGET_STRICT", "true")  # any problem would refuse to start
    extra_apps(DB_BUDGET_CHECK=True)
    monkeypatch.setenv("DB_POOL_SIZE", "auto")
    monkeypatch.setenv("DB_MAX_OVERFLOW", "auto")
    options = extra_apps().config["SQLALCHEMY_ENGINE_OPTIONS"]
    assert options["pool_size"] == int(recommended["DB_POOL_SIZE"])
    assert options["max_overflow"] == int(recommended["DB_MAX_OVERFLOW"])


def observed(**changes):
    values = dict(workers=2, peak_checked_out=1, checkouts=1000, timeouts=0)
    return Observed(**{**values, **changes})


def test_observed_timeouts_take_what_the_budget_allows():
    # 35 for studio over 2 workers of this instance and of a deploy's next: 8 per worker.
    limits = ServerLimits(40, 3, 0, None)
    advice = advise(limits, plan(pool_size=2, max_overflow=0), observed(timeouts=4))
    assert any("4 pool timeout(s)" in problem for problem in advice.problems)
    recommended = advice.recommended
    assert recommended["DB_POOL_SIZE"] + recommended["DB_MAX_OVERFLOW"] <= 8
    assert recommended["DB_POOL_SIZE"] >= 2
    total = (
        2
        * recommended["WEB_CONCURRENCY"]
        * (recommended["DB_POOL_SIZE"] + recommended["DB_MAX_OVERFLOW"])
    )
    assert total <= limits.available


def test_a_quiet_pool_is_sized_to_its_observed_peak():
    limits = ServerLimits(100, 3, 0, None)
    without = advise(limits, plan(threads=4, pool_size=5, max_overflow=10))
    advice = advise(
        limits, plan(threads=4, pool_size=5, max_overflow=10), observed(peak_checked_out=2)
    )
    # Four threads still need four connections even if only two were seen at once.
    assert advice.recommended["DB_POOL_SIZE"] == 4 < without.recommended["DB_POOL_SIZE"]
    assert any("at most 2 connection(s) out at once" in line for line in advice.reasoning)
    assert not advice.problems


def test_observed_figures_are_read_from_a_scrape(extra_apps):
    app = extra_apps(METRICS_TOKEN="scraper-secret-0123456789")
    client = app.test_client()
    before = scraped(client)
    with app.app_context(), db.engine.connect() as connection:
        connection.execute(text("SELECT 1"))
    after = scraped(client)
    assert after.checkouts == before.checkouts + 1
    assert after.peak_checked_out >= 1 and after.workers == 1
    assert after.timeouts >= before.timeouts


def scraped(client):
    headers = {"Authorization": "Bearer scraper-secret-0123456789"}
    body = client.get("/metrics", headers=headers).get_data(as_text=True)
    return observed_from(parse_exposition(body))


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_tune_reads_a_saved_scrape_with_timeouts(extra_apps, migrated_app, tmp_path):
    options = {**migrated_app.config["SQLALCHEMY_ENGINE_OPTIONS"], "pool_size": 1}
    options.update(max_overflow=0, pool_timeout=0.1)
    app = extra_apps(METRICS_TOKEN="scraper-secret-0123456789", SQLALCHEMY_ENGINE_OPTIONS=options)
    with app.app_context(), db.engine.connect():  # the pool's only connection
        # Looking the token up needs a connection: 503 after pool_timeout.
        headers = {"Authorization": "Bearer stu_" + "x" * 43}
        assert app.test_client().get("/api/v1/paints", headers=headers).status_code == 503
    saved = tmp_path / "metrics.txt"
    saved.write_text(
        app.test_client()
        .get("/metrics", headers={"Authorization": "Bearer scraper-secret-0123456789"})
        .get_data(as_text=True)
    )
    result = app.test_cli_runner().invoke(args=["tune", "--metrics-file", str(saved)])
    assert result.exit_code == 0, result.output
    assert "Observed over" in result.output
    assert "pool timeout(s)" in result.output and "PROBLEM" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--metrics-url", "ftp://example.com/metrics"], "not an http(s) URL"),
        (["--metrics-url", "http://127.0.0.1:9/metrics"], "cannot read the metrics"),
        (["--metrics-file", "-"], "hold no pool figures"),
    ],
)
@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_tune_says_why_it_cannot_use_the_metrics(extra_apps, args, message):
    result = extra_apps().test_cli_runner().invoke(args=["tune", *args], input="# nothing\n")
    assert result.exit_code == 1
    assert message in result.output


@pytest.mark.parametrize(
    ("status", "hint"), [(400, "ALLOWED_HOSTS"), (401, "--token"), (403, "METRICS_TOKEN")]
)
@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_tune_says_what_a_refused_scrape_means(extra_apps, status, hint):
    """A Host outside ALLOWED_HOSTS got a bare 'HTTP Error 400: BAD REQUEST'."""

    class Refusing(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (the handler's name is http.server's)
            self.send_error(status)

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Refusing)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/metrics"
        result = extra_apps().test_cli_runner().invoke(args=["tune", "--metrics-url", url])
    finally:
        server.shutdown()
        server.server_close()
    assert result.exit_code == 1
    assert f"HTTP Error {status}" in result.output and hint in result.output
