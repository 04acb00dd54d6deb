"""The plans behind the 1,000,000-paint rows: `.venv/bin/python -m bench.plans`.

Issue 16 asks, for each bar a row misses, for the plan that shows why. This answers each
request of the `million` scenarios once in-process (Flask's test client, production
settings, the cache off), records every statement it sends about the inventory, and runs
each again under `EXPLAIN (ANALYZE, BUFFERS)` with the same parameters, twice, keeping the
second (warm) plan. It writes them to bench/results/plans-<time>.md.

Planning time is part of what a request costs: psycopg2 sends each statement as text, so
PostgreSQL plans it every time.
"""

import argparse
import os
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from . import database, run
from .browser import csrf_token
from .processes import REPO

# One request per row of the `million` group, with the values its scenario picks at random
# fixed to one typical choice.
REQUESTS = (
    ("page 1", "/api/v1/paints?sort=name"),
    ("page 1, by price, highest first", "/api/v1/paints?sort=-price"),
    ("one filter", "/api/v1/paints?brand=Citadel&sort=price"),
    ("one filter", "/api/v1/paints?color_family=Blue&sort=-created_at"),
    ("broad word", "/api/v1/paints?q=blue"),
    ("two words", "/api/v1/paints?q=dark%20bone"),
    ("code fragment", "/api/v1/paints?q=CIT-0000"),
    ("code fragment", "/api/v1/paints?q=00009"),
    ("page 20,000", "/api/v1/paints?page=20000"),
    ("stats", "/api/v1/stats"),
    ("dashboard", "/admin/"),
    ("low stock", "/api/v1/paints?stock=low_stock&sort=-price"),
    ("low stock of one brand", "/api/v1/paints?stock=low_stock&brand=Citadel&sort=name"),
)
# Statements about the inventory; the token's and session's lookups are left out.
INVENTORY = re.compile(r"\b(paints|paint_totals|paint_page_anchors|history_entries)\b")


@contextmanager
def recorded(engine: Any) -> Iterator[list[tuple[str, Any]]]:
    """Collect (statement, parameters) of every statement sent while the block runs."""
    from sqlalchemy import event

    sent: list[tuple[str, Any]] = []

    def record(conn, cursor, statement, parameters, context, executemany):
        sent.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        event.remove(engine, "before_cursor_execute", record)


def explained(engine: Any, statement: str, parameters: Any) -> tuple[str, str]:
    """Return the statement with its parameters in place, and its warm plan."""
    connection = engine.raw_connection()
    try:
        cursor = connection.cursor()
        shown = cursor.mogrify(statement, parameters).decode()
        for _ in range(2):
            cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS) {statement}", parameters)
            plan = "\n".join(line for (line,) in cursor.fetchall())
        connection.rollback()
        return shown, plan
    finally:
        connection.close()


def signed_in(client: Any, username: str, password: str) -> None:
    page = client.get("/login").get_data(as_text=True)
    fields = {"csrf_token": csrf_token(page), "username": username, "password": password}
    answer = client.post("/login", data=fields)
    if answer.status_code != 302:
        raise SystemExit(f"signing in for the dashboard answered {answer.status_code}")


def report(args: argparse.Namespace) -> str:
    env = run.studio_env(args.database_url, args.redis_url, 2)
    seeded = database.prepare(args.database_url, env, args.paints, True)
    os.environ.update(env, CACHE_TYPE="NullCache", METRICS_SAMPLE_SECONDS="1000000")
    from studio import create_app
    from studio.extensions import db

    app = create_app()
    client = app.test_client()
    signed_in(client, database.ADMIN, database.PASSWORD)
    headers = {"Authorization": f"Bearer {seeded.token}"}
    lines = [
        f"# Plans at {args.paints:,} paints, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        "",
        "Each request answered once in-process (production settings, cache off), then each",
        "statement it sent about the inventory run again under `EXPLAIN (ANALYZE, BUFFERS)`",
        "(the second of two runs, warm). Wall time is the first answer's, in-process.",
    ]
    with app.app_context():
        engine = db.engine
    for title, path in REQUESTS:
        client.get(path, headers=headers)  # warm
        with app.app_context(), recorded(engine) as sent:
            started = time.perf_counter()
            answer = client.get(path, headers=headers)
            took = (time.perf_counter() - started) * 1000
        lines += ["", f"## {title}: `GET {path}`", "", f"{answer.status_code}, {took:.1f} ms."]
        for statement, parameters in sent:
            if statement.lstrip().upper().startswith("EXPLAIN") or not INVENTORY.search(statement):
                continue
            shown, plan = explained(engine, statement, parameters)
            lines += ["", "```sql", shown.strip(), "```", "", "```", plan, "```"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.plans", description=__doc__)
    parser.add_argument(
        "--paints",
        type=int,
        default=1_000_000,
        help="paints the database holds (1000000); a database that does not hold exactly "
        "these, and the benchmark's admin, is dropped and seeded afresh, as bench.run does",
    )
    parser.add_argument(
        "--database-url",
        default="postgresql://postgres@127.0.0.1:5432/studio_bench_1m",
        help="the benchmark's database (studio_bench_1m on this machine's PostgreSQL)",
    )
    parser.add_argument(
        "--redis-url",
        default="redis://127.0.0.1:6379/15",
        help="Redis for the app's settings (database 15); the cache itself is off here",
    )
    args = parser.parse_args(argv)
    text = report(args)
    target = REPO / "bench" / "results" / f"plans-{datetime.now(UTC):%Y%m%d-%H%M%S}.md"
    target.write_text(text)
    print(f"Written: {target.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
