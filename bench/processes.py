"""Child processes the benchmark starts: gunicorn servers, and stopping them for sure."""

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
READY_TIMEOUT_SECONDS = 60
STOP_TIMEOUT_SECONDS = 15
# Settings that say whether two gunicorn runs were alike.
GUNICORN_SETTINGS = ("workers", "worker_class", "threads", "timeout", "keepalive", "backlog")


def free_port() -> int:
    """Return a TCP port on the loopback that nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def stop(process: subprocess.Popen, timeout: float = STOP_TIMEOUT_SECONDS) -> None:
    """Ask a child started in its own session to stop, then kill its group if it lingers."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
            return
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    process.wait()


def gunicorn_settings(app: str, env: Mapping[str, str]) -> dict[str, str]:
    """Return gunicorn's resolved settings for serving `app` with `env`."""
    done = subprocess.run(
        [str(VENV_BIN / "gunicorn"), "--print-config", app],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    if done.returncode != 0:
        raise RuntimeError(f"gunicorn cannot load {app}:\n{done.stderr[-2000:]}")
    settings = {}
    for line in done.stdout.splitlines():
        name, _, value = line.partition("=")
        if name.strip() in GUNICORN_SETTINGS:
            settings[name.strip()] = value.strip()
    return settings


class Gunicorn:
    """`gunicorn APP` on a free loopback port, as the Procfile runs it; a context manager."""

    def __init__(self, app: str, env: Mapping[str, str], log: Path) -> None:
        self.app = app
        self.env = dict(env)
        self.log = log
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> "Gunicorn":
        with self.log.open("w") as log:
            self.process = subprocess.Popen(
                [str(VENV_BIN / "gunicorn"), self.app, "--bind", f"127.0.0.1:{self.port}"],
                env=self.env,
                cwd=REPO,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.process is not None:
            stop(self.process)

    def wait_ready(self, path: str, headers: Mapping[str, str]) -> None:
        """Wait until `path` answers 200 from every worker, or fail with the server's log."""
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        request = urllib.request.Request(self.url + path, headers=dict(headers))
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            try:
                with urllib.request.urlopen(request, timeout=5) as response:
                    if response.status == 200 and len(self.workers()) >= self.worker_count():
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.2)
        tail = self.log.read_text()[-2000:]
        raise RuntimeError(f"gunicorn {self.app} did not answer {path} with 200:\n{tail}")

    def worker_count(self) -> int:
        return int(self.env.get("WEB_CONCURRENCY", "1"))

    def workers(self) -> list[psutil.Process]:
        return psutil.Process(self.process.pid).children()

    def pids(self) -> set[int]:
        """Return the ids of the master and its workers."""
        return {self.process.pid, *(worker.pid for worker in self.workers())}
