"""The benchmark's results: the machine, targets with PASS or MISS, markdown and JSON files."""

import json
import operator
import os
import platform
import statistics
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from .processes import REPO

RESULTS = REPO / "bench" / "results"
SATURATED_MARK = "(*)"
COMPARISONS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    "<": operator.lt,
    "=": operator.eq,
}


@dataclass(frozen=True)
class Target:
    """A goal from the issue: a figure out of the results, compared with a bound."""

    label: str
    figure: Callable[[dict[str, Any]], float | None]
    comparison: str
    bound: float

    def check(self, results: dict[str, Any]) -> dict[str, Any]:
        measured = self.figure(results)
        passed = None if measured is None else COMPARISONS[self.comparison](measured, self.bound)
        return {
            "target": self.label,
            "measured": measured,
            "goal": f"{self.comparison} {self.bound:g}",
            "result": {True: "PASS", False: "MISS", None: "n/a"}[passed],
        }


def scenario(results: dict[str, Any], key: str) -> dict[str, Any] | None:
    return next((item for item in results["scenarios"] if item["key"] == key), None)


def ratio(results: dict[str, Any], studio: str, reference: str) -> float | None:
    """Return studio's requests/s over a reference's, or None when either is missing.

    Measured in rounds, it is the median of the rounds' ratios: each compares figures
    taken seconds apart, while the medians of req/s may come from different moments.
    """
    ours, theirs = scenario(results, studio), scenario(results, reference)
    if not ours or not theirs or not theirs["rps"]:
        return None
    pairs = list(zip(ours.get("rounds_rps", []), theirs.get("rounds_rps", []), strict=False))
    if len(pairs) > 1 and all(reference_rps for _, reference_rps in pairs):
        return round(statistics.median(a / b for a, b in pairs), 2)
    return round(ours["rps"] / theirs["rps"], 2)


def figure(key: str, name: str) -> Callable[[dict[str, Any]], float | None]:
    def read(results: dict[str, Any]) -> float | None:
        found = scenario(results, key)
        return found[name] if found else None

    return read


def at_a_million(key: str, name: str) -> Callable[[dict[str, Any]], float | None]:
    """Read a scenario's figure only from a run on 1,000,000 paints or more (the goal's size)."""
    read = figure(key, name)
    return lambda results: read(results) if results["settings"]["paints"] >= 1_000_000 else None


def hit_rate(results: dict[str, Any]) -> float | None:
    return (results.get("cache") or {}).get("hit_rate")


# Observability may cost at most 3 % of the throughput.
OBSERVABILITY_BAR = 0.97
TARGETS = (
    Target(
        "cached paint detail / Flask + Redis GET, req/s",
        lambda r: ratio(r, "cached_detail", "redis_floor"),
        ">=",
        0.9,
    ),
    Target(
        "cached paint detail / bare Flask, req/s (aspiration)",
        lambda r: ratio(r, "cached_detail", "hello"),
        ">=",
        0.85,
    ),
    Target(
        "paint detail on random ids / pooled peer, req/s",
        lambda r: ratio(r, "random_detail", "peer_detail"),
        ">=",
        1.0,
    ),
    Target(
        "uncached paint detail / pooled peer, req/s",
        lambda r: ratio(r, "uncached_detail", "peer_detail"),
        ">=",
        0.9,
    ),
    Target(
        "cached paint detail, observability on / off, req/s",
        lambda r: ratio(r, "cached_detail", "cached_detail_unobserved"),
        ">=",
        OBSERVABILITY_BAR,
    ),
    Target(
        "paint detail on random ids, observability on / off, req/s",
        lambda r: ratio(r, "random_detail", "random_detail_unobserved"),
        ">=",
        OBSERVABILITY_BAR,
    ),
    Target("filtered list p95, ms", figure("filtered_list", "p95_ms"), "<", 25),
    Target("word search p95, ms", figure("search", "p95_ms"), "<", 25),
    Target("stats p95, ms", figure("stats", "p95_ms"), "<", 25),
    Target(
        "code-fragment search at 1,000,000 paints, cache off, p95, ms",
        at_a_million("code_search", "p95_ms"),
        "<",
        50,
    ),
    Target(
        "low-stock filter at 1,000,000 paints, cache off, p95, ms",
        at_a_million("low_stock", "p95_ms"),
        "<",
        25,
    ),
    Target("90/10 mix errors", figure("mix", "errors"), "=", 0),
    Target("90/10 mix p99, ms", figure("mix", "p99_ms"), "<", 250),
    Target("cache hit rate over the hot read scenarios", hit_rate, ">=", 0.9),
)
INFORMATION_RATIOS = (
    ("Flask + Redis GET / bare Flask, req/s", "redis_floor", "hello"),
    ("pooled peer / naive baseline, req/s", "peer_detail", "naive_detail"),
    ("paint detail on random ids / Flask + Redis GET, req/s", "random_detail", "redis_floor"),
    ("uncached paint detail / naive baseline, req/s", "uncached_detail", "naive_detail"),
    (
        "uncached paint detail, observability on / off, req/s",
        "uncached_detail",
        "uncached_detail_unobserved",
    ),
)


def machine() -> dict[str, Any]:
    """Return the CPU model, cores, memory and system the benchmark ran on."""
    model = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.partition(":")[2].strip()
            break
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "ram_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "system": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
    }


def git_state() -> dict[str, Any]:
    """Return the commit studio ran from and the files changed on top of it."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=REPO, capture_output=True, text=True, check=False
        ).stdout

    # Porcelain lines are "XY PATH": two status letters, a space, the path.
    changed = [line[3:] for line in git("status", "--porcelain").splitlines()]
    return {"commit": git("rev-parse", "--short", "HEAD").strip(), "uncommitted_files": changed}


def evaluate(results: dict[str, Any]) -> None:
    """Add the ratios and the targets' verdicts to the results."""
    results["targets"] = [target.check(results) for target in TARGETS]
    results["ratios"] = {
        label: ratio(results, studio, reference) for label, studio, reference in INFORMATION_RATIOS
    }


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.2f}" if abs(value) < 10 else f"{value:,.0f}"
    if isinstance(value, float):
        value = int(value)
    return f"{value:,}" if isinstance(value, int) else str(value)


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(value) for value in row) + " |" for row in rows]
    return lines + [""]


def _setting_lines(results: dict[str, Any]) -> list[str]:
    box, run = results["machine"], results["settings"]
    seeded = "reused" if run["reused_database"] else f"seeded in {run['seed_seconds']:.1f} s"
    git = results["git"]
    changed = len(git["uncommitted_files"])
    idle = run["background_cpu"]
    busy = f"{idle['all']:g} % of one core busy" + (
        f" (busiest: {idle['busiest_other']})" if idle["busiest_other"] else ""
    )
    return [
        f"# studio benchmark, {results['started_at']}",
        "",
        f"- Machine: {box['cpu']}, {box['cores']} cores, {box['ram_gib']} GiB RAM, "
        f"{box['system']}, Python {box['python']}",
        f"- Before the run: {busy}",
        f"- Services: PostgreSQL {run['postgres']}, Redis {run['redis']} (both on this machine)",
        f"- Data: {run['paints']:,} paints ({seeded})",
        f"- Each scenario: {run['warmup_s']:g} s warm-up, then {run['duration_s']:g} s measured;"
        f" wrk {run['wrk']} (one thread, one connection per client, no wait between requests)"
        " in its own process",
        *_rounds_line(run.get("rounds", 1)),
        f"- Every server: `gunicorn APP` with {run['gunicorn']}",
        f"- studio at {git['commit']}"
        + (f" plus {changed} uncommitted file(s)" if changed else ""),
        "",
    ]


def _rounds_line(rounds: int) -> list[str]:
    if rounds <= 1:
        return []
    return [
        f"- {rounds} rounds: every server up at once, the scenarios measured in turns (order"
        " alternating); req/s and latencies are medians over the rounds, requests and errors"
        " their sums, and each ratio the median of the rounds' ratios"
    ]


def markdown(results: dict[str, Any]) -> str:
    """Return the results as the markdown report printed and written to latest.md."""
    lines = _setting_lines(results)
    lines += _table(
        [
            "Scenario",
            "Server",
            "Clients",
            "Requests",
            "Req/s",
            "p50 ms",
            "p95 ms",
            "p99 ms",
            "Errors",
        ],
        [
            [_title(s), s["server"], s["clients"], s["requests"], s["rps"]]
            + [s["p50_ms"], s["p95_ms"], s["p99_ms"], s["errors"]]
            for s in results["scenarios"]
        ],
    )
    if any(s.get("load_generator_saturated") for s in results["scenarios"]):
        lines += [
            f"{SATURATED_MARK} wrk used more than 90 % of a core: that figure is as much the"
            " load generator's limit as the server's.",
            "",
        ]
    lines += ["## Targets", ""]
    lines += _table(
        ["Target", "Measured", "Goal", "Result"],
        [[t["target"], t["measured"], t["goal"], t["result"]] for t in results["targets"]]
        + [[label, value, "(for information)", ""] for label, value in results["ratios"].items()],
    )
    lines += _round_lines(results) + _error_lines(results)
    lines += _cache_lines(results) + _cpu_lines(results)
    lines += ["## Scenarios", ""]
    lines += [f"- **{s['title']}**: {s['description']}" for s in results["scenarios"]]
    return "\n".join(lines) + "\n"


def _title(item: dict[str, Any]) -> str:
    return item["title"] + (f" {SATURATED_MARK}" if item.get("load_generator_saturated") else "")


def _round_lines(results: dict[str, Any]) -> list[str]:
    rows = [[s["title"], *s["rounds_rps"]] for s in results["scenarios"] if s.get("rounds_rps")]
    if not rows:
        return []
    header = ["Scenario", *(f"round {n}" for n in range(1, len(rows[0])))]
    return ["## Req/s in each round", "", *_table(header, rows)]


def _error_lines(results: dict[str, Any]) -> list[str]:
    rows = [
        [s["title"], ", ".join(f"{kind} {count:,}" for kind, count in s["error_kinds"].items())]
        for s in results["scenarios"]
        if s.get("error_kinds")
    ]
    if not rows:
        return []
    return [
        "## Errors",
        "",
        "As wrk counts them: status_errors are answers with a status above 399 (in the mixes"
        " every answer's status is counted, and any but 2xx is an error); the others are"
        " sockets that failed or requests not answered within 10 s.",
        "",
        *_table(["Scenario", "Errors by kind"], rows),
    ]


def _cache_lines(results: dict[str, Any]) -> list[str]:
    cache = results.get("cache")
    if not cache:
        return []
    rows = [
        [s["title"], s["cache"]["hits"], s["cache"]["misses"], s["cache"]["hit_rate"]]
        for s in results["scenarios"]
        if s.get("cache")
    ]
    rows.append(["all hot read scenarios", cache["hits"], cache["misses"], cache["hit_rate"]])
    return [
        "## Cache",
        "",
        "From `flask --app wsgi cache-status` before and after each read scenario (warm-up"
        " included), summed over the workers. Every studio server starts on an empty cache"
        " of its own; the hit-rate target counts the hot read scenarios, not the random ids,"
        " which mostly miss by design.",
        "",
        *_table(["Scenario", "Hits", "Misses", "Hit rate"], rows),
    ]


CPU_COLUMNS = {
    "load": "wrk",
    "gunicorn": "gunicorn",
    "postgres": "PostgreSQL",
    "redis": "Redis",
    "other": "other processes",
    "unattributed": "unattributed",
    "all": "all",
    "busiest_other": "busiest others",
}


def _cpu_lines(results: dict[str, Any]) -> list[str]:
    rows = [
        [s["title"]] + [s["cpu"][key] for key in CPU_COLUMNS]
        for s in results["scenarios"]
        if s.get("cpu")
    ]
    cores = results["machine"]["cores"]
    return [
        f"## CPU during the measured part (% of one core; the machine has {cores * 100} %)",
        "",
        "*unattributed*: processes that started and ended inside the window (the naive app's"
        " one-request PostgreSQL connections) and the kernel's own work. *wrk*: the load"
        " generator, from its own CPU time once it has ended.",
        "",
        *_table(["Scenario", *CPU_COLUMNS.values()], rows),
    ]


def write(results: dict[str, Any], stamp: str, partial: bool = False) -> list[Path]:
    """Write latest.json and latest.md, and a copy of each named after the run's start.

    A partial run (some scenarios only) writes the dated copies alone: latest stays the
    last full run, which the README quotes.
    """
    RESULTS.mkdir(parents=True, exist_ok=True)
    written = []
    # The JSON first: if rendering the markdown failed, the figures would still be kept.
    for suffix, render in (
        ("json", lambda: json.dumps(results, indent=2) + "\n"),
        ("md", lambda: markdown(results)),
    ):
        content = render()
        for name in (stamp,) if partial else ("latest", stamp):
            path = RESULTS / f"{name}.{suffix}"
            path.write_text(content)
            written.append(path)
    return written
