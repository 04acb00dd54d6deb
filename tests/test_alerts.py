"""Alerts: raised by real figures, logged once when they start and once when they end."""

import logging
import os
import time

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import text

from studio.extensions import db
from studio.observability import observatory
from studio.observability.alerts import MIN_REQUESTS_FOR_ERROR_RATE, THRESHOLDS, AlertBook


def alerts_logged(caplog, name):
    return [
        r.getMessage()
        for r in caplog.records
        if f"alert started: {name}" in r.getMessage() or f"alert ended: {name}" in r.getMessage()
    ]


def active(app):
    return [alert.name for alert in observatory(app).alerts.current()]


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_a_slow_query_raises_an_alert_that_ends_after_the_window(extra_apps, caplog):
    app = extra_apps(SLOW_QUERY_MS=100, ALERT_QUERY_SECONDS=0.3, ALERT_WINDOW_SECONDS=2)
    sampler = observatory(app).sampler  # as its thread samples, every METRICS_SAMPLE_SECONDS
    started_before = REGISTRY.get_sample_value("studio_alerts_total", {"alert": "slow_query"})
    client = app.test_client()
    with caplog.at_level(logging.WARNING, logger="studio"):
        with app.app_context():
            db.session.execute(text("SELECT pg_sleep(0.2)"))  # slow, but under the alert
            db.session.remove()
        client.get("/health")
        sampler.sample()
        assert "slow_query" not in active(app)
        with app.app_context():
            db.session.execute(text("SELECT pg_sleep(0.4)"))
            db.session.remove()
        sampler.sample()  # a sample checks the alerts
        sampler.sample()
        assert "slow_query" in active(app)
        time.sleep(2.1)
        sampler.sample()
    assert "slow_query" not in active(app)
    logged = alerts_logged(caplog, "slow_query")
    assert len(logged) == 2
    assert logged[0].startswith("alert started: slow_query: a query took 0.4 s (alert at 0.3 s)")
    assert logged[1].startswith("alert ended: slow_query after 2 s")
    started = REGISTRY.get_sample_value("studio_alerts_total", {"alert": "slow_query"})
    assert started - (started_before or 0) == 1


def test_an_error_rate_over_the_threshold_raises_an_alert(extra_apps, caplog):
    app = extra_apps(ALERT_ERROR_RATE_PERCENT=5)
    app.add_url_rule("/boom", "boom", lambda: ("broken", 500))
    client, sampler = app.test_client(), observatory(app).sampler
    with caplog.at_level(logging.WARNING, logger="studio"):
        assert client.get("/boom").status_code == 500
        sampler.sample()
        # One failure in one request is 100 %, but too few requests to call it a rate.
        assert "error_rate" not in active(app)
        for _ in range(MIN_REQUESTS_FOR_ERROR_RATE - 2):
            client.get("/health")
        sampler.sample()
        assert "error_rate" not in active(app)
        client.get("/health")  # 1 failure in 20: 5 %
        sampler.sample()
    assert "error_rate" in active(app)
    logged = alerts_logged(caplog, "error_rate")
    assert logged == ["alert started: error_rate: 5.0 % of requests failed (alert at 5 %)"]


def test_memory_alert_is_logged_once_while_it_lasts(extra_apps, caplog):
    app = extra_apps(ALERT_MEMORY_PERCENT=1)
    sampler = observatory(app).sampler
    with caplog.at_level(logging.WARNING, logger="studio"):
        first = sampler.sample()
        sampler.sample()
        sampler.sample()
        assert "memory" in active(app) and first.memory_percent > 1
        observatory(app).alerts.limits["memory"] = 100.0
        sampler.sample()
        sampler.sample()
    assert "memory" not in active(app)
    logged = alerts_logged(caplog, "memory")
    assert len(logged) == 2 and "system memory" in logged[0] and "alert ended" in logged[1]


@pytest.mark.parametrize("threshold", THRESHOLDS, ids=lambda t: t.name)
def test_each_threshold_is_inclusive_and_ignores_missing_figures(threshold):
    limits = {t.setting: 10 for t in THRESHOLDS}
    book = AlertBook(limits, window_seconds=60)
    book.update({threshold.name: 9.99})
    assert book.current() == []
    book.update({threshold.name: None})
    assert book.current() == []
    book.update({threshold.name: 10})
    (alert,) = book.current()
    assert alert.name == threshold.name and alert.value == 10 and alert.limit == 10
    book.update({threshold.name: 12})
    assert book.current()[0].since == alert.since and book.current()[0].value == 12


def test_defaults_match_the_agreed_thresholds(app):
    config = app.config
    assert config["ALERT_QUERY_SECONDS"] == 5
    assert config["ALERT_POOL_PERCENT"] == 80
    assert config["ALERT_MEMORY_PERCENT"] == 85
    assert config["ALERT_ERROR_RATE_PERCENT"] == 5
    assert config["ALERT_POOL_TIMEOUTS"] == 3


def test_cpu_is_not_read_over_a_gap_too_short_to_mean_anything(extra_apps):
    sampler = observatory(extra_apps()).sampler
    readings = [sampler.sample().cpu_percent for _ in range(20)]
    assert readings[0] == 0.0
    assert all(0 <= reading <= 100 * os.cpu_count() for reading in readings)
