"""The measured pool: checkouts, timeouts, the busiest moment (from events and public counts)."""

import logging
import threading
import time

from prometheus_client import REGISTRY
from sqlalchemy import text

from studio.extensions import db
from studio.observability import metrics, observatory

UNKNOWN_TOKEN = "Bearer stu_" + "x" * 43


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


def test_checkouts_and_the_busiest_moment_are_measured(extra_apps, migrated_app):
    app = small_pool_app(extra_apps, migrated_app, pool_size=1, timeout=10)
    count_before = metric("studio_db_pool_checkouts_total")
    with app.app_context():
        engine = db.engine
        taken = threading.Event()
        holder = threading.Thread(target=hold, args=(engine, 0.3, taken))
        holder.start()
        taken.wait(5)
        with engine.connect() as connection:  # waits for the holder's connection
            connection.execute(text("SELECT 1"))
        holder.join()
        sample = observatory(app).sampler.sample()
    assert sample.pool.peak == 1 and sample.pool.capacity == 1
    assert observatory(app).sampler.pool_stats.checkouts == 2
    assert metric("studio_db_pool_checkouts_total") - count_before == 2


def test_pool_timeouts_raise_an_alert_that_ends_when_they_leave_the_window(
    extra_apps, migrated_app, caplog
):
    app = small_pool_app(extra_apps, migrated_app, 1, 0.1, ALERT_WINDOW_SECONDS=1)
    timeouts_before = metric("studio_db_pool_timeouts_total")
    alerts_before = metric("studio_alerts_total", alert="pool_timeouts")
    client = app.test_client()
    with app.app_context(), caplog.at_level(logging.WARNING, logger="studio"):
        sampler = observatory(app).sampler
        with db.engine.connect():  # the pool's only connection
            for _ in range(3):
                # Looking the token up needs a connection: 503 after pool_timeout.
                response = client.get("/api/v1/paints", headers={"Authorization": UNKNOWN_TOKEN})
                assert response.status_code == 503
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


def test_checkouts_are_still_counted_after_the_pool_is_recreated(extra_apps, migrated_app):
    app = small_pool_app(extra_apps, migrated_app, pool_size=1, timeout=5)
    stats = observatory(app).sampler.pool_stats
    with app.app_context():
        with db.engine.connect():
            pass
        db.engine.dispose()  # the engine swaps in a new pool
        with db.engine.connect():
            pass
    assert stats.checkouts == 2
