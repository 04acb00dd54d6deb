"""The performance page and the alert banner of the admin, and the charts they draw."""

import html
import math
import os
import re
import time

import pytest
from flask import Flask
from jinja2 import Environment, PackageLoader
from sqlalchemy import text

from studio.admin.charts import bars, duration, gauge, line_chart
from studio.extensions import db
from studio.observability import metrics, observatory
from studio.observability.report import ago, clock, requests_per_second
from studio.observability.sampling import PoolFigures, Sample

from .conftest import Admin, make_api, sign_in_as

REFRESH = '<meta http-equiv="refresh" content="5">'
NUMERIC_ATTRIBUTES = re.compile(
    r'\b(x|y|x1|y1|x2|y2|cx|cy|r|width|height|viewBox|points|d|transform)="([^"]*)"'
)


def figure(page: str, name: str) -> str:
    """Return the text of the element marked data-figure=name, tags dropped."""
    found = re.search(rf'data-figure="{name}">(.*?)</d[dt]>', page, re.S)
    assert found, f"no {name} on the page"
    return html.unescape(re.sub(r"<[^>]+>", "", found.group(1))).strip()


def endpoint_count(page: str, endpoint: str) -> int:
    row = re.search(
        rf'<tr data-endpoint="{re.escape(endpoint)}">.*?data-count>([\d,]+)<', page, re.S
    )
    assert row, f"no row for {endpoint}"
    return int(row.group(1).replace(",", ""))


@pytest.fixture
def admin_of(extra_apps):
    """Sign in to another app with its own settings; what it writes is rolled back."""
    opened = []

    def sign_in(**settings) -> tuple[Flask, Admin]:
        other = extra_apps(**settings)
        with other.app_context():
            engine = db.engines[None]
            connection = engine.connect()
            opened.append((other, engine, connection, connection.begin()))
            db.engines[None] = connection
            user_id = make_api(other, "admin").user.id
        client = other.test_client()
        sign_in_as(client, user_id)
        return other, Admin(client)

    yield sign_in
    for other, engine, connection, transaction in opened:
        with other.app_context():
            db.session.remove()
            transaction.rollback()
            connection.close()
            db.engines[None] = engine


@pytest.mark.parametrize("path", ["/admin/performance", "/admin/performance?refresh=0"])
def test_performance_page_needs_sign_in(client, path):
    response = client.get(path)
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login?next=")


def test_page_shows_this_worker_its_requests_pool_and_cache(app, admin, api, make_paint):
    make_paint()
    before = observatory(app).requests.snapshot()
    for _ in range(3):
        assert api.get("/api/v1/paints").status_code == 200
    for _ in range(2):
        assert admin.get("/admin/paints").status_code == 200
    response = admin.get("/admin/performance")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert f'data-figure="pid">{os.getpid()}<' in page and "single process" in page
    for endpoint, made in (("api.list_paints", 3), ("admin.list_paints", 2)):
        assert endpoint_count(page, endpoint) == before.get(endpoint, {"count": 0})["count"] + made
    sampler = observatory(app).sampler
    pool = sampler.engine.pool
    assert figure(page, "size") == str(pool.size())
    assert figure(page, "capacity").startswith(str(pool.size() + sampler.pool_stats.max_overflow))
    checkouts = int(figure(page, "checkouts").split()[0].replace(",", ""))
    assert checkouts == sampler.pool_stats.checkouts >= 1
    assert 'aria-label="Pool in use: ' in page
    hits, misses = int(figure(page, "cache-hits")), int(figure(page, "cache-misses"))
    assert hits >= 1 and misses >= 1  # the second listing came from the cache
    assert figure(page, "cache-hit-rate") == f"{100 * hits / (hits + misses):.0f} %"
    assert figure(page, "cache-state") == "ok"
    assert "<script>" not in page and " style=" not in page


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_slow_queries_are_listed_latest_first(admin_of):
    other, admin = admin_of(SLOW_QUERY_MS=100, SLOW_QUERY_PARAMETERS_MS=250)
    with other.app_context():
        db.session.execute(text("SELECT pg_sleep(0.15) AS first_nap"))
        db.session.execute(text("SELECT pg_sleep(:seconds) AS second_nap"), {"seconds": 0.3})
        db.session.remove()
    page = admin.get("/admin/performance").get_data(as_text=True)
    table = page[page.index('class="slow-queries"') :]
    assert table.index("second_nap") < table.index("first_nap")
    second = re.search(r'<td class="num">([\d,]+)</td>\s*<td class="statement">', table)
    assert int(second.group(1).replace(",", "")) >= 300
    assert 'Parameters: <span class="mono">{&#39;seconds&#39;: 0.3}</span>' in table
    assert table.count("Parameters:") == 1  # the first was too quick to keep its parameters


@pytest.mark.parametrize(
    "settings, banner", [({"ALERT_MEMORY_PERCENT": 1}, True), ({}, False)], ids=["low", "default"]
)
def test_alerts_show_on_every_admin_page(admin_of, settings, banner):
    other, admin = admin_of(**settings)
    observatory(other).sampler.sample()
    for path in ("/admin/", "/admin/paints", "/admin/performance"):
        page = admin.get(path).get_data(as_text=True)
        assert ('class="alert-banner" role="alert"' in page) is banner, path
        if banner:
            assert re.search(r'href="/admin/performance#alerts">System memory \d+ % used', page)
            assert re.search(r"since \d\d:\d\d:\d\d UTC", page)
    page = admin.get("/admin/performance").get_data(as_text=True)
    assert ("No alert is on in any worker." in page) is not banner
    memory = re.search(r"System memory used</th>(.*?)</tr>", page, re.S).group(1)
    assert ('<span class="badge out">On</span>' in memory) is banner


def test_the_sign_in_page_shows_no_alerts(admin_of):
    other, _ = admin_of(ALERT_MEMORY_PERCENT=1)
    observatory(other).sampler.sample()
    page = other.test_client().get("/login").get_data(as_text=True)
    assert "alert-banner" not in page


@pytest.mark.parametrize(
    "query, refreshes",
    [("", True), ("?refresh=0", False), ("?refresh=yes%00", True), ("?refresh=", True)],
)
def test_page_refreshes_itself_unless_paused(admin, query, refreshes):
    response = admin.get(f"/admin/performance{query}")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert (REFRESH in page) is refreshes
    assert ("Resume updates" in page) is not refreshes


def test_page_draws_many_samples(admin_of):
    other, admin = admin_of()
    for _ in range(12):
        observatory(other).sampler.sample()
        admin.get("/admin/")
    page = admin.get("/admin/performance").get_data(as_text=True)
    assert_drawable(page)
    assert re.search(r"Requests per second: now [\d.,]+ req/s, highest [\d.,]+ req/s", page)
    assert re.search(r"Resident memory: now [\d,]+ MiB.*?\(1[34] samples\)", page)


def test_a_fresh_worker_draws_its_first_sample(admin_of):
    _, admin = admin_of()
    page = admin.get("/admin/performance").get_data(as_text=True)
    assert_drawable(page)
    assert "(1 samples)" not in page and "1 sample over 0 s" in page
    assert "No samples yet." in page  # requests per second needs two samples


def assert_drawable(svg: str) -> None:
    """Check every number in the SVG's geometry is finite."""
    found = NUMERIC_ATTRIBUTES.findall(svg)
    assert found
    for name, value in found:
        for number in re.findall(r"[-+]?(?:\d+\.?\d*|\.\d+)|nan|inf", value, re.I):
            assert math.isfinite(float(number)), f'{name}="{value}"'
        assert not re.search(r"nan|inf", value, re.I), f'{name}="{value}"'


MACROS = Environment(loader=PackageLoader("studio"), autoescape=True).get_template("macros.html")


def render(macro: str, chart) -> str:
    """Return a chart as the page's macro draws it."""
    return str(getattr(MACROS.module, macro)(chart, "t"))


def sample(at: float, requests: int, busiest: int = 1, pid: int = 1) -> Sample:
    pool = PoolFigures(5, 15, 4, 1, 0, busiest, 3, 0, 0)
    return Sample(at, pid, requests, 0, pool, 80 * 1024 * 1024, 12.5, 40.0, None)


@pytest.mark.parametrize("count", [0, 1, 2, 120])
def test_line_charts_draw_any_number_of_samples(count):
    history = [sample(1_700_000_000 + 5 * i, 10 * i * i, busiest=i % 4) for i in range(count)]
    rates = requests_per_second(history)
    assert len(rates) == max(count - 1, 0)
    chart = line_chart("Requests per second", rates, unit="req/s")
    assert chart.count == len(rates)
    drawn = render("line_chart", chart)
    if rates:
        assert_drawable(drawn)
        assert f"now {rates[-1][1]:,.1f} req/s" in drawn
    else:
        assert "<svg" not in drawn and "No samples yet." in drawn


def test_line_chart_skips_what_it_cannot_draw():
    chart = line_chart("CPU", [(1.0, math.nan), (2.0, 5.0), (3.0, math.inf), (4.0, 0.0)], unit="%")
    assert chart.count == 2 and chart.highest == "5.0" and chart.latest == "0.0"
    assert_drawable(render("line_chart", chart))
    flat = line_chart("CPU", [(1.0, 0.0), (1.0, 0.0)], unit="%")  # no time passed, nothing used
    assert_drawable(render("line_chart", flat))


def test_rates_leave_out_another_process_and_a_restart():
    history = [
        sample(0, 0),
        sample(5, 50),
        sample(10, 10, pid=2),
        sample(15, 20, pid=2),
        sample(15, 30, pid=2),
    ]
    assert requests_per_second(history) == [(5, 10.0), (15, 2.0)]


@pytest.mark.parametrize("percent", [None, math.nan, -5, 0, 0.4, 50, 79.9, 80, 100, 250])
def test_gauges_stay_on_the_dial(percent):
    dial = gauge("Pool in use", percent, alert_at=80)
    assert 0 <= dial.percent <= 100
    assert dial.level == ("bad" if dial.percent >= 80 else "good")
    drawn = render("gauge", dial)
    assert_drawable(drawn)
    assert f'aria-label="Pool in use: {dial.shown}"' in drawn
    assert ("gauge-value" in drawn) is (dial.percent > 0)


def test_bar_chart_of_timings_leaves_out_what_it_cannot_draw():
    chart = bars(
        "p95",
        [("a", 12.34), ("b", math.nan), ("c", 0.0), ("d", math.inf)],
        unit="ms",
        show="{:.1f}".format,
    )
    assert [bar.label for bar in chart.bars] == ["a", "c"]
    drawn = render("bar_chart", chart)
    assert_drawable(drawn)
    assert "<title>a: 12.3 ms</title>" in drawn
    empty = render("bar_chart", bars("p95", [], empty="No requests yet."))
    assert "No requests yet." in empty and "<svg" not in empty


def test_live_workers_are_counted_by_their_files(tmp_path, monkeypatch):
    for name in ("gauge_liveall_101.db", "gauge_liveall_102.db", "counter_103.db", "x.db"):
        (tmp_path / name).write_bytes(b"")
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    assert metrics.live_worker_pids() == {101, 102}
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR")
    assert metrics.live_worker_pids() == {os.getpid()}


def test_alert_since_is_shown_in_words():
    assert clock(0) == "00:00:00 UTC" and clock(math.inf) == "–" and duration(math.nan) == "0 s"
    now = time.time()
    assert (
        ago(now - 30) == "30 s"
        and ago(now - 600) == "10 min"
        and ago(now - 3 * 3600 - 300) == "3 h 5 min"
    )
    assert ago(now + 60) == "0 s"


def test_page_shows_the_breaker_and_the_database_failures(app, admin, backend):
    page = admin.get("/admin/performance?refresh=0").get_data(as_text=True)
    breaker = figure(page, "breaker")
    assert breaker == ("closed" if backend == "postgresql" else "none (SQLite has no server)")
    for name in ("retries", "unavailable", "breaker-opened", "invalidations-missed", "replays"):
        assert re.fullmatch(r"[\d,]+", figure(page, name)), name
