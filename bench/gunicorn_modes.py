"""Which gunicorn worker class and threads: `.venv/bin/python -m bench.gunicorn_modes`.

Serves studio four ways at once on the benchmark's database (`studio_bench`, seeded by
`bench.run`), each with two workers as in production: sync workers, and gthread workers
with 2, 4 and 8 threads. Then loads them in turns (A B C D, D C B A, ...) for cached paint
detail, paint detail on random ids and the 90/10 mix, and reports per variant the median
req/s and p99 over the rounds, the most database connections its workers held during a
run (pg_stat_activity, matched to the workers' own sockets) and the workers' memory
after the run. The mix writes stock movements, as in `bench.run`. It writes nothing under
bench/results/: the table is printed, and `--output FILE` keeps the figures as JSON.
"""

import argparse
import json
import statistics
import sys
import tempfile
import threading
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
from sqlalchemy import text
from sqlalchemy.engine import make_url

from . import database, report, run
from .load import Run, run_wrk, wrk_version
from .processes import Gunicorn, gunicorn_settings

PREFIX = run.CACHE_KEY_PREFIX + "modes-"
POSTGRES_PORT = 5432


@dataclass(frozen=True)
class Variant:
    name: str
    threads: int


VARIANTS = (
    Variant("sync", 1),
    Variant("gthread 2", 2),
    Variant("gthread 4", 4),
    Variant("gthread 8", 8),
)
# (key, title, request maker in bench/wrk/scenarios.lua, mix: 32 clients and statuses counted)
SCENARIOS = (
    ("cached", "cached paint detail", "hot_detail", False),
    ("random", "paint detail on random ids", "detail", False),
    ("mix", "90/10 read/write mix", "mix", True),
)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.gunicorn_modes", description=__doc__)
    parser.add_argument("--rounds", type=int, default=3, help="turns per variant (3)")
    parser.add_argument("--duration", type=float, default=8, help="seconds measured (8)")
    parser.add_argument("--warmup", type=float, default=2, help="seconds of warm-up (2)")
    parser.add_argument("--clients", type=int, default=8, help="clients for reads (8)")
    parser.add_argument("--mix-clients", type=int, default=32, help="clients for the mix (32)")
    parser.add_argument("--paints", type=int, default=100_000, help="paints seeded (100000)")
    parser.add_argument(
        "--database-url", default="postgresql://postgres@127.0.0.1:5432/studio_bench"
    )
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/15")
    parser.add_argument("--output", type=Path, help="write the figures to this JSON file")
    return parser.parse_args(argv)


class ConnectionWatch:
    """The most connections of a server's workers open (and active) at once, while it runs."""

    def __init__(self, server: Gunicorn, url: str) -> None:
        self.server = server
        self.engine = database.engine(url)
        self.stopped = threading.Event()
        self.most = self.most_active = 0
        self.thread = threading.Thread(target=self.watch, daemon=True)

    def ports(self) -> list[int]:
        found = []
        for worker in self.server.workers():
            try:
                sockets = worker.net_connections(kind="tcp")
            except psutil.Error:
                continue
            found += [s.laddr.port for s in sockets if s.raddr and s.raddr.port == POSTGRES_PORT]
        return found

    def watch(self) -> None:
        query = text(
            "SELECT count(*), count(*) FILTER (WHERE state = 'active')"
            " FROM pg_stat_activity WHERE client_port = ANY(:ports)"
        )
        with self.engine.connect() as connection:
            while not self.stopped.wait(0.25):
                held, active = connection.execute(query, {"ports": self.ports()}).one()
                self.most = max(self.most, held)
                self.most_active = max(self.most_active, active)

    def __enter__(self) -> "ConnectionWatch":
        self.thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stopped.set()
        self.thread.join()
        self.engine.dispose()


def worker_memory_mib(server: Gunicorn) -> list[float]:
    return [round(worker.memory_info().rss / 2**20, 1) for worker in server.workers()]


def serve(variant: Variant, env: dict[str, str], workdir: Path, stack: ExitStack) -> Gunicorn:
    env = {**env, "THREADS_PER_WORKER": str(variant.threads)}
    env["CACHE_KEY_PREFIX"] = f"{PREFIX}{variant.threads}:"
    settings = gunicorn_settings("wsgi:app", env)
    print(f"  {variant.name}: {settings}", flush=True)
    log = workdir / f"gunicorn-{variant.threads}.log"
    return stack.enter_context(Gunicorn("wsgi:app", env, log))


def measure(args: argparse.Namespace, config: Path, token: str, workdir: Path) -> dict[str, Any]:
    env = run.studio_env(args.database_url, args.redis_url, 2, PREFIX)
    name = make_url(args.database_url).database or ""
    figures: dict[str, dict[str, list[dict[str, Any]]]] = {
        v.name: {key: [] for key, *_ in SCENARIOS} for v in VARIANTS
    }
    with ExitStack() as stack:
        servers = {v.name: serve(v, env, workdir, stack) for v in VARIANTS}
        for server in servers.values():
            server.wait_ready("/api/v1/paints/1", {"Authorization": f"Bearer {token}"})
        for number in range(args.rounds):
            print(f"Round {number + 1} of {args.rounds}", flush=True)
            order = VARIANTS if number % 2 == 0 else VARIANTS[::-1]
            for key, title, script, mix in SCENARIOS:
                for variant in order:
                    server = servers[variant.name]
                    clients = args.mix_clients if mix else args.clients
                    load = Run(script, server.url, clients, args.warmup, args.duration, mix)
                    raw = workdir / f"{key}-{variant.threads}-{number}"
                    with ConnectionWatch(server, args.database_url) as watch:
                        stats = run_wrk(load, config, raw, server.pids, name)
                    stats["connections"] = watch.most
                    stats["active_connections"] = watch.most_active
                    figures[variant.name][key].append(stats)
                    print(
                        f"  {title}, {variant.name}: {stats['rps']:,.0f} req/s,"
                        f" p99 {stats['p99_ms']} ms, {stats['errors']} errors,"
                        f" {watch.most} connections ({watch.most_active} active)",
                        flush=True,
                    )
        memory = {v.name: worker_memory_mib(servers[v.name]) for v in VARIANTS}
    return {"rounds": figures, "worker_rss_mib": memory}


def summary(found: dict[str, Any]) -> dict[str, dict[str, dict[str, Any]]]:
    """Return per variant and scenario the median req/s and p99, errors and most connections."""
    table: dict[str, dict[str, dict[str, Any]]] = {}
    for variant, scenarios in found["rounds"].items():
        table[variant] = {}
        for key, rounds in scenarios.items():
            table[variant][key] = {
                "rps": round(statistics.median(r["rps"] for r in rounds), 1),
                "p99_ms": round(statistics.median(r["p99_ms"] for r in rounds), 2),
                "errors": sum(r["errors"] for r in rounds),
                "connections": max(r["connections"] for r in rounds),
                "active_connections": max(r["active_connections"] for r in rounds),
                "rounds_rps": [r["rps"] for r in rounds],
            }
    return table


def markdown(table: dict[str, dict[str, dict[str, Any]]], memory: dict[str, list[float]]) -> str:
    lines = [
        "| Scenario | 2 workers | Req/s | p99 ms | Connections held (active), most | Errors |",
        "|---|---|---|---|---|---|",
    ]
    for key, title, *_ in SCENARIOS:
        for variant, scenarios in table.items():
            cell = scenarios[key]
            lines.append(
                f"| {title} | {variant} | {cell['rps']:,.0f} | {cell['p99_ms']:g} |"
                f" {cell['connections']} ({cell['active_connections']}) | {cell['errors']} |"
            )
    rss = "; ".join(
        f"{variant} {' / '.join(f'{value:.0f}' for value in values)}"
        for variant, values in memory.items()
    )
    return "\n".join(lines) + f"\n\nWorkers' resident memory after the run, MiB: {rss}.\n"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    wrk_version()
    if not database.reusable(args.database_url, args.paints):
        raise SystemExit(
            f"Seed the benchmark's database first: python -m bench.run --paints {args.paints}"
        )
    started = datetime.now(UTC)
    env = run.studio_env(args.database_url, args.redis_url, 2, PREFIX)
    token = database.flask(env, "create-token", database.ADMIN, "--name", "gunicorn modes")
    token = token.strip().splitlines()[-1]
    seeded = database.Seeded(token, 1, args.paints, True, None)
    database.forget_cache(args.redis_url, PREFIX)
    try:
        with tempfile.TemporaryDirectory(prefix="studio-modes-") as workdir:
            config = Path(workdir) / "config.lua"
            config.write_text(run.lua_table(run.load_config(seeded)))
            found = measure(args, config, token, Path(workdir))
    finally:
        database.forget_cache(args.redis_url, PREFIX)
    table = summary(found)
    print("\n" + markdown(table, found["worker_rss_mib"]))
    if args.output:
        results = {
            "started_at": started.strftime("%Y-%m-%d %H:%M UTC"),
            "git": report.git_state(),
            "machine": report.machine(),
            "settings": {k: v for k, v in vars(args).items() if k != "output"},
            "summary": table,
            **found,
        }
        args.output.write_text(json.dumps(results, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
