"""Where the machine's CPU went during a measurement: the benchmark's parts, and the rest.

Every figure is in % of one core (a 2-core machine has 200 %). Other processes on the
machine (a test suite, a browser) are shown too, since they take CPU from the servers.
"""

import time
from collections import Counter
from dataclasses import dataclass, field

import psutil

PARTS = ("load", "gunicorn", "postgres", "redis", "other")


def machine_busy_seconds() -> float:
    """Return the CPU time all cores together have spent not idle."""
    times = psutil.cpu_times()
    return sum(times) - times.idle - getattr(times, "iowait", 0.0)


def backend_database(title: list[str]) -> str | None:
    """Return the database a PostgreSQL backend serves, from its process title, if it is one.

    A backend's title reads `postgres: USER DATABASE HOST(PORT) STATE`; background
    processes (`postgres: checkpointer`, ...) have no host part.
    """
    words = " ".join(title).split()
    if len(words) >= 4 and words[0] == "postgres:" and ("(" in words[3] or words[3] == "[local]"):
        return words[2]
    return None


@dataclass
class Sample:
    wall: float
    busy: float
    # (pid, start time) -> (name, title, CPU seconds); the start time tells a reused pid apart.
    processes: dict[tuple[int, float], tuple[str, list[str], float]] = field(default_factory=dict)


def sample() -> Sample:
    """Return the CPU time used so far by the machine and by each process."""
    now = Sample(time.monotonic(), machine_busy_seconds())
    for process in psutil.process_iter(["name", "cmdline", "cpu_times", "create_time"]):
        info = process.info
        if info["cpu_times"] is not None:
            used = info["cpu_times"].user + info["cpu_times"].system
            key = (process.pid, info["create_time"])
            now.processes[key] = (info["name"] or "?", info["cmdline"] or [], used)
    return now


@dataclass(frozen=True)
class Parties:
    """Which processes belong to which part of the benchmark."""

    gunicorn: frozenset[int] = frozenset()
    database: str = ""

    def part(self, pid: int, name: str, title: list[str]) -> str:
        if pid in self.gunicorn:
            return "gunicorn"
        if name == "postgres":
            database = backend_database(title)
            return "postgres" if database in (None, self.database) else "other"
        if name.startswith("redis-server"):
            return "redis"
        return "other"


def shares(
    start: Sample | None, end: Sample | None, parties: Parties, load_seconds: float = 0.0
) -> dict | None:
    """Return each part's CPU between two samples, the busiest other processes, and the total.

    The load generator has ended (and been reaped) by the second sample, so its CPU time
    comes apart, as `load_seconds`.
    """
    if start is None or end is None or end.wall <= start.wall:
        return None
    wall = end.wall - start.wall
    used: Counter[str] = Counter(load=load_seconds)
    others: Counter[str] = Counter()
    for key, (name, title, seconds) in end.processes.items():
        before = start.processes.get(key)
        spent = seconds - before[2] if before else seconds
        part = parties.part(key[0], name, title)
        used[part] += spent
        if part == "other":
            # Kernel workers rename themselves after their current queue.
            others[name.split("/")[0]] += spent
    percent = {part: round(100 * used[part] / wall, 1) for part in PARTS}
    percent["all"] = round(100 * (end.busy - start.busy) / wall, 1)
    # Processes that came and went inside the window (a NullPool connection's backend).
    percent["unattributed"] = round(percent["all"] - sum(percent[p] for p in PARTS), 1)
    busiest = [
        f"{name} {100 * seconds / wall:.0f}"
        for name, seconds in others.most_common(3)
        if seconds >= 0.02 * wall
    ]
    return {**percent, "busiest_other": ", ".join(busiest)}


def background(seconds: float = 3.0) -> dict:
    """Return what the machine is doing before the benchmark starts anything."""
    start = sample()
    time.sleep(seconds)
    return shares(start, sample(), Parties())
