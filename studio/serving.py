"""How many gunicorn workers and threads fit the container studio runs in.

gunicorn.conf.py loads this file by its path, before anything else of studio: it imports
the standard library only. Importing the studio package there would bring Flask, the app
and prometheus_client into gunicorn's master process, before PROMETHEUS_MULTIPROC_DIR is
set, and a HUP would no longer reload the code.

What a container may use is what its cgroup allows, not what the host has:
`os.cpu_count()` on a platform's machine counts every core of the host (dozens), while
the container gets a quota of a few. So the cores are the CPU affinity, cut to the cgroup's
CPU quota (v2 `cpu.max`, v1 `cpu.cfs_quota_us` / `cpu.cfs_period_us`), and the memory is
the physical memory cut to the cgroup's limit (v2 `memory.max`, v1
`memory.limit_in_bytes`), the tightest of the process's cgroup and its parents.
"""

import math
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

MIB = 1024 * 1024
CGROUP_ROOT = Path("/sys/fs/cgroup")
PROC_CGROUP = Path("/proc/self/cgroup")
# cgroup v1 writes "no limit" as a number near 2**63; anything above 1 PiB is none.
NO_LIMIT_BYTES = 1 << 50
# A studio worker's resident memory after the load of bench/gunicorn_modes.py (production
# settings, 100,000 paints, Redis): 88-92 MiB, sync or gthread alike. A worker is given
# twice that, for what a request may hold on top (a CSV export's batches, an import's
# check of a large file) and for growth between two recycles (max_requests).
WORKER_MEMORY_BYTES = 180 * MIB
# gunicorn's master: the interpreter, gunicorn and this file, nothing of the app.
MASTER_MEMORY_BYTES = 40 * MIB
# Threads per worker when THREADS_PER_WORKER is not set (README, "Serving"). Measured on a
# quiet machine against sync workers and 4 and 8 threads: 2 threads served cached reads
# within a tenth of sync workers, random ids faster, the mix with the same p99, on 6
# connections; unlike a sync worker, one slow request (an export, a lock wait) leaves the
# worker's other thread serving, which matters where memory allows only 2 workers.
DEFAULT_THREADS = 2


@dataclass(frozen=True)
class Machine:
    """What this process may use: cores (may be fractional) and bytes of memory."""

    cpus: float
    memory_bytes: int
    cpu_source: str
    memory_source: str


@dataclass(frozen=True)
class Serving:
    """gunicorn's workers and threads, and why."""

    workers: int
    threads: int
    reason: str

    @property
    def worker_class(self) -> str:
        # gunicorn's sync worker serves one request at a time; threads need gthread.
        return "gthread" if self.threads > 1 else "sync"


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def _own_paths(proc_cgroup: Path) -> dict[str, str]:
    """Return this process's cgroup path per controller ("" for cgroup v2's unified tree)."""
    paths: dict[str, str] = {}
    for line in (_read(proc_cgroup) or "").splitlines():
        parts = line.split(":", 2)
        if len(parts) == 3:
            for controller in parts[1].split(",") if parts[1] else [""]:
                paths[controller] = parts[2]
    return paths


def _upwards(mount: Path, own: str | None) -> Iterator[Path]:
    """Yield the process's cgroup directory under `mount` and each parent up to `mount`."""
    if own and own != "/":
        directory = mount / own.lstrip("/")
        while directory != mount and mount in directory.parents:
            if directory.is_dir():
                yield directory
            directory = directory.parent
    yield mount


def _v2_limits(root: Path, own: str | None) -> tuple[float | None, int | None]:
    cpus: float | None = None
    memory: int | None = None
    for directory in _upwards(root, own):
        quota, _, period = (_read(directory / "cpu.max") or "max").partition(" ")
        if quota != "max" and period:
            share = int(quota) / int(period)
            cpus = share if cpus is None else min(cpus, share)
        limit = _read(directory / "memory.max") or "max"
        if limit != "max":
            memory = int(limit) if memory is None else min(memory, int(limit))
    return cpus, memory


def _v1_mount(root: Path, controller: str) -> Path | None:
    names = {"cpu": ("cpu", "cpu,cpuacct", "cpuacct,cpu"), "memory": ("memory",)}[controller]
    return next((root / name for name in names if (root / name).is_dir()), None)


def _v1_limits(root: Path, own: dict[str, str]) -> tuple[float | None, int | None]:
    cpus: float | None = None
    memory: int | None = None
    mount = _v1_mount(root, "cpu")
    for directory in _upwards(mount, own.get("cpu")) if mount else ():
        quota = int(_read(directory / "cpu.cfs_quota_us") or -1)
        period = int(_read(directory / "cpu.cfs_period_us") or 0)
        if quota > 0 and period > 0:
            cpus = quota / period if cpus is None else min(cpus, quota / period)
    mount = _v1_mount(root, "memory")
    for directory in _upwards(mount, own.get("memory")) if mount else ():
        limit = int(_read(directory / "memory.limit_in_bytes") or NO_LIMIT_BYTES)
        if limit < NO_LIMIT_BYTES:
            memory = limit if memory is None else min(memory, limit)
    return cpus, memory


def cgroup_limits(
    root: Path = CGROUP_ROOT, proc_cgroup: Path = PROC_CGROUP
) -> tuple[float | None, int | None, str]:
    """Return the cgroup's CPU quota in cores and memory limit in bytes (None: no limit)."""
    own = _own_paths(proc_cgroup)
    if (root / "cgroup.controllers").exists():
        return (*_v2_limits(root, own.get("")), "cgroup v2")
    if _v1_mount(root, "cpu") or _v1_mount(root, "memory"):
        return (*_v1_limits(root, own), "cgroup v1")
    return None, None, "no cgroup"


def physical_memory() -> int:
    """Return the machine's physical memory in bytes."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def affinity_cpus() -> int:
    """Return how many cores this process may be scheduled on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def read_machine(
    root: Path = CGROUP_ROOT,
    proc_cgroup: Path = PROC_CGROUP,
    cpus_allowed: int | None = None,
    memory_installed: int | None = None,
) -> Machine:
    """Return the cores and memory this process may really use."""
    cpus_allowed = cpus_allowed or affinity_cpus()
    memory_installed = memory_installed or physical_memory()
    quota, limit, kind = cgroup_limits(root, proc_cgroup)
    if quota is not None and quota < cpus_allowed:
        cpus, cpu_source = quota, f"{kind} CPU quota"
    else:
        cpus, cpu_source = float(cpus_allowed), "CPU affinity"
    if limit is not None and limit < memory_installed:
        memory, memory_source = limit, f"{kind} memory limit"
    else:
        memory, memory_source = memory_installed, "physical memory"
    return Machine(cpus, memory, cpu_source, memory_source)


def _whole(environ: Mapping[str, str], name: str) -> int | None:
    text = (environ.get(name) or "").strip()
    if not text:
        return None
    if not text.isdigit() or int(text) < 1:
        raise ValueError(f"{name} must be a whole number of 1 or more, not {text!r}")
    return int(text)


def workers_for(machine: Machine, threads: int) -> tuple[int, str]:
    """Return how many workers the machine takes, and the limit that decided it."""
    cores = max(1, math.ceil(machine.cpus))
    # A threaded worker keeps its core busy while some threads wait on the database; a
    # sync worker waits with it, so twice the cores and one more (gunicorn's rule).
    by_cpu = cores if threads > 1 else 2 * cores + 1
    by_memory = max(1, (machine.memory_bytes - MASTER_MEMORY_BYTES) // WORKER_MEMORY_BYTES)
    if by_memory < by_cpu:
        return by_memory, f"memory: {machine.memory_bytes // MIB} MiB ({machine.memory_source})"
    return by_cpu, f"cores: {machine.cpus:g} ({machine.cpu_source})"


def decide(environ: Mapping[str, str], machine: Machine) -> Serving:
    """Return the workers and threads to serve with: the environment's, else the machine's."""
    threads = _whole(environ, "THREADS_PER_WORKER") or DEFAULT_THREADS
    workers = _whole(environ, "WEB_CONCURRENCY")
    if workers is not None:
        return Serving(workers, threads, "WEB_CONCURRENCY")
    workers, limit = workers_for(machine, threads)
    return Serving(workers, threads, limit)
