"""A timed admin CSV import: `.venv/bin/python -m bench.imports [--rows 200000]`.

Makes a CSV file of ROWS demo paints (an export's columns), serves studio as the Procfile
does (gunicorn, two sync workers, production settings) on its own database, signs in as an
admin over HTTP, uploads the file to the import page and confirms it, as a browser would.
It reports the seconds of the check (from the upload until the page offers the import) and
of the import (from the confirmation until the upload's page says the paints are in), and
how long the server took to answer each request: a large file is checked and imported in
the background, and its page is read as its refresh would. Then the paints are counted.
Timings belong here, not in the tests.
"""

import argparse
import http.cookiejar
import json
import re
import secrets
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import text

from studio.services import demo

from . import database, run
from .processes import REPO, Gunicorn

PASSWORD = "bench-password-not-secret"
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
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (2)")
    parser.add_argument(
        "--database-url", default="postgresql://postgres@127.0.0.1:5432/studio_bench_import"
    )
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/15")
    return parser.parse_args(argv)


class Browser:
    """Cookies and forms over urllib, as far as the import needs them."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
        )

    def get(self, path: str) -> tuple[int, str, str]:
        return self._open(urllib.request.Request(self.base + path))

    def post(self, path: str, body: bytes, content_type: str) -> tuple[int, str, str]:
        request = urllib.request.Request(
            self.base + path, data=body, headers={"Content-Type": content_type}, method="POST"
        )
        return self._open(request)

    def post_form(self, path: str, fields: dict[str, str]) -> tuple[int, str, str]:
        body = urllib.parse.urlencode(fields).encode()
        return self.post(path, body, "application/x-www-form-urlencoded")

    def _open(self, request: urllib.request.Request) -> tuple[int, str, str]:
        """Return the status, the final URL and the page, following redirects."""
        try:
            with self.opener.open(request, timeout=GIVE_UP_SECONDS) as response:
                return response.status, response.url, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.url, exc.read().decode()


def csrf_token(page: str) -> str:
    return re.search(r'name="csrf_token"[^>]*?value="([^"]+)"', page).group(1)


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


def import_through_http(base: str, content: bytes, rows: int) -> dict[str, float | int | str]:
    """Sign in, check the file, confirm it; return the seconds each took."""
    browser = Browser(base)
    _, _, login = browser.get("/login")
    status, url, _ = browser.post_form(
        "/login",
        {"csrf_token": csrf_token(login), "username": database.ADMIN, "password": PASSWORD},
    )
    if status != 200 or "/login" in url:
        raise SystemExit(f"could not sign in as {database.ADMIN} ({status}, {url})")
    _, _, form = browser.get("/admin/paints/import")
    body, content_type = multipart({"csrf_token": csrf_token(form)}, "file", "bench.csv", content)
    started = time.monotonic()
    status, url, checked = browser.post("/admin/paints/import", body, content_type)
    check_answered_seconds = time.monotonic() - started
    while "Checking " in checked:  # a large file is checked in the background
        time.sleep(POLL_SECONDS)
        status, url, checked = browser.get(urllib.parse.urlparse(url).path)
    check_seconds = time.monotonic() - started
    if status != 200 or "Ready to import" not in checked:
        raise SystemExit(f"the check answered {status}:\n{checked[-3000:]}")
    path = re.search(r'action="(/admin/paints/import/\d+)"', checked).group(1)
    started = time.monotonic()
    status, url, page = browser.post_form(path, {"csrf_token": csrf_token(checked)})
    answered_seconds = time.monotonic() - started
    background = url.endswith(path)
    done = f"Imported {rows:,} paint"
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


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    env = run.studio_env(args.database_url, args.redis_url, args.workers)
    # Plain HTTP on the loopback: the session cookie may not be Secure-only here.
    env["SESSION_COOKIE_SECURE"] = "false"
    print(f"Seeding {args.paints:,} paints into {args.database_url.rsplit('/', 1)[-1]} ...")
    database.recreate(args.database_url)
    database.flask(env, "db", "upgrade")
    database.flask(env, "create-admin", database.ADMIN, "--password-stdin", stdin=PASSWORD + "\n")
    database.flask(env, "seed-demo", "--paints", str(args.paints))
    content = demo.demo_csv(args.rows, start=FIRST_CODE)
    print(f"A file of {args.rows:,} paints, {len(content) / 2**20:.1f} MB; importing ...")
    with tempfile.TemporaryDirectory(prefix="studio-import-bench-") as workdir:
        log = Path(workdir) / "gunicorn.log"
        with Gunicorn("wsgi:app", env, log) as server:
            server.wait_ready("/health", {})
            result = import_through_http(server.url, content, args.rows)
    with database.engine(args.database_url).connect() as connection:
        counted = connection.scalar(text("SELECT count(*) FROM paints"))
    result.update(
        rows=args.rows,
        megabytes=round(len(content) / 2**20, 1),
        paints_before=args.paints,
        paints_after=counted,
        at=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    print(json.dumps(result))
    if counted != args.paints + args.rows:
        print(f"expected {args.paints + args.rows:,} paints, found {counted:,}", file=sys.stderr)
        return 1
    results = REPO / "bench" / "results"
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    (results / f"import-{stamp}.json").write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
