"""What observability costs, in instructions: `.venv/bin/python -m bench.instructions`.

Requests per second on a shared machine move by more than the 5 % in question; the number of
instructions a request executes does not. This runs studio in-process (Flask's test client,
no network in front, the benchmark's database and Redis, the cache off) under
`valgrind --tool=callgrind` twice per variant, for FEW and for MANY uncached paint reads, and
prints the difference divided by MANY - FEW: the instructions of one read, start-up excluded.

Under valgrind a request takes about fifty times as long, so the per-worker sample (every
METRICS_SAMPLE_SECONDS of real time) would fall on fifty times fewer requests than in
production; it is turned off here and costs, in production, one sample per 5 s per worker.
The count includes what Python, SQLAlchemy, psycopg2 and the test client execute in this
process; it leaves out the kernel, PostgreSQL, Redis and gunicorn.
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile

from . import database, run
from .processes import REPO

FEW, MANY = 20, 420
VARIANTS = {
    "on": {"OBSERVABILITY": "true"},
    "off": {"OBSERVABILITY": "false"},
}
COLLECTED = re.compile(r"Collected : (\d+)")


def reads(count: int, token: str) -> None:
    """Create the app from the environment and answer `count` paint reads (the child's part)."""
    from studio import create_app

    client = create_app().test_client()
    headers = {"Authorization": f"Bearer {token}"}
    for number in range(count):
        response = client.get(f"/api/v1/paints/{1 + number % 500}", headers=headers)
        if response.status_code != 200:
            raise SystemExit(f"read {number} answered {response.status_code}")


def instructions(env: dict[str, str], count: int, token: str) -> int:
    """Return the instructions valgrind counted for a child answering `count` reads."""
    command = [
        "valgrind",
        "--tool=callgrind",
        "--callgrind-out-file=/dev/null",
        sys.executable,
        "-m",
        "bench.instructions",
        "--child",
        str(count),
    ]
    done = subprocess.run(
        command, cwd=REPO, env={**env, "BENCH_TOKEN": token}, capture_output=True, text=True
    )
    found = COLLECTED.search(done.stderr)
    if done.returncode != 0 or not found:
        raise SystemExit(f"valgrind run failed:\n{done.stderr[-2000:]}")
    return int(found.group(1))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.instructions", description=__doc__)
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--paints", type=int, default=100_000)
    parser.add_argument(
        "--database-url", default="postgresql://postgres@127.0.0.1:5432/studio_bench"
    )
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/15")
    args = parser.parse_args(argv)
    if args.child is not None:
        reads(args.child, os.environ["BENCH_TOKEN"])
        return 0
    if not shutil.which("valgrind"):
        raise SystemExit("valgrind is not installed (Debian's package valgrind)")
    bench_args = run.parse_args(
        ["--paints", str(args.paints), "--database-url", args.database_url]
        + ["--redis-url", args.redis_url, "--reuse"]
    )
    env = run.studio_env(bench_args.database_url, bench_args.redis_url, bench_args.workers)
    seeded = database.prepare(args.database_url, env, args.paints, True)
    per_read = {}
    with tempfile.TemporaryDirectory(prefix="studio-instructions-") as metrics_dir:
        for name, settings in VARIANTS.items():
            variant_env = {
                **env,
                **settings,
                "CACHE_TYPE": "NullCache",
                "METRICS_SAMPLE_SECONDS": "1000000",
                "PROMETHEUS_MULTIPROC_DIR": metrics_dir,  # as under gunicorn
                "PYTHONHASHSEED": "0",
            }
            few = instructions(variant_env, FEW, seeded.token)
            many = instructions(variant_env, MANY, seeded.token)
            per_read[name] = (many - few) / (MANY - FEW)
            print(f"observability {name}: {per_read[name]:,.0f} instructions per read")
    extra = per_read["on"] / per_read["off"] - 1
    print(f"on / off: {extra:+.1%} instructions per uncached paint read (target: at most +5 %)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
