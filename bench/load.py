"""Driving one scenario with wrk in a process of its own, and reading what it measured."""

import json
import os
import resource
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import cpu
from .processes import REPO

SCRIPT = REPO / "bench" / "wrk" / "scenarios.lua"
INSTALL_WRK = "apt-get install wrk  (Debian's package)"
# Time wrk may take beyond its run time to connect, stop and print its summary.
OVERRUN_SECONDS = 30
# A request not answered within this many seconds counts as an error (a timeout).
TIMEOUT_SECONDS = 10
# Above this share of one core, wrk is marked as a limit of the figure it reports.
SATURATED_PERCENT = 90
ERROR_KINDS = ("connect_errors", "read_errors", "write_errors", "status_errors", "timeouts")


@dataclass(frozen=True)
class Run:
    """One wrk run: which scenario, how many connections, against what, for how long."""

    scenario: str
    host: str
    clients: int
    warmup: float
    duration: float
    # Count every answer's status (costs wrk CPU; the mixes use it to say which failed).
    count_statuses: bool = False


def wrk_version() -> str:
    """Return wrk's version, or stop with how to install it."""
    if shutil.which("wrk") is None:
        raise SystemExit(f"wrk is not installed; install it with:\n{INSTALL_WRK}")
    printed = subprocess.run(["wrk", "--version"], capture_output=True, text=True).stdout
    # "wrk debian/4.1.0-3+b2 [epoll] Copyright (C) 2012 Will Glozer"
    return printed.split()[1] if printed.startswith("wrk ") else printed.strip()


def wrk(run: Run, config: Path, seconds: float, log: Path) -> subprocess.Popen:
    """Start wrk with one thread (the load generator takes little of the cores)."""
    command = [
        "wrk",
        *("-t1", f"-c{run.clients}", f"-d{seconds:g}s", f"--timeout={TIMEOUT_SECONDS}s"),
        *("-s", str(SCRIPT), run.host, "--", str(config), run.scenario),
    ]
    env = {**os.environ, "BENCH_COUNT_STATUSES": "1"} if run.count_statuses else None
    with log.open("w") as output:
        return subprocess.Popen(
            command,
            cwd=REPO,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def finish(process: subprocess.Popen, seconds: float, log: Path) -> dict[str, Any]:
    """Wait for wrk to end and return the figures its script printed."""
    try:
        process.wait(seconds + OVERRUN_SECONDS)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    printed = log.read_text()
    line = next((line for line in printed.splitlines() if line.startswith("BENCH ")), None)
    if process.returncode != 0 or line is None:
        raise RuntimeError(f"wrk printed no figures ({log}):\n{printed[-2000:]}")
    return json.loads(line.removeprefix("BENCH "))


def run_wrk(
    run: Run, config: Path, raw: Path, server_pids: Callable[[], set[int]], database: str
) -> dict[str, Any]:
    """Warm up, then measure one scenario with wrk; return its figures and the CPU it cost."""
    if run.warmup > 0:
        log = raw.with_suffix(".warmup.log")
        finish(wrk(run, config, run.warmup, log), run.warmup, log)
    log = raw.with_suffix(".log")
    start, before = cpu.sample(), children_cpu_seconds()
    measured = finish(wrk(run, config, run.duration, log), run.duration, log)
    # wrk is this process's only child to end in the window: the children's CPU is its own.
    load_seconds = children_cpu_seconds() - before
    stats = figures(measured)
    parties = cpu.Parties(frozenset(server_pids()), database)
    stats["cpu"] = cpu.shares(start, cpu.sample(), parties, load_seconds)
    share = (stats["cpu"] or {}).get("load", 0)
    stats["load_generator_saturated"] = share > SATURATED_PERCENT
    return stats


def children_cpu_seconds() -> float:
    """Return the CPU time of this process's children that have ended."""
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def figures(measured: dict[str, Any]) -> dict[str, Any]:
    """Return requests, errors, req/s and latencies (ms) out of wrk's summary."""
    seconds = measured["duration_us"] / 1e6
    errors = {kind: measured[kind] for kind in ERROR_KINDS if measured[kind]}
    if "statuses" in measured:
        # Counted answer by answer: any status but 2xx is an error, each by its status.
        errors.pop("status_errors", None)
        errors |= {
            f"status {status}": count
            for status, count in sorted(measured["statuses"].items())
            if not status.startswith("2")
        }
    return {
        "requests": measured["requests"],
        "errors": sum(errors.values()),
        "error_kinds": errors,
        "rps": round(measured["requests"] / seconds, 1) if seconds else 0.0,
        "p50_ms": round(measured["p50_us"] / 1000, 2),
        "p90_ms": round(measured["p90_us"] / 1000, 2),
        "p95_ms": round(measured["p95_us"] / 1000, 2),
        "p99_ms": round(measured["p99_us"] / 1000, 2),
        "avg_ms": round(measured["mean_us"] / 1000, 2),
        "max_ms": round(measured["max_us"] / 1000, 2),
    }
