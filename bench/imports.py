"""A timed admin CSV import: `.venv/bin/python -m bench.imports [--rows 200000]`.

Makes a CSV file of ROWS demo paints (an export's columns), or with `--mode update` a price
list of ROWS paints already in the database (brand, code and a price 5 % higher), serves
studio as the Procfile does (gunicorn, production settings) on its own database, signs in as
an admin over HTTP, uploads the file to the import page and confirms it, as a browser would.
The database is seeded afresh with `--paints` demo paints, or copied from a seeded one with
`--from-database` (the benchmark's 1,000,000 paints: `--from-database studio_bench_1m`).
It reports the seconds of the check (from the upload until the page offers the import) and
of the import (from the confirmation until the upload's page says the paints are in), and
how long the server took to answer each request: a large file is checked and imported in
the background, and its page is read as its refresh would. Then the paints are counted.
Timings belong here, not in the tests.
"""

import argparse
import csv
import io
import json
import random
import re
import secrets
import sys
import tempfile
import time
import urllib.parse
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from sqlalchemy import text

from studio.services import demo

from . import database, run
from .browser import Browser, csrf_token
from .processes import REPO, Gunicorn

ADMIN, PASSWORD = database.ADMIN, database.PASSWORD

# Codes far above those of the paints seeded first, so that none clashes.
FIRST_CODE = 10_000_000
POLL_SECONDS = 0.5
GIVE_UP_SECONDS = 600


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.imports", description=__doc__)
    parser.add_argument("--rows", type=int, default=200_000, help="paints in the file (200000)")
    parser.add_argument(
        "--paints", type=int, default=1_000, help="paints in the database before (1000)"
    )
    parser.add_argument(
        "--mode", choices=("add", "update"), default="add", help="new paints, or a price list"
    )
    parser.add_argument(
        "--from-database", help="copy this seeded database instead of seeding --paints"
    )
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (2)")
    parser.add_argument(
        "--database-url", default="postgresql://postgres@127.0.0.1:5432/studio_bench_import"
    )
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/15")
    return parser.parse_args(argv)


def multipart(fields: dict[str, str], name: str, filename: str, content: bytes):
    boundary = secrets.token_hex(16)
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{key}"\r\n\r\n{value}\r\n'.encode()
        for key, value in fields.items()
    ]
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; '
        f'filename="{filename}"\r\nContent-Type: text/csv\r\n\r\n'.encode()
        + content
        + b"\r\n"
    )
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


@dataclass(frozen=True)
class Mode:
    """What the import page says for a mode: its form value, when checked, when done."""

    value: str
    ready: str
    done: str


MODES = {
    "add": Mode("add", "Ready to import", "Imported {rows:,} paint"),
    "update": Mode("update", " to update</h2>", "Updated {rows:,} paint"),
}


def import_through_http(
    base: str, content: bytes, rows: int, mode: Mode = MODES["add"]
) -> dict[str, float | int | str]:
    """Sign in, check the file, confirm it; return the seconds each took."""
    browser = Browser(base)
    browser.sign_in(ADMIN, PASSWORD)
    _, _, form = browser.get("/admin/paints/import")
    fields = {"csrf_token": csrf_token(form), "mode": mode.value}
    body, content_type = multipart(fields, "file", "bench.csv", content)
    started = time.monotonic()
    status, url, checked = browser.post("/admin/paints/import", body, content_type)
    check_answered_seconds = time.monotonic() - started
    while "Checking " in checked:  # a large file is checked in the background
        time.sleep(POLL_SECONDS)
        status, url, checked = browser.get(urllib.parse.urlparse(url).path)
    check_seconds = time.monotonic() - started
    if status != 200 or mode.ready not in checked:
        raise SystemExit(f"the check answered {status}:\n{checked[-3000:]}")
    path = re.search(r'action="(/admin/paints/import/\d+)"', checked).group(1)
    started = time.monotonic()
    status, url, page = browser.post_form(path, {"csrf_token": csrf_token(checked)})
    answered_seconds = time.monotonic() - started
    background = url.endswith(path)
    done = mode.done.format(rows=rows)
    while done not in page:
        if time.monotonic() - started > GIVE_UP_SECONDS or 'role="alert"' in page:
            raise SystemExit(f"the import did not finish ({status}):\n{page[-3000:]}")
        time.sleep(POLL_SECONDS)
        status, url, page = browser.get(path)
    return {
        "check_answered_seconds": round(check_answered_seconds, 2),
        "check_seconds": round(check_seconds, 2),
        "confirm_answered_seconds": round(answered_seconds, 2),
        "import_seconds": round(time.monotonic() - started, 2),
        "background": background,
    }


def prepare(args: argparse.Namespace, env: dict[str, str]) -> int:
    """Make the import's database (seeded, or a copy of a seeded one); return its paints."""
    name = args.database_url.rsplit("/", 1)[-1]
    if args.from_database:
        print(f"Copying {args.from_database} into {name} ...")
        database.recreate(args.database_url, template=args.from_database)
        database.flask(env, "db", "upgrade")
        database.flask(env, "change-password", ADMIN, "--password-stdin", stdin=PASSWORD)
    else:
        print(f"Seeding {args.paints:,} paints into {name} ...")
        database.recreate(args.database_url)
        database.flask(env, "db", "upgrade")
        database.flask(env, "create-admin", ADMIN, "--password-stdin", stdin=PASSWORD)
        database.flask(env, "seed-demo", "--paints", str(args.paints))
    with database.engine(args.database_url).connect() as connection:
        return connection.scalar(text("SELECT count(*) FROM paints"))


def price_list(url: str, rows: int) -> tuple[bytes, dict[int, Decimal]]:
    """Return a price list of `rows` paints drawn at random, 5 % dearer, and their new prices."""
    with database.engine(url).connect() as connection:
        last = connection.scalar(text("SELECT max(id) FROM paints"))
        ids = random.Random(1).sample(range(1, last + 1), rows)
        found = connection.execute(
            text("SELECT id, brand, color_code, price FROM paints WHERE id = ANY(:ids)"),
            {"ids": ids},
        ).all()
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(("brand", "color_code", "price"))
    prices = {}
    for paint_id, brand, code, price in found:
        prices[paint_id] = (price * Decimal("1.05")).quantize(Decimal("0.01"))
        writer.writerow((brand, code, prices[paint_id]))
    return out.getvalue().encode(), prices


def applied(url: str, prices: dict[int, Decimal]) -> int:
    """Count the paints whose price is now the list's."""
    with database.engine(url).connect() as connection:
        found = connection.execute(
            text("SELECT id, price FROM paints WHERE id = ANY(:ids)"), {"ids": list(prices)}
        ).all()
    return sum(1 for paint_id, price in found if price == prices[paint_id])


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    env = run.studio_env(args.database_url, args.redis_url, args.workers)
    before = prepare(args, env)
    prices: dict[int, Decimal] = {}
    if args.mode == "update":
        content, prices = price_list(args.database_url, args.rows)
        what = "price list"
    else:
        content, what = demo.demo_csv(args.rows, start=FIRST_CODE), "file"
    print(f"A {what} of {args.rows:,} paints, {len(content) / 2**20:.1f} MB; importing ...")
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="studio-import-bench-") as workdir:
        log = Path(workdir) / "gunicorn.log"
        with Gunicorn("wsgi:app", env, log) as server:
            server.wait_ready("/health", {})
            result = import_through_http(server.url, content, args.rows, MODES[args.mode])
    with database.engine(args.database_url).connect() as connection:
        counted = connection.scalar(text("SELECT count(*) FROM paints"))
    expected = before + args.rows if args.mode == "add" else before
    result.update(
        mode=args.mode,
        rows=args.rows,
        megabytes=round(len(content) / 2**20, 1),
        paints_before=before,
        paints_after=counted,
        end_to_end_seconds=round(result["check_seconds"] + result["import_seconds"], 2),
        serving_seconds=round(time.monotonic() - started, 2),
        at=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    if prices:
        result["prices_applied"] = applied(args.database_url, prices)
    print(json.dumps(result))
    if counted != expected:
        print(f"expected {expected:,} paints, found {counted:,}", file=sys.stderr)
        return 1
    if prices and result["prices_applied"] != len(prices):
        print(f"{result['prices_applied']:,} of {len(prices):,} prices applied", file=sys.stderr)
        return 1
    results = REPO / "bench" / "results"
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    (results / f"import-{stamp}.json").write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
