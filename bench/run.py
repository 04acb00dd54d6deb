"""The benchmark in one command: `.venv/bin/python -m bench.run [--paints 100000]`.

Seeds a dedicated PostgreSQL database, serves studio (cache on, off, observability on and
off) and four references (a bare Flask hello-world, Flask with one Redis GET, a pooled
Flask-SQLAlchemy peer and a naive NullPool app) each under `gunicorn APP` with the
production settings, drives every scenario with wrk from a separate process, and writes the
table to bench/results/. Every process it starts is stopped again, on Ctrl-C or failure too.
"""

import argparse
import json
import os
import random
import secrets
import shutil
import signal
import statistics
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import groupby
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

from sqlalchemy.engine import make_url

from studio.services.demo import ADJECTIVES, BRANDS, FAMILIES

from . import cpu, database, report
from .browser import Browser
from .load import Run, run_wrk, wrk_version
from .processes import REPO, Gunicorn, gunicorn_settings

CACHE_KEY_PREFIX = "studio-bench:"
# bench/redis_floor.py's bodies, under studio's prefix so that forgetting the cache drops them.
FLOOR_PREFIX = CACHE_KEY_PREFIX + "floor:"
HOT_SET_SIZE = 1000
# Above this much CPU in use (% of one core) before the run, warn that results will suffer.
BUSY_MACHINE_PERCENT = 25
# Settings of the caller's shell that would change how studio or gunicorn runs.
FOREIGN_PREFIXES = (
    "DATABASE_",
    "DB_",
    "CACHE_",
    "REDIS_",
    "RATELIMIT_",
    "FLASK_",
    "STUDIO_",
    "ALERT_",
    "METRICS_",
    "PROMETHEUS_",
)
FOREIGN_NAMES = (
    "PORT SECRET_KEY WEB_CONCURRENCY GUNICORN_CMD_ARGS DYNO RAILWAY_ENVIRONMENT PROXY_HOPS "
    "FORCE_HTTPS LOW_STOCK_THRESHOLD MAX_CONTENT_LENGTH SESSION_COOKIE_SECURE LOG_LEVEL "
    "PAINT_CACHE_TTL LIST_CACHE_TTL STATS_CACHE_TTL AUTH_CACHE_TTL OBSERVABILITY "
    "ALLOWED_HOSTS HSTS IMAGE_HOSTS SERVER_TIMING"
).split()


@dataclass(frozen=True)
class Server:
    """A WSGI app served by `gunicorn APP`, with the settings it adds to studio's."""

    name: str
    app: str
    env: dict[str, str] = field(default_factory=dict)
    # A path that answers 200 once every worker is up ({paint} is one of the hot set's ids).
    probe: str = "/api/v1/paints/{paint}"

    @property
    def uses_studio_cache(self) -> bool:
        return self.app == "wsgi:app" and self.env.get("CACHE_TYPE") != "NullCache"

    @property
    def slug(self) -> str:
        return self.name.replace(",", "").replace(" ", "-")


SERVERS = {
    server.name: server
    for server in (
        Server("bare Flask", "bench.hello:app", probe="/"),
        Server("Flask + Redis GET", "bench.redis_floor:app", {"REDIS_FLOOR_PREFIX": FLOOR_PREFIX}),
        Server("pooled peer", "bench.peer:app"),
        Server("naive", "bench.naive:app"),
        Server(
            "studio, cache off, unobserved",
            "wsgi:app",
            {"CACHE_TYPE": "NullCache", "OBSERVABILITY": "false"},
        ),
        Server("studio, cache off", "wsgi:app", {"CACHE_TYPE": "NullCache"}),
        Server("studio, unobserved", "wsgi:app", {"OBSERVABILITY": "false"}),
        Server("studio", "wsgi:app"),
    )
}


@dataclass(frozen=True)
class Scenario:
    key: str
    title: str
    server: str
    # The request maker in bench/wrk/scenarios.lua.
    script: str
    description: str
    mix: bool = False
    # "hot": cache hits and misses are counted and go into the hit-rate target;
    # "counted": counted and shown only (random ids over all paints mostly miss).
    cache: str = ""
    extra: bool = False


SCENARIOS = (
    Scenario(
        "hello",
        "bare Flask hello-world (ceiling)",
        "bare Flask",
        "hello",
        '`GET /` on bench/hello.py, a Flask app that returns `{"hello": "world"}`.',
    ),
    Scenario(
        "redis_floor",
        "Flask + one Redis GET (floor of a cached read)",
        "Flask + Redis GET",
        "hot_detail",
        "`GET /api/v1/paints/<id>` over the hot set on bench/redis_floor.py: one `redis.get`"
        " of the paint's stored JSON body, returned as it is; no token, no database.",
    ),
    Scenario(
        "peer_detail",
        "pooled Flask-SQLAlchemy peer paint detail",
        "pooled peer",
        "detail",
        "`GET /api/v1/paints/<id>` on bench/peer.py (QueuePool 5 with pre-ping, token checked"
        " by a query, `db.get_or_404`, no cache), ids uniform over every paint.",
    ),
    Scenario(
        "naive_detail",
        "naive paint detail (NullPool baseline)",
        "naive",
        "detail",
        "`GET /api/v1/paints/<id>` on bench/naive.py (NullPool, token checked by a query,"
        " `db.session.get`, no cache), ids uniform over every paint.",
    ),
    Scenario(
        "uncached_detail_unobserved",
        "uncached paint detail, observability off",
        "studio, cache off, unobserved",
        "detail",
        "As *uncached paint detail*, with OBSERVABILITY=false: no timing hooks, query"
        " events or measured pool, to price them.",
        extra=True,
    ),
    Scenario(
        "uncached_detail",
        "uncached paint detail",
        "studio, cache off",
        "detail",
        "`GET /api/v1/paints/<id>` with CACHE_TYPE=NullCache (token and paint read from"
        " PostgreSQL each time), ids uniform over every paint.",
    ),
    Scenario(
        "uncached_list",
        "filtered list, cache off",
        "studio, cache off",
        "list",
        "As *filtered list*, with CACHE_TYPE=NullCache: what each listing costs PostgreSQL.",
        extra=True,
    ),
    Scenario(
        "uncached_search",
        "word search, cache off",
        "studio, cache off",
        "search",
        "As *word search*, with CACHE_TYPE=NullCache.",
        extra=True,
    ),
    Scenario(
        "code_search",
        "code-fragment search, cache off",
        "studio, cache off",
        "code_search",
        "`GET /api/v1/paints?q=FRAGMENT` with CACHE_TYPE=NullCache: 4 to 6 digits in a row"
        " out of a random paint's code number (`00009` of CIT-000099), or half the time a"
        " brand's code prefix and the number's first 4 to 6 digits (`CIT-0000`).",
        extra=True,
    ),
    Scenario(
        "name_search",
        "name-prefix search, cache off",
        "studio, cache off",
        "name_search",
        "`GET /api/v1/paints?q=ADJ+COL` with CACHE_TYPE=NullCache: the first 3 or 4 letters of"
        " one of the demo data's adjectives and of a colour name (`dar bon`).",
        extra=True,
    ),
    Scenario(
        "page_one",
        "page 1 in each order, cache off",
        "studio, cache off",
        "page_one",
        "`GET /api/v1/paints?sort=O`, O any of the ten orders (name, brand, stock, price,"
        " created_at, each either way), with CACHE_TYPE=NullCache.",
        extra=True,
    ),
    Scenario(
        "one_filter",
        "one filter in any order, cache off",
        "studio, cache off",
        "one_filter",
        "`GET /api/v1/paints?F=V&sort=O`: one of brand, color_family, color_type or stock,"
        " in any of the ten orders, with CACHE_TYPE=NullCache.",
        extra=True,
    ),
    Scenario(
        "broad_search",
        "broad word `q=blue`, cache off",
        "studio, cache off",
        "broad_search",
        "`GET /api/v1/paints?q=blue` with CACHE_TYPE=NullCache: about a tenth of the demo"
        " paints match (every blue one's description).",
        extra=True,
    ),
    Scenario(
        "two_words",
        "two words `q=dark bone`, cache off",
        "studio, cache off",
        "two_words",
        "`GET /api/v1/paints?q=dark%20bone` with CACHE_TYPE=NullCache.",
        extra=True,
    ),
    Scenario(
        "deep_page",
        "page 20,000, cache off",
        "studio, cache off",
        "deep_page",
        "`GET /api/v1/paints?page=20000` (20 a page, by name) with CACHE_TYPE=NullCache.",
        extra=True,
    ),
    Scenario(
        "dashboard",
        "dashboard, cache off",
        "studio, cache off",
        "dashboard",
        "`GET /admin/` signed in as the benchmark's admin (the HTML page with every figure),"
        " with CACHE_TYPE=NullCache.",
        extra=True,
    ),
    Scenario(
        "low_stock",
        "low-stock filter, cache off",
        "studio, cache off",
        "low_stock",
        "`GET /api/v1/paints?stock=low_stock&sort=O`, half the time with `&brand=B`, with"
        " CACHE_TYPE=NullCache: low stock by each paint's own reorder level, page 1.",
        extra=True,
    ),
    Scenario(
        "activity",
        "activity page, cache off",
        "studio, cache off",
        "activity",
        "`GET /api/v1/activity`, or `?kind=import|stock|edit`, with CACHE_TYPE=NullCache: the"
        " shop-wide history's first page (seed-demo writes one entry per paint).",
        extra=True,
    ),
    Scenario(
        "uncached_stats",
        "stats, cache off",
        "studio, cache off",
        "stats",
        "As *stats*, with CACHE_TYPE=NullCache.",
        extra=True,
    ),
    Scenario(
        "cached_detail_unobserved",
        "cached paint detail, observability off",
        "studio, unobserved",
        "hot_detail",
        "As *cached paint detail*, with OBSERVABILITY=false.",
        cache="hot",
    ),
    Scenario(
        "random_detail_unobserved",
        "paint detail on random ids, observability off",
        "studio, unobserved",
        "detail",
        "As *paint detail on random ids*, with OBSERVABILITY=false.",
        cache="counted",
    ),
    Scenario(
        "cached_detail",
        "cached paint detail",
        "studio",
        "hot_detail",
        f"`GET /api/v1/paints/<id>` over a hot set of {HOT_SET_SIZE:,} ids drawn at random"
        " from all paints (it fits the Redis cache; the warm-up fills it).",
        cache="hot",
    ),
    Scenario(
        "random_detail",
        "paint detail on random ids",
        "studio",
        "detail",
        "`GET /api/v1/paints/<id>`, ids uniform over every paint, cache on: mostly misses"
        " (each studio server starts on an empty cache), each then stored in Redis.",
        cache="counted",
    ),
    Scenario(
        "filtered_list",
        "filtered list",
        "studio",
        "list",
        "`GET /api/v1/paints?brand=B&stock=S&sort=O&page=P`: 12 brands x in/low/out of"
        " stock x sort -price/name/-created_at x pages 1-3 (324 distinct listings).",
        cache="hot",
    ),
    Scenario(
        "search",
        "word search",
        "studio",
        "search",
        "`GET /api/v1/paints?q=WORD`: one of the demo data's colour names and adjectives.",
        cache="hot",
    ),
    Scenario("stats", "stats", "studio", "stats", "`GET /api/v1/stats`.", cache="hot"),
    Scenario(
        "mix",
        "90/10 read/write mix",
        "studio",
        "mix",
        "Detail (any id) 60 %, filtered list 10 %, search 10 %, stats 10 %, and 10 %"
        ' `POST /api/v1/paints/<id>/stock` `{"delta": 1, "reason": "bench"}` (any id).',
        mix=True,
    ),
    Scenario(
        "mix_detail",
        "90/10 mix, detail reads only",
        "studio",
        "mix_detail",
        "Detail (any id) 90 % and the same stock adjustments 10 %: the mix without the"
        " listings, searches and figures that writes retire.",
        mix=True,
        extra=True,
    ),
)


# Named sets of scenarios for --only: the headline rows take a few minutes.
GROUPS = {
    "headline": (
        "hello",
        "redis_floor",
        "peer_detail",
        "naive_detail",
        "uncached_detail",
        "cached_detail_unobserved",
        "random_detail_unobserved",
        "cached_detail",
        "random_detail",
    ),
    "references": ("hello", "redis_floor", "peer_detail", "naive_detail"),
    "observability": (
        "cached_detail_unobserved",
        "random_detail_unobserved",
        "cached_detail",
        "random_detail",
    ),
    "history": ("low_stock", "activity"),
    # Issue 16's bar at 1,000,000 paints: what each read costs PostgreSQL, cache off.
    "million": (
        "page_one",
        "one_filter",
        "broad_search",
        "two_words",
        "code_search",
        "deep_page",
        "uncached_stats",
        "dashboard",
        "low_stock",
    ),
    "targets": (
        "filtered_list",
        "search",
        "stats",
        "mix",
    ),
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n")[0])
    parser.add_argument("--paints", type=int, default=100_000, help="paints to seed (100000)")
    parser.add_argument("--duration", type=float, default=20, help="seconds measured (20)")
    parser.add_argument("--warmup", type=float, default=5, help="seconds of warm-up (5)")
    parser.add_argument("--clients", type=int, default=8, help="clients for reads (8)")
    parser.add_argument("--mix-clients", type=int, default=32, help="clients for the mix (32)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (2)")
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="serve every server at once and measure each scenario this many times, in turns (1)",
    )
    parser.add_argument("--reuse", action="store_true", help="keep a database seeded with N")
    parser.add_argument("--skip-extras", action="store_true", help="no cache-off list/search/stats")
    parser.add_argument(
        "--only",
        help="comma-separated scenario keys or groups ("
        + ", ".join(GROUPS)
        + "); --list shows them",
    )
    parser.add_argument("--list", action="store_true", help="list scenarios and groups, then stop")
    parser.add_argument(
        "--database-url", default="postgresql://postgres@127.0.0.1:5432/studio_bench"
    )
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/15")
    return parser.parse_args(argv)


def chosen_scenarios(args: argparse.Namespace) -> list[Scenario]:
    keys = None
    if args.only:
        keys = set()
        for name in args.only.split(","):
            keys.update(GROUPS.get(name, (name,)))
    unknown = (keys or set()) - {s.key for s in SCENARIOS}
    if unknown:
        raise SystemExit(f"Unknown scenario(s): {', '.join(sorted(unknown))}")
    return [
        s
        for s in SCENARIOS
        if (keys is None or s.key in keys) and not (s.extra and args.skip_extras and not keys)
    ]


def studio_env(
    database_url: str, redis_url: str, workers: int, cache_key_prefix: str = CACHE_KEY_PREFIX
) -> dict[str, str]:
    """Return the environment of a production deployment on this machine's services."""
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in FOREIGN_NAMES and not name.startswith(FOREIGN_PREFIXES)
    }
    env.update(
        STUDIO_ENV="production",
        DATABASE_URL=database_url,
        DATABASE_SSLMODE="disable",
        SECRET_KEY=secrets.token_hex(32),
        REDIS_URL=redis_url,
        CACHE_KEY_PREFIX=cache_key_prefix,
        WEB_CONCURRENCY=str(workers),
        # Plain HTTP on the loopback: the dashboard's session cookie may not be Secure-only.
        SESSION_COOKIE_SECURE="false",
    )
    return env


def load_config(seeded: database.Seeded) -> dict[str, Any]:
    """Return what the wrk scenarios need: the token, the ids and the words to ask for."""
    ids = range(seeded.first_id, seeded.last_id + 1)
    words = {name.lower() for _, names in FAMILIES.values() for name in names}
    words |= {adjective.lower() for adjective in ADJECTIVES}
    return {
        "token": seeded.token,
        "first_id": seeded.first_id,
        "last_id": seeded.last_id,
        "hot_ids": random.Random(1).sample(ids, min(HOT_SET_SIZE, len(ids))),
        "brands": [quote_plus(brand) for brand in BRANDS],
        "families": [quote_plus(family) for family in FAMILIES],
        "types": sorted({quote_plus(kind) for _, _, kinds in BRANDS.values() for kind in kinds}),
        # The dashboard's session, once a studio server has signed the admin in.
        "cookie": "",
        "search_terms": sorted(quote_plus(word) for word in words),
        "code_prefixes": sorted({prefix for prefix, _, _ in BRANDS.values()}),
        "adjectives": sorted(adjective.lower() for adjective in ADJECTIVES),
        "colour_names": sorted({name.lower() for _, names in FAMILIES.values() for name in names}),
    }


def lua_table(config: Mapping[str, Any]) -> str:
    """Return the config as a Lua chunk that bench/wrk/scenarios.lua loads with dofile."""

    def value(item: Any) -> str:
        if isinstance(item, list):
            return "{" + ", ".join(value(element) for element in item) + "}"
        if isinstance(item, str) and not item.isascii():
            raise ValueError(f"not ASCII, as the URLs must be: {item!r}")
        # JSON's numbers and its escapes of ASCII strings read the same in Lua.
        return json.dumps(item)

    fields = ",\n".join(f"  {name} = {value(item)}" for name, item in config.items())
    return "return {\n" + fields + "\n}\n"


def cache_status(env: Mapping[str, str]) -> dict[str, int]:
    """Return studio's cache counters, summed over the workers through Redis."""
    printed = database.flask(env, "cache-status")
    status = dict(line.split(": ", 1) for line in printed.splitlines() if ": " in line)
    return {name: int(status[name]) for name in ("hits", "misses", "errors")}


def flush_counters(server: Gunicorn, token: str) -> None:
    """Make every worker push its last second of cache counts to Redis.

    A worker adds its counts to Redis at most once a second, on its next cache lookup, so
    after a scenario some are still held; a few requests a second later carry them over.
    """
    time.sleep(1.2)
    request = urllib.request.Request(
        server.url + "/api/v1/paints/1", headers={"Authorization": f"Bearer {token}"}
    )

    def send(_: int) -> None:
        urllib.request.urlopen(request, timeout=10).close()

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(send, range(20)))


def counted(before: dict[str, int], after: dict[str, int]) -> dict[str, Any]:
    hits, misses = after["hits"] - before["hits"], after["misses"] - before["misses"]
    lookups = hits + misses
    rate = round(hits / lookups, 4) if lookups else None
    return {"hits": hits, "misses": misses, "hit_rate": rate}


class Bench:
    """One benchmark run: its settings, the seeded database and the results so far."""

    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args = args
        self.env = studio_env(args.database_url, args.redis_url, args.workers)
        self.raw = report.RESULTS / "raw"
        self.workdir = workdir
        self.database = make_url(args.database_url).database or ""
        self.results: dict[str, Any] = {"scenarios": []}

    def run(self, scenarios: list[Scenario], started: datetime) -> dict[str, Any]:
        self.results.update(
            started_at=started.strftime("%Y-%m-%d %H:%M UTC"),
            machine=report.machine(),
            git=report.git_state(),
            settings=self.prepare(),
        )
        if self.args.rounds > 1:
            self.take_turns(scenarios, self.args.rounds)
        else:
            for server_name, group in groupby(scenarios, key=lambda s: s.server):
                with ExitStack() as stack:
                    server = self.start(SERVERS[server_name], stack)
                    for scenario in group:
                        self.results["scenarios"].append(self.measure(scenario, server))
                    self.save_metrics(server)
        self.results["cache"] = self.total_cache()
        self.results["finished_at"] = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
        report.evaluate(self.results)
        return self.results

    def prepare(self) -> dict[str, Any]:
        args = self.args
        shutil.rmtree(self.raw, ignore_errors=True)
        self.raw.mkdir(parents=True)
        background = cpu.background()
        if background["all"] > BUSY_MACHINE_PERCENT:
            print(
                f"Warning: before starting, the machine is {background['all']:.0f} % busy"
                f" ({background['busiest_other'] or 'short-lived processes'}): the servers will"
                " get less CPU than they would alone, and the results will show it."
            )
        print(f"Preparing {args.database_url.rsplit('/', 1)[-1]} with {args.paints:,} paints ...")
        self.seeded = database.prepare(args.database_url, self.env, args.paints, args.reuse)
        database.forget_cache(args.redis_url, CACHE_KEY_PREFIX)
        self.load_config = load_config(self.seeded)
        self.config = self.workdir / "config.lua"
        self.config.write_text(lua_table(self.load_config))
        settings = gunicorn_settings("wsgi:app", self.env)
        return {
            "paints": args.paints,
            "reused_database": self.seeded.reused,
            "seed_seconds": self.seeded.seed_seconds,
            "warmup_s": args.warmup,
            "duration_s": args.duration,
            "rounds": args.rounds,
            "gunicorn_settings": settings,
            "gunicorn": ", ".join(f"{key} {value}" for key, value in settings.items()),
            "wrk": wrk_version(),
            "postgres": database.server_version(args.database_url),
            "redis": database.redis_version(args.redis_url),
            "background_cpu": background,
        }

    def server_env(self, server: Server) -> dict[str, str]:
        env = {**self.env, **server.env}
        if server.uses_studio_cache:
            # A cache of its own: no studio server reads what another one stored.
            env["CACHE_KEY_PREFIX"] = f"{CACHE_KEY_PREFIX}{server.slug}:"
        return env

    def start(self, server: Server, stack: ExitStack) -> Gunicorn:
        """Serve an app (on an empty cache of its own) until `stack` closes; wait for it."""
        env = self.server_env(server)
        settings = gunicorn_settings(server.app, env)
        if settings != self.results["settings"]["gunicorn_settings"]:
            raise RuntimeError(f"gunicorn settings differ for {server.app}: {settings}")
        if server.uses_studio_cache:
            database.forget_cache(self.args.redis_url, env["CACHE_KEY_PREFIX"])
        if server.app == "bench.redis_floor:app":
            hot_ids = self.load_config["hot_ids"]
            database.store_floor_bodies(
                self.args.database_url, self.args.redis_url, FLOOR_PREFIX, hot_ids
            )
        log = self.raw / f"gunicorn-{server.slug}.log"
        gunicorn = stack.enter_context(Gunicorn(server.app, env, log))
        probe = server.probe.format(paint=self.load_config["hot_ids"][0])
        gunicorn.wait_ready(probe, {"Authorization": f"Bearer {self.seeded.token}"})
        if server.app == "wsgi:app" and not self.load_config["cookie"]:
            self.sign_in(gunicorn)
        return gunicorn

    def sign_in(self, server: Gunicorn) -> None:
        """Sign the admin in for the dashboard; every studio server shares the secret key."""
        browser = Browser(server.url)
        browser.sign_in(database.ADMIN, database.PASSWORD)
        self.load_config["cookie"] = browser.cookie_header()
        self.config.write_text(lua_table(self.load_config))

    def take_turns(self, scenarios: list[Scenario], rounds: int) -> None:
        """Serve every server at once and measure the scenarios in turns, `rounds` times.

        On a shared machine the load from other work changes within minutes; in turns, each
        round's ratios compare figures taken seconds apart, and their median is steadier than
        one figure per scenario. The order alternates, so none always follows another.
        """
        with ExitStack() as stack:
            servers = {name: None for name in (s.server for s in scenarios)}
            for name in servers:
                servers[name] = self.start(SERVERS[name], stack)
            measured: dict[str, list[dict[str, Any]]] = {s.key: [] for s in scenarios}
            for number in range(rounds):
                print(f"Round {number + 1} of {rounds}", flush=True)
                order = scenarios if number % 2 == 0 else scenarios[::-1]
                for scenario in order:
                    found = self.measure(scenario, servers[scenario.server], number + 1)
                    measured[scenario.key].append(found)
            for server in servers.values():
                self.save_metrics(server)
        self.results["scenarios"] = [combined(measured[s.key]) for s in scenarios]

    def save_metrics(self, server: Gunicorn) -> None:
        """Keep what studio's /metrics said (for `flask tune --metrics-file`), if it says any.

        A server without observability may have no /metrics at all; the figures measured
        matter more than this copy, so a refusal is noted, not raised.
        """
        if server.app != "wsgi:app" or server.env.get("OBSERVABILITY") == "false":
            return
        request = urllib.request.Request(
            server.url + "/metrics", headers={"Authorization": f"Bearer {self.seeded.token}"}
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                server.log.with_suffix(".metrics.txt").write_bytes(response.read())
        except (urllib.error.URLError, OSError) as error:
            print(f"  (no copy of /metrics from {server.url}: {error})")

    def measure(
        self, scenario: Scenario, server: Gunicorn, round_number: int | None = None
    ) -> dict[str, Any]:
        args = self.args
        clients = args.mix_clients if scenario.mix else args.clients
        print(f"  {scenario.title}: {clients} clients on {scenario.server} ...", flush=True)
        before = cache_status(server.env) if scenario.cache else None
        run = Run(scenario.script, server.url, clients, args.warmup, args.duration, scenario.mix)
        raw = self.raw / (f"{scenario.key}-{round_number}" if round_number else scenario.key)
        stats = run_wrk(run, self.config, raw, server.pids, self.database)
        if before is not None:
            flush_counters(server, self.seeded.token)
            stats["cache"] = counted(before, cache_status(server.env))
        print(
            f"    {stats['rps']:,.0f} req/s, p50 {stats['p50_ms']} ms, p95 {stats['p95_ms']} ms,"
            f" p99 {stats['p99_ms']} ms, {stats['errors']} errors"
        )
        return {
            "key": scenario.key,
            "title": scenario.title,
            "server": scenario.server,
            "clients": clients,
            "description": scenario.description,
            "cache_counted": scenario.cache,
            **stats,
        }

    def total_cache(self) -> dict[str, Any] | None:
        counts = [
            s["cache"]
            for s in self.results["scenarios"]
            if s.get("cache") and s["cache_counted"] == "hot"
        ]
        if not counts:
            return None
        zero = {"hits": 0, "misses": 0}
        total = {name: sum(count[name] for count in counts) for name in zero}
        return counted(zero, total)


def combined(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Return one scenario's rounds as one: medians of req/s and latencies, sums of counts."""
    first = rounds[0]
    if len(rounds) == 1:
        return first
    names = ("key", "title", "server", "clients", "description", "cache_counted")
    result: dict[str, Any] = {name: first[name] for name in names}
    result["requests"] = sum(r["requests"] for r in rounds)
    result["errors"] = sum(r["errors"] for r in rounds)
    kinds: Counter[str] = Counter()
    for found in rounds:
        kinds.update(found["error_kinds"])
    result["error_kinds"] = dict(kinds)
    for name in ("rps", "p50_ms", "p90_ms", "p95_ms", "p99_ms", "avg_ms"):
        result[name] = round(statistics.median(r[name] for r in rounds), 2)
    result["max_ms"] = max(r["max_ms"] for r in rounds)
    result["rounds_rps"] = [r["rps"] for r in rounds]
    result["load_generator_saturated"] = any(r["load_generator_saturated"] for r in rounds)
    cpus = [r["cpu"] for r in rounds if r.get("cpu")]
    if cpus:
        parts = [name for name, value in cpus[0].items() if isinstance(value, int | float)]
        result["cpu"] = {name: round(statistics.mean(c[name] for c in cpus), 1) for name in parts}
        result["cpu"]["busiest_other"] = cpus[-1]["busiest_other"]
    if all(r.get("cache") for r in rounds):
        zero = {"hits": 0, "misses": 0}
        total = {name: sum(r["cache"][name] for r in rounds) for name in zero}
        result["cache"] = counted(zero, total)
    return result


def scenario_list() -> str:
    lines = [f"{s.key:28} {s.title}{' (extra)' if s.extra else ''}" for s in SCENARIOS]
    lines += ["", "Groups:"] + [f"{name:14} {', '.join(keys)}" for name, keys in GROUPS.items()]
    return "\n".join(lines)


def planned_seconds(args: argparse.Namespace, scenarios: list[Scenario]) -> float:
    return 40 + len(scenarios) * (args.warmup + args.duration + 5) * args.rounds


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.list:
        print(scenario_list())
        return 0
    scenarios = chosen_scenarios(args)
    wrk_version()
    # A `kill` unwinds like Ctrl-C, so every server and wrk process is stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    print(f"{len(scenarios)} scenarios, about {planned_seconds(args, scenarios) / 60:.0f} min")
    started = datetime.now(UTC)
    with tempfile.TemporaryDirectory(prefix="studio-bench-") as workdir:
        try:
            results = Bench(args, Path(workdir)).run(scenarios, started)
        except KeyboardInterrupt:
            print("\nInterrupted; every process the benchmark started has been stopped.")
            return 130
    partial = len(scenarios) < len(SCENARIOS)
    written = report.write(results, started.strftime("%Y%m%d-%H%M%S"), partial)
    print("\n" + report.markdown(results))
    print("Written: " + ", ".join(str(path.relative_to(REPO)) for path in written))
    return 0


if __name__ == "__main__":
    sys.exit(main())
