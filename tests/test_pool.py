"""The measured pool: checkout waits under contention, timeouts, the busiest moment."""

import logging
import threading
import time

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import text
from sqlalchemy.exc import TimeoutError as PoolTimeout

from studio.extensions import db
from studio.observability import metrics, observatory
from studio.observability.pool import MeasuredPool


def small_pool_app(extra_apps, migrated_app, pool_size, timeout, **settings):
    options = dict(migrated_app.config["SQLALCHEMY_ENGINE_OPTIONS"])
    options.pop("poolclass", None)
    options.update(pool_size=pool_size, max_overflow=0, pool_timeout=timeout)
    return extra_apps(SQLALCHEMY_ENGINE_OPTIONS=options, **settings)


def metric(name, **labels):
    metrics.flush_pending()  # the checkouts this process holds back, as a scrape would
    return REGISTRY.get_sample_value(name, labels) or 0.0


def hold(engine, seconds, taken):
    with engine.connect() as connection:
        connection.execute(text("SELECT 1"))
        taken.set()
        time.sleep(seconds)


def test_a_checkout_that_waits_for_a_busy_connection_is_measured(extra_apps, migrated_app):
    app = small_pool_app(extra_apps, migrated_app, pool_size=1, timeout=10)
    count_before = metric("studio_db_pool_checkout_seconds_count")
    fast_before = metric("studio_db_pool_checkout_seconds_bucket", le="0.1")
    with app.app_context():
        engine = db.engine
        assert isinstance(engine.pool, MeasuredPool)
        taken = threading.Event()
        holder = threading.Thread(target=hold, args=(engine, 0.5, taken))
        holder.start()
        taken.wait(5)
        started = time.perf_counter()
        with engine.connect() as connection:
            waited = time.perf_counter() - started
            connection.execute(text("SELECT 1"))
        holder.join()
        sample = observatory(app).sampler.sample()
    recorded = engine.pool.stats.recent_waits()[-1]
    assert 0.3 < recorded <= waited + 0.01
    assert sample.pool.peak == 1 and sample.pool.capacity == 1
    # Two checkouts: the holder's (fast) and the one that waited (over 0.1 s).
    assert metric("studio_db_pool_checkout_seconds_count") - count_before == 2
    assert metric("studio_db_pool_checkout_seconds_bucket", le="0.1") - fast_before == 1


def test_pool_timeouts_raise_an_alert_that_ends_when_they_leave_the_window(
    extra_apps, migrated_app, caplog
):
    app = small_pool_app(extra_apps, migrated_app, 1, 0.1, ALERT_WINDOW_SECONDS=1)
    timeouts_before = metric("studio_db_pool_timeouts_total")
    alerts_before = metric("studio_alerts_total", alert="pool_timeouts")
    with app.app_context(), caplog.at_level(logging.WARNING, logger="studio"):
        sampler = observatory(app).sampler
        with db.engine.connect():
            for _ in range(3):
                with pytest.raises(PoolTimeout), db.engine.connect():
                    pass
            sample = sampler.sample()
        assert sample.pool.timeouts_in_window == 3 and sample.pool.timeouts_total == 3
        assert "pool_timeouts" in [a.name for a in observatory(app).alerts.current()]
        time.sleep(1.1)
        sampler.sample()
        assert "pool_timeouts" not in [a.name for a in observatory(app).alerts.current()]
    assert metric("studio_db_pool_timeouts_total") - timeouts_before == 3
    assert metric("studio_alerts_total", alert="pool_timeouts") - alerts_before == 1
    logged = [r.getMessage() for r in caplog.records if "pool_timeouts" in r.getMessage()]
    assert len(logged) == 2
    assert logged[0].startswith("alert started: pool_timeouts: 3 pool timeouts (alert at 3)")
    assert logged[1].startswith("alert ended: pool_timeouts after 1 s")


def test_a_busy_pool_raises_the_utilisation_alert(extra_apps, migrated_app):
    app = small_pool_app(extra_apps, migrated_app, pool_size=2, timeout=5)
    with app.app_context():
        sampler, book = observatory(app).sampler, observatory(app).alerts
        first = sampler.sample()
        assert first.pool.busiest == 0 and not book.current()
        with db.engine.connect(), db.engine.connect():
            busy = sampler.sample()
        assert busy.pool.busiest == 2 and busy.pool.utilisation_percent == 100.0
        assert [a.name for a in book.current()] == ["pool_utilisation"]
        # The connections were out until after that sample: the next one still saw them.
        assert sampler.sample().pool.busiest == 2
        calm = sampler.sample()
        assert calm.pool.busiest == 0 and calm.pool.checked_in == 2 and not book.current()


def test_the_history_survives_the_pool_being_recreated(extra_apps, migrated_app):
    app = small_pool_app(extra_apps, migrated_app, pool_size=1, timeout=5)
    with app.app_context():
        with db.engine.connect():
            pass
        stats = db.engine.pool.stats
        db.engine.dispose()
        assert isinstance(db.engine.pool, MeasuredPool) and db.engine.pool.stats is stats
        assert len(stats.recent_waits()) == 1
