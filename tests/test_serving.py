"""gunicorn's workers and threads: from WEB_CONCURRENCY, else the container's cgroup limits."""

from pathlib import Path

import pytest

from studio import serving
from studio.serving import MIB, Machine, decide, read_machine

GIB = 1024 * MIB
HOST_CPUS = 64
HOST_MEMORY = 256 * GIB


def write(root: Path, files: dict[str, str]) -> None:
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content + "\n")


def machine_of(tmp_path: Path, files: dict[str, str], own: str = "0::/") -> Machine:
    root = tmp_path / "cgroup"
    root.mkdir()
    write(root, files)
    (tmp_path / "proc-cgroup").write_text(own + "\n")
    return read_machine(root, tmp_path / "proc-cgroup", HOST_CPUS, HOST_MEMORY)


V2 = {"cgroup.controllers": "cpu memory pids"}


@pytest.mark.parametrize(
    ("files", "cpus", "memory"),
    [
        ({**V2, "cpu.max": "150000 100000", "memory.max": str(512 * MIB)}, 1.5, 512 * MIB),
        ({**V2, "cpu.max": "max 100000", "memory.max": "max"}, HOST_CPUS, HOST_MEMORY),
        # A limit above what the host has is no limit.
        ({**V2, "cpu.max": "12800000 100000", "memory.max": str(HOST_MEMORY * 2)}, 64, HOST_MEMORY),
        ({"cpu/cpu.cfs_quota_us": "200000", "cpu/cpu.cfs_period_us": "100000"}, 2, HOST_MEMORY),
        # v1 writes "no limit" as a number near 2**63, and no quota as -1.
        (
            {
                "cpu,cpuacct/cpu.cfs_quota_us": "-1",
                "cpu,cpuacct/cpu.cfs_period_us": "100000",
                "memory/memory.limit_in_bytes": "9223372036854771712",
            },
            HOST_CPUS,
            HOST_MEMORY,
        ),
        ({"memory/memory.limit_in_bytes": str(GIB)}, HOST_CPUS, GIB),
        ({}, HOST_CPUS, HOST_MEMORY),
    ],
    ids=["v2", "v2-max", "v2-above-host", "v1-quota", "v1-none", "v1-memory", "absent"],
)
def test_the_machine_is_what_the_cgroup_allows(tmp_path, files, cpus, memory):
    machine = machine_of(tmp_path, files)
    assert (machine.cpus, machine.memory_bytes) == (cpus, memory)


def test_the_tightest_limit_of_the_cgroup_and_its_parents_counts(tmp_path):
    files = {
        **V2,
        "memory.max": str(4 * GIB),
        "cpu.max": "max 100000",
        "system.slice/memory.max": "max",
        "system.slice/cpu.max": "200000 100000",
        "system.slice/app.scope/memory.max": str(GIB),
        "system.slice/app.scope/cpu.max": "max 100000",
    }
    machine = machine_of(tmp_path, files, own="0::/system.slice/app.scope")
    assert (machine.cpus, machine.memory_bytes) == (2, GIB)
    assert machine.cpu_source == "cgroup v2 CPU quota"
    assert machine.memory_source == "cgroup v2 memory limit"


def test_a_v1_cgroup_of_its_own_counts_too(tmp_path):
    files = {
        "memory/memory.limit_in_bytes": "9223372036854771712",
        "memory/docker/abc/memory.limit_in_bytes": str(768 * MIB),
        "cpu/cpu.cfs_quota_us": "-1",
        "cpu/docker/abc/cpu.cfs_quota_us": "50000",
        "cpu/docker/abc/cpu.cfs_period_us": "100000",
    }
    own = "4:memory:/docker/abc\n2:cpu,cpuacct:/docker/abc"
    machine = machine_of(tmp_path, files, own=own)
    assert (machine.cpus, machine.memory_bytes) == (0.5, 768 * MIB)


def test_the_real_machine_is_read_without_error():
    machine = read_machine()
    assert 0 < machine.cpus <= serving.affinity_cpus()
    assert 0 < machine.memory_bytes <= serving.physical_memory()


def test_web_concurrency_wins_over_the_machine():
    small = Machine(0.5, 256 * MIB, "", "")
    found = decide({"WEB_CONCURRENCY": "6", "THREADS_PER_WORKER": "1"}, small)
    assert (found.workers, found.threads, found.worker_class) == (6, 1, "sync")
    assert found.reason == "WEB_CONCURRENCY"


@pytest.mark.parametrize(
    ("cpus", "memory", "threads", "workers"),
    [
        (2, 8 * GIB, 4, 2),  # a worker per core when threads wait on the database
        (2, 8 * GIB, 1, 5),  # sync workers: twice the cores and one
        (0.5, 8 * GIB, 4, 1),
        (8, 512 * MIB, 4, 2),  # memory decides: (512 - 40) // 180
        (8, 1024 * MIB, 1, 5),
        (8, 128 * MIB, 1, 1),  # never none
    ],
)
def test_workers_follow_cores_and_never_outgrow_memory(cpus, memory, threads, workers):
    machine = Machine(cpus, memory, "CPU affinity", "physical memory")
    found = decide({"THREADS_PER_WORKER": str(threads)}, machine)
    assert found.workers == workers
    assert found.threads == threads
    if workers > 1:
        needed = serving.MASTER_MEMORY_BYTES + found.workers * serving.WORKER_MEMORY_BYTES
        assert needed <= memory


def test_threads_default_to_the_measured_choice():
    found = decide({}, Machine(2, 8 * GIB, "", ""))
    assert (found.workers, found.threads, found.worker_class) == (2, 2, "gthread")


@pytest.mark.parametrize("name", ["WEB_CONCURRENCY", "THREADS_PER_WORKER"])
@pytest.mark.parametrize("value", ["0", "two", "-1", "1.5"])
def test_a_bad_count_is_refused_with_its_name(name, value):
    with pytest.raises(ValueError, match=name):
        decide({name: value}, Machine(2, 8 * GIB, "", ""))
