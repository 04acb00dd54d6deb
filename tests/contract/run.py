"""The contract test: schemathesis against studio as production runs it; fails on any breach.

    .venv/bin/python -m tests.contract.run [--max-examples N] [--seed S] [st run options]

studio is served by gunicorn as the Procfile runs it (production settings, two workers,
FORCE_HTTPS off) on a fresh PostgreSQL database (`studio_contract`, dropped and made again on
the server of STUDIO_TEST_DATABASE_URL) and Redis, with an admin and a real API token.
schemathesis, pinned in requirements-contract.txt and installed meanwhile in its own
virtualenv (tests/contract/.venv), reads /api/v1/openapi.json and runs every check on a
bounded number of examples per operation, with a fixed seed, so a run is repeatable; it
exits non-zero on any 5xx, any answer the document does not describe, any request the
document allows that the API refuses and any it refuses that the API accepts.
"""

import argparse
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import make_url

from bench import run
from bench.database import engine, flask
from bench.processes import REPO, Gunicorn

HERE = Path(__file__).resolve().parent
VENV = HERE / ".venv"
SCHEMATHESIS = VENV / "bin" / "st"
REQUIREMENTS = REPO / "requirements-contract.txt"
DATABASE = "studio_contract"
ADMIN = "contract"
# What the admin signs in with is never used: the run needs the API token alone.
ADMIN_PASSWORD = secrets.token_urlsafe(18)
# Settings of the caller's shell that would change how studio or gunicorn runs.
# Every check schemathesis has (max_response_time is a timing, left to the benchmark).
CHECKS = "all"
PHASES = "examples,coverage,fuzzing"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--database-url",
        default=os.environ.get("STUDIO_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1/test"),
        help="a PostgreSQL server to make the contract database on (its database name is "
        f"replaced by {DATABASE})",
    )
    parser.add_argument(
        "--redis-url", default=os.environ.get("STUDIO_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    )
    parser.add_argument(
        "--max-examples", type=int, default=25, help="examples per operation and phase (25)"
    )
    parser.add_argument("--seed", type=int, default=12, help="the generator's seed (12)")
    # One worker: CPython 3.11 can fail parsing in threads (SystemError: AST constructor
    # recursion depth mismatch) when hypothesis describes its strategies.
    parser.add_argument("--workers", type=int, default=1, help="schemathesis workers (1)")
    parser.add_argument(
        "--report-dir",
        type=Path,
        default=Path(os.environ.get("TMPDIR", "/tmp")) / "studio-contract",
        help="where the JUnit report, the gunicorn log and the JSON summary go",
    )
    args, args.schemathesis = parser.parse_known_args(argv)
    return args


def recreate(url: str) -> str:
    """Drop the contract database (never another one), create it empty; return its URL."""
    target = make_url(url).set(database=DATABASE)
    with engine(url, "postgres").connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)'))
        connection.execute(text(f'CREATE DATABASE "{DATABASE}"'))
    return target.render_as_string(hide_password=False)


def studio_env(database_url: str, redis_url: str) -> dict[str, str]:
    """Return the benchmark's production environment, quieter, with a key prefix of its own."""
    env = run.studio_env(
        database_url,
        redis_url,
        workers=2,
        cache_key_prefix=f"studio-contract-{secrets.token_hex(4)}:",
    )
    env["LOG_LEVEL"] = "WARNING"
    return env


def prepare(env: dict[str, str]) -> str:
    """Migrate the empty database, add an admin and a paint; return the admin's API token."""
    flask(env, "db", "upgrade")
    flask(env, "create-admin", ADMIN, "--password-stdin", stdin=ADMIN_PASSWORD + "\n")
    return flask(env, "create-token", ADMIN, "--name", "contract").strip().splitlines()[-1]


def schemathesis_command(args: argparse.Namespace, url: str, token: str) -> list[str]:
    return [
        str(SCHEMATHESIS),
        "run",
        f"{url}/api/v1/openapi.json",
        "--checks",
        CHECKS,
        "--phases",
        PHASES,
        "--max-examples",
        str(args.max_examples),
        "--seed",
        str(args.seed),
        "--generation-database",
        "none",
        "--workers",
        str(args.workers),
        "--header",
        f"Authorization: Bearer {token}",
        "--request-timeout",
        "30",
        "--report",
        "junit,ndjson",
        "--report-dir",
        str(args.report_dir),
        "--no-color",
        *args.schemathesis,
    ]


def install() -> subprocess.Popen:
    """Start making the contract's virtualenv hold requirements-contract.txt (quick if it does)."""
    if not (VENV / "bin" / "pip").exists():
        subprocess.run(["python3", "-m", "venv", str(VENV)], check=True)
    pip = [str(VENV / "bin" / "pip"), "install", "-q", "--disable-pip-version-check"]
    return subprocess.Popen([*pip, "-r", str(REQUIREMENTS)])


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    # Installed while the database and studio get ready: on a fresh clone both take a while.
    installing = install()
    try:
        args.report_dir.mkdir(parents=True, exist_ok=True)
        env = studio_env(recreate(args.database_url), args.redis_url)
        token = prepare(env)
    except BaseException:
        installing.terminate()  # the next run's pip completes what this one left
        raise
    log = args.report_dir / "gunicorn.log"
    with Gunicorn("wsgi:app", env, log) as gunicorn:
        gunicorn.wait_ready("/api/v1/openapi.json", {"Authorization": f"Bearer {token}"})
        print(f"contract: studio ready in {time.monotonic() - started:.0f} s", flush=True)
        if installing.wait() != 0:
            raise SystemExit(f"Could not install {REQUIREMENTS.name} into {VENV}.")
        print(f"contract: schemathesis ready in {time.monotonic() - started:.0f} s", flush=True)
        done = subprocess.run(
            schemathesis_command(args, gunicorn.url, token),
            cwd=args.report_dir,  # where schemathesis keeps its .schemathesis/ replay cache
            env={
                **os.environ,
                "SCHEMATHESIS_HOOKS": "tests.contract.hooks",
                "PYTHONPATH": str(REPO),
            },
        )
    seconds = time.monotonic() - started
    print(f"contract: schemathesis exited {done.returncode} after {seconds:.0f} s in all")
    return done.returncode


if __name__ == "__main__":
    sys.exit(main())
