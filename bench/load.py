"""Driving one scenario with locust in a process of its own, and reading what it measured."""

import csv
import os
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import cpu
from .processes import REPO, stop

LOCUSTFILE = REPO / "bench" / "locustfile.py"
# Time locust may take beyond its run time to start, stop and write its CSV files.
OVERRUN_SECONDS = 60
# What locust logs when its own process used more than 90 % of a core.
SATURATED = "CPU usage was too high"


@dataclass(frozen=True)
class Run:
    """One locust run: which users, how many, against what, for how long."""

    user_class: str
    host: str
    clients: int
    warmup: float
    duration: float


def run_locust(
    locust: Path,
    run: Run,
    config: Path,
    csv_prefix: Path,
    server_pids: Callable[[], set[int]],
    database: str,
) -> dict[str, Any]:
    """Run locust headless for one scenario; return its figures and the CPU it cost."""
    command = [
        str(locust),
        *("-f", str(LOCUSTFILE), "--headless", "--only-summary", "--loglevel", "WARNING"),
        *("-u", str(run.clients), "-r", str(run.clients)),
        *("-t", f"{run.warmup + run.duration:g}s", "-H", run.host, "--csv", str(csv_prefix)),
        run.user_class,
    ]
    env = {**os.environ, "BENCH_CONFIG": str(config), "BENCH_WARMUP": f"{run.warmup:g}"}
    process = subprocess.Popen(
        command,
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    watchdog = threading.Timer(run.warmup + run.duration + OVERRUN_SECONDS, stop, [process, 5])
    watchdog.start()
    marks: dict[str, cpu.Sample] = {}
    saturated = False
    try:
        with csv_prefix.with_suffix(".log").open("w") as log:
            for line in process.stdout:
                log.write(line)
                saturated = saturated or SATURATED in line
                if line.startswith("BENCH measuring"):
                    marks["start"] = cpu.sample()
                elif line.startswith("BENCH stopping"):
                    marks["end"] = cpu.sample()
                    parties = cpu.Parties(process.pid, frozenset(server_pids()), database)
        process.wait()
    finally:
        watchdog.cancel()
        stop(process)
    stats = read_stats(csv_prefix)
    stats["load_generator_saturated"] = saturated
    if "end" in marks:
        stats["cpu"] = cpu.shares(marks.get("start"), marks["end"], parties)
    return stats


def _number(value: str) -> float | None:
    return None if value in ("", "N/A") else float(value)


def _figures(row: dict[str, str]) -> dict[str, Any]:
    return {
        "requests": int(row["Request Count"]),
        "errors": int(row["Failure Count"]),
        "rps": round(float(row["Requests/s"]), 1),
        "p50_ms": _number(row["50%"]),
        "p95_ms": _number(row["95%"]),
        "p99_ms": _number(row["99%"]),
        "avg_ms": round(float(row["Average Response Time"]), 2),
        "max_ms": _number(row["Max Response Time"]),
    }


def read_stats(csv_prefix: Path) -> dict[str, Any]:
    """Return the aggregated figures, those per request name, and the errors locust saw."""
    stats_file = Path(f"{csv_prefix}_stats.csv")
    if not stats_file.exists():
        log = csv_prefix.with_suffix(".log").read_text()[-2000:]
        raise RuntimeError(f"locust wrote no statistics ({stats_file}):\n{log}")
    with stats_file.open(newline="") as source:
        rows = {row["Name"]: _figures(row) for row in csv.DictReader(source)}
    result = rows.pop("Aggregated")
    result["per_request"] = rows
    with Path(f"{csv_prefix}_failures.csv").open(newline="") as source:
        result["error_kinds"] = [
            {"request": row["Name"], "error": row["Error"], "count": int(row["Occurrences"])}
            for row in csv.DictReader(source)
        ][:5]
    return result
