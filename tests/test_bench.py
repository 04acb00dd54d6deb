"""The benchmark's own parts: its scenarios reach the Lua script, and wrk's figures are read."""

import json
import shutil
import socket
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import parse_qs, urlsplit

import pytest

from bench import load, report, run

CONFIG = {
    "token": "bench-token",
    "first_id": 1,
    "last_id": 50,
    "hot_ids": [7, 11],
    "brands": ["Winsor+%26+Newton"],
    "search_terms": ["blue"],
    "code_prefixes": ["CIT-"],
    "adjectives": ["dark"],
    "colour_names": ["bone"],
    "families": ["Blue"],
    "types": ["Heavy+Body"],
    "cookie": "session=signed",
}
needs_wrk = pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed")


class Recorder(BaseHTTPRequestHandler):
    """Answer 200 to anything but paint 404, and keep what was asked."""

    seen: list[tuple[str, str, str | None, bytes]] = []
    cookies: list[str | None] = []

    def answer(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        auth = self.headers.get("Authorization")
        self.seen.append((self.command, self.path, auth, body))
        self.cookies.append(self.headers.get("Cookie"))
        self.send_response(404 if self.path.endswith("/404") else 200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    do_GET = do_POST = answer

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def recorder():
    Recorder.seen, Recorder.cookies = [], []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", Recorder.seen
    server.shutdown()
    server.server_close()


def drive(
    url: str, scenario: str, tmp_path: Path, count_statuses: bool = False, **changes: object
) -> dict:
    config = tmp_path / "config.lua"
    config.write_text(run.lua_table({**CONFIG, **changes}))
    asked = load.Run(scenario, url, 2, 0, 1, count_statuses)
    started = load.wrk(asked, config, 1, tmp_path / "wrk.log")
    return load.finish(started, 1, tmp_path / "wrk.log")


def test_every_scenario_has_a_server_and_a_request_maker():
    makers = (load.SCRIPT).read_text().split("local makers = {", 1)[1].split("\n}", 1)[0]
    names = {line.split("=")[0].strip() for line in makers.splitlines() if "=" in line}
    for scenario in run.SCENARIOS:
        assert scenario.script in names, scenario.key
        assert scenario.server in run.SERVERS, scenario.key
    keys = {scenario.key for scenario in run.SCENARIOS}
    for group in run.GROUPS.values():
        assert set(group) <= keys


def test_only_takes_groups_and_keeps_the_order():
    args = run.parse_args(["--only", "stats,references"])
    chosen = [scenario.key for scenario in run.chosen_scenarios(args)]
    assert chosen == ["hello", "redis_floor", "peer_detail", "naive_detail", "stats"]
    with pytest.raises(SystemExit):
        run.chosen_scenarios(run.parse_args(["--only", "headlines"]))


def test_the_lua_config_refuses_what_a_url_cannot_carry():
    assert run.lua_table({"token": 'a"b', "ids": [1, 2]}) == (
        'return {\n  token = "a\\"b",\n  ids = {1, 2}\n}\n'
    )
    with pytest.raises(ValueError):
        run.lua_table({"adjectives": ["café"]})


@needs_wrk
@pytest.mark.parametrize(
    ("scenario", "path"),
    [
        ("detail", "/api/v1/paints/"),
        ("hot_detail", "/api/v1/paints/"),
        ("stats", "/api/v1/stats"),
        ("low_stock", "/api/v1/paints?stock=low_stock&sort="),
        ("activity", "/api/v1/activity"),
        ("page_one", "/api/v1/paints?sort="),
        ("broad_search", "/api/v1/paints?q=blue"),
        ("two_words", "/api/v1/paints?q=dark%20bone"),
        ("deep_page", "/api/v1/paints?page=20000"),
        ("dashboard", "/admin/"),
    ],
)
def test_wrk_sends_the_scenarios_requests_with_the_token(recorder, tmp_path, scenario, path):
    url, seen = recorder
    printed = drive(url, scenario, tmp_path)
    assert printed["requests"] > 0 and printed["status_errors"] == 0
    # The dashboard is a browser's page: its session cookie, no token.
    token = None if scenario == "dashboard" else "Bearer bench-token"
    assert {auth for _, _, auth, _ in seen} == {token}
    assert all(asked.startswith(path) for _, asked, _, _ in seen)
    if scenario == "hot_detail":
        assert {asked for _, asked, _, _ in seen} == {"/api/v1/paints/7", "/api/v1/paints/11"}
    if scenario == "detail":
        assert {int(asked.rsplit("/", 1)[1]) for _, asked, _, _ in seen} <= set(range(1, 51))
    if scenario == "dashboard":
        assert set(Recorder.cookies) == {"session=signed"}


@needs_wrk
def test_one_filter_asks_for_each_filter_in_every_order(recorder, tmp_path):
    url, seen = recorder
    drive(url, "one_filter", tmp_path)
    asked = {path.split("?", 1)[1].split("=", 1)[0] for _, path, _, _ in seen}
    assert asked == {"brand", "color_family", "color_type", "stock"}
    orders = {path.rsplit("sort=", 1)[1] for _, path, _, _ in seen}
    assert len(orders) == 10


@needs_wrk
def test_the_mix_sends_reads_and_stock_adjustments(recorder, tmp_path):
    url, seen = recorder
    drive(url, "mix", tmp_path)
    posts = [(asked, body) for method, asked, _, body in seen if method == "POST"]
    assert posts and all(asked.endswith("/stock") for asked, _ in posts)
    assert {auth for _, _, auth, _ in seen} == {"Bearer bench-token"}
    assert json.loads(posts[0][1]) == {"delta": 1, "reason": "bench"}
    lists = [parse_qs(urlsplit(asked).query) for _, asked, _, _ in seen if "brand=" in asked]
    assert lists and lists[0]["brand"] == ["Winsor & Newton"]
    assert 0.8 < 1 - len(posts) / len(seen) < 0.97


@needs_wrk
def test_answers_above_399_are_errors(recorder, tmp_path):
    url, _ = recorder
    printed = drive(url, "detail", tmp_path, first_id=404, last_id=404)
    assert printed["requests"] > 0
    assert printed["status_errors"] == printed["requests"]
    assert load.figures(printed)["errors"] == printed["requests"]


@needs_wrk
def test_counted_statuses_name_the_failed_answers(recorder, tmp_path):
    url, seen = recorder
    printed = drive(url, "mix", tmp_path, count_statuses=True, first_id=404, last_id=404)
    # Details of paint 404 fail; its stock adjustments, lists, searches and stats do not.
    failed = sum(1 for _, asked, _, _ in seen if asked == "/api/v1/paints/404")
    assert set(printed["statuses"]) == {"200", "404"}
    stats = load.figures(printed)
    assert stats["error_kinds"] == {"status 404": printed["statuses"]["404"]}
    assert 0 < stats["errors"] <= failed


def test_figures_sum_every_kind_of_error():
    printed = {
        "requests": 2000,
        "duration_us": 2_000_000,
        "connect_errors": 1,
        "read_errors": 0,
        "write_errors": 0,
        "status_errors": 5,
        "timeouts": 2,
        "mean_us": 1500.0,
        "max_us": 9000,
        "p50_us": 1200,
        "p90_us": 2000,
        "p95_us": 2500,
        "p99_us": 4000,
    }
    stats = load.figures(printed)
    assert stats["rps"] == 1000 and stats["p99_ms"] == 4
    assert stats["errors"] == 8
    assert stats["error_kinds"] == {"connect_errors": 1, "status_errors": 5, "timeouts": 2}


def test_wrk_failing_is_reported_with_its_output(tmp_path):
    log = tmp_path / "wrk.log"
    with log.open("w") as output:
        process = subprocess.Popen(["sh", "-c", "echo unable to connect; exit 1"], stdout=output)
    with pytest.raises(RuntimeError, match="unable to connect"):
        load.finish(process, 1, log)


def measured_round(key: str, rps: float, p95: float) -> dict:
    figures = dict.fromkeys(("p50_ms", "p90_ms", "p99_ms", "avg_ms", "max_ms"), 1.0)
    return {
        "key": key,
        "title": key,
        "server": "s",
        "clients": 8,
        "description": "",
        "cache_counted": "hot",
        "requests": int(rps * 10),
        "errors": 1,
        "error_kinds": {"status_errors": 1},
        "rps": rps,
        "p95_ms": p95,
        **figures,
        "load_generator_saturated": False,
        "cpu": None,
        "cache": {"hits": 9, "misses": 1, "hit_rate": 0.9},
    }


def test_rounds_give_medians_and_each_ratio_is_the_median_of_the_rounds_ratios():
    studio = run.combined([measured_round("a", rps, 5) for rps in (100, 300, 200)])
    reference = run.combined([measured_round("b", rps, 2) for rps in (100, 600, 1000)])
    assert studio["rps"] == 200 and studio["p95_ms"] == 5
    assert studio["requests"] == 6000 and studio["errors"] == 3
    assert studio["cache"] == {"hits": 27, "misses": 3, "hit_rate": 0.9}
    # Per round 1.0, 0.5, 0.2: the median 0.5, not 200 / 600.
    assert report.ratio({"scenarios": [studio, reference]}, "a", "b") == 0.5
    assert run.combined([measured_round("a", 100, 5)])["rps"] == 100


def test_a_refused_metrics_copy_does_not_end_the_run(tmp_path, capsys):
    bench = run.Bench(run.parse_args([]), tmp_path)
    bench.seeded = SimpleNamespace(token="bench-token")
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{closed.getsockname()[1]}"
    server = SimpleNamespace(app="wsgi:app", env={}, url=url, log=tmp_path / "gunicorn.log")
    bench.save_metrics(server)
    assert "no copy of /metrics" in capsys.readouterr().out
    assert not (tmp_path / "gunicorn.metrics.txt").exists()


def test_gunicorn_modes_reports_medians_the_most_connections_and_every_error():
    from bench import gunicorn_modes

    def rounds(rps, connections, errors):
        return [
            {"rps": r, "p99_ms": r / 10, "errors": e, "connections": c, "active_connections": c}
            for r, c, e in zip(rps, connections, errors, strict=True)
        ]

    found = {"sync": {"mix": rounds([100, 300, 200], [3, 7, 5], [0, 2, 1])}}
    (cell,) = gunicorn_modes.summary({"rounds": found})["sync"].values()
    assert (cell["rps"], cell["p99_ms"], cell["connections"], cell["errors"]) == (200, 20, 7, 3)
