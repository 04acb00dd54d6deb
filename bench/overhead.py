"""What measuring costs: `.venv/bin/python -m bench.overhead [--rounds 6] [--duration 10]`.

On this kind of shared 2-core machine one 20 s run per server cannot resolve 5 %: the same
scenario moved by a third between two runs minutes apart. So studio is served twice at
once, with OBSERVABILITY on and off (both idle until loaded), and the two are loaded in
turns, in alternating order, for several short rounds; each round gives a ratio measured
seconds apart, and the median ratio is the answer. The database is the main benchmark's.
"""

import argparse
import json
import statistics
import sys
import tempfile
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from . import report, run
from .load import Run, run_wrk, wrk_version
from .processes import REPO, Gunicorn

# The read, as a request maker of bench/wrk/scenarios.lua, and the settings it adds.
VARIANTS = {
    "cached": ("hot_detail", {}),
    "random-ids": ("detail", {}),
    "uncached": ("detail", {"CACHE_TYPE": "NullCache"}),
}
TARGET = report.OBSERVABILITY_BAR  # observability on / off, req/s


def parse_args(argv: list[str] | None) -> tuple[argparse.Namespace, argparse.Namespace]:
    parser = argparse.ArgumentParser(prog="python -m bench.overhead", description=__doc__)
    parser.add_argument("--rounds", type=int, default=6, help="turns per server (6)")
    parser.add_argument("--duration", type=float, default=10, help="seconds measured (10)")
    parser.add_argument("--warmup", type=float, default=3, help="seconds of warm-up (3)")
    parser.add_argument("--only", choices=sorted(VARIANTS), help="one of the reads")
    ours, rest = parser.parse_known_args(argv)
    return ours, run.parse_args(rest)


def measure(bench: run.Bench, ours: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """Serve each read with observability on and off; load them in turns; return the rounds."""
    token = {"Authorization": f"Bearer {bench.seeded.token}"}
    results: dict[str, Any] = {}
    for name, (script, extra) in VARIANTS.items():
        if ours.only and name != ours.only:
            continue
        with ExitStack() as stack:
            servers = {}
            for switch in ("on", "off"):
                env = {**bench.env, **extra, "OBSERVABILITY": "true" if switch == "on" else "false"}
                # Each its own cache, so that neither reads what the other stored.
                env["CACHE_KEY_PREFIX"] = f"{run.CACHE_KEY_PREFIX}{switch}:"
                log = workdir / f"gunicorn-{name}-{switch}.log"
                servers[switch] = stack.enter_context(Gunicorn("wsgi:app", env, log))
            for server in servers.values():
                server.wait_ready("/api/v1/paints/1", token)
            results[name] = rounds(bench, ours, script, servers, workdir / name)
    return results


def rounds(
    bench: run.Bench, ours: argparse.Namespace, script: str, servers: dict, workdir: Path
) -> dict[str, Any]:
    workdir.mkdir()
    figures: dict[str, list[float]] = {"on": [], "off": []}
    # The workers' CPU time per request: steadier than req/s when other work shares the cores.
    cpu_us: dict[str, list[float]] = {"on": [], "off": []}
    for number in range(ours.rounds):
        order = ("on", "off") if number % 2 == 0 else ("off", "on")
        for switch in order:
            server = servers[switch]
            load = Run(script, server.url, bench.args.clients, ours.warmup, ours.duration)
            raw = workdir / f"{switch}-{number}"
            stats = run_wrk(load, bench.config, raw, server.pids, bench.database)
            figures[switch].append(stats["rps"])
            if stats.get("cpu") and stats["rps"]:
                cpu_us[switch].append(round(stats["cpu"]["gunicorn"] * 1e4 / stats["rps"]))
        cpu_text = (
            f"; worker CPU per request on {cpu_us['on'][-1]} us, off {cpu_us['off'][-1]} us"
            if cpu_us["on"] and cpu_us["off"]
            else ""
        )
        print(
            f"  round {number + 1}: req/s on {figures['on'][-1]:,.0f},"
            f" off {figures['off'][-1]:,.0f}{cpu_text}"
        )
    ratios = [on / off for on, off in zip(figures["on"], figures["off"], strict=True) if off]
    return {
        "script": script,
        "rps_on": figures["on"],
        "rps_off": figures["off"],
        "ratios": [round(value, 3) for value in ratios],
        "median_ratio": round(statistics.median(ratios), 3),
        "cpu_us_per_request_on": cpu_us["on"],
        "cpu_us_per_request_off": cpu_us["off"],
        "result": "PASS" if statistics.median(ratios) >= TARGET else "MISS",
    }


def _cpu_text(found: dict[str, Any]) -> str:
    on, off = found.get("cpu_us_per_request_on"), found.get("cpu_us_per_request_off")
    if not on or not off or len(on) != len(off):
        return "-"
    # Per round, like the req/s: the two servers' figures come from seconds apart.
    extra = statistics.median(a / b for a, b in zip(on, off, strict=True)) - 1
    medians = f"{statistics.median(on):,.0f} / {statistics.median(off):,.0f} us"
    return f"{medians}, {extra:+.1%} (median per round)"


def markdown(results: dict[str, Any]) -> str:
    lines = [
        f"# What observability costs, {results['started_at']}",
        "",
        f"studio at {results['git']['commit']}; {results['rounds']} rounds of"
        f" {results['duration_s']:g} s per server after {results['warmup_s']:g} s warm-up,"
        f" {results['clients']} clients, order alternating; target on/off >= {TARGET}.",
        "",
        "| Read | Req/s on (median) | Req/s off (median) | On/off per round | Median | Result |"
        " Worker CPU per request, on / off |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, found in results["reads"].items():
        rounds_text = ", ".join(f"{value:.2f}" for value in found["ratios"])
        lines.append(
            f"| {name} paint detail | {statistics.median(found['rps_on']):,.0f} |"
            f" {statistics.median(found['rps_off']):,.0f} | {rounds_text} |"
            f" {found['median_ratio']:.2f} | {found['result']} | {_cpu_text(found)} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ours, args = parse_args(argv)
    args.reuse = True
    wrk_version()
    started = datetime.now(UTC)
    with tempfile.TemporaryDirectory(prefix="studio-overhead-") as workdir:
        bench = run.Bench(args, Path(workdir))
        bench.prepare()
        results = {
            "started_at": started.strftime("%Y-%m-%d %H:%M UTC"),
            "git": report.git_state(),
            "rounds": ours.rounds,
            "duration_s": ours.duration,
            "warmup_s": ours.warmup,
            "clients": args.clients,
            "reads": measure(bench, ours, Path(workdir)),
        }
    path = report.RESULTS / "overhead-latest"
    path.with_suffix(".json").write_text(json.dumps(results, indent=2) + "\n")
    path.with_suffix(".md").write_text(markdown(results))
    print("\n" + markdown(results))
    print(f"Written: {path.relative_to(REPO)}.json, .md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
