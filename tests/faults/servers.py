"""Throwaway PostgreSQL, Redis and gunicorn servers that fault tests start and break at will.

Each server runs on a free port of its own; nothing here connects to the shared
services of the machine. Every process writes to a log file, never to the terminal.
"""

import http.client
import logging
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import psutil
import psycopg2
from psycopg2 import sql
from redis import Redis
from redis.exceptions import RedisError

from ..conftest import free_port

logger = logging.getLogger(__name__)

REPOSITORY = Path(__file__).resolve().parents[2]
ADMIN_PASSWORD = "correct horse battery staple"
INITDB_OPTIONS = "-A trust -U postgres --no-sync -E UTF8 --locale=C".split()
SERVER_OPTIONS = "-c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=40"
REDIS_OPTIONS = ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
MAX_SOCKET_PATH = 100  # a Unix socket's path has room for 107 bytes on Linux
# Variables of a developer's shell that would point a server started here at shared
# services or change how gunicorn binds; each server gets only what it is given.
INHERITED_SETTINGS = (
    "DATABASE_URL",
    "REDIS_URL",
    "CACHE_REDIS_URL",
    "PROMETHEUS_MULTIPROC_DIR",
    "METRICS_TOKEN",
    "WEB_CONCURRENCY",
    "GUNICORN_CMD_ARGS",
)


def tail(path: Path, chars: int = 4000) -> str:
    """Return the end of a log file, or a note that there is none."""
    try:
        return path.read_text(errors="replace")[-chars:]
    except FileNotFoundError:
        return f"({path.name} was not written)"


def postgres_bindir() -> Path | None:
    """Return the directory holding initdb and pg_ctl, or None when they are not installed."""
    initdb = shutil.which("initdb")
    if initdb and (Path(initdb).parent / "pg_ctl").exists():
        return Path(initdb).parent
    # Debian keeps the server programs out of PATH, in a versioned directory.
    try:
        found = subprocess.run(
            ["pg_config", "--bindir"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    bindir = Path(found)
    return bindir if (bindir / "initdb").exists() and (bindir / "pg_ctl").exists() else None


def signal_all(processes: Iterable[psutil.Process], signum: int) -> None:
    """Send a signal to each process that still exists."""
    for process in processes:
        try:
            process.send_signal(signum)
        except psutil.NoSuchProcess:
            pass


class TableLock:
    """An ACCESS EXCLUSIVE lock on one table, held by a thread of its own, then rolled back."""

    def __init__(self, dsn: str, table: str, seconds: float) -> None:
        self.held = threading.Event()
        self.error: Exception | None = None
        self.thread = threading.Thread(
            target=self._hold, args=(dsn, table, seconds), name=f"lock {table}", daemon=True
        )
        self.thread.start()

    def _hold(self, dsn: str, table: str, seconds: float) -> None:
        try:
            connection = psycopg2.connect(dsn, connect_timeout=5)
        except psycopg2.Error as exc:
            self.error = exc
            return
        try:
            with connection.cursor() as cursor:
                # psycopg2 opens the transaction itself: this is BEGIN; LOCK TABLE ...
                lock = sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE")
                cursor.execute(lock.format(sql.Identifier(table)))
                self.held.set()
                time.sleep(seconds)
            connection.rollback()
        except psycopg2.Error as exc:
            self.error = exc
        finally:
            connection.close()

    def wait_held(self, timeout: float = 10) -> None:
        """Wait until the lock is held; raise why it was not."""
        if not self.held.wait(timeout):
            raise RuntimeError(f"the table lock was not taken within {timeout} s: {self.error!r}")

    def join(self, timeout: float | None = None) -> None:
        """Wait until the lock is released; raise what went wrong while holding it."""
        self.thread.join(timeout)
        if self.error is not None:
            raise self.error


class OwnPostgres:
    """A throwaway PostgreSQL cluster on a free port, with its socket in its own directory."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.bindir = postgres_bindir()
        if self.bindir is None:
            raise RuntimeError("PostgreSQL's server programs (initdb, pg_ctl) are not installed")
        self.port = free_port()
        self.as_root = os.geteuid() == 0
        self.home = self._make_home()
        self.data = self.home / "data"
        self.log_path = self.directory / f"postgres-{self.port}.log"
        self.command_log = self.directory / f"pg_ctl-{self.port}.log"
        self.down_since: float | None = None
        self.up_since: float | None = None
        self.frozen: list[psutil.Process] = []

    def _make_home(self) -> Path:
        if not self.as_root:
            return Path(tempfile.mkdtemp(prefix="postgres-", dir=self.directory))
        # PostgreSQL refuses to run as root, and pytest's directories are private to root:
        # the cluster lives in a directory of its own, in the system's, owned by postgres.
        home = Path(tempfile.mkdtemp(prefix="studio-faults-pg-"))
        home.chmod(0o755)
        shutil.chown(home, "postgres", "postgres")
        return home

    def url(self, database: str = "postgres") -> str:
        """Return the URL of a database on this server."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def _pg_command(
        self, program: str, *args: str, check: bool = True, output: Path | None = None
    ) -> int:
        command = [str(self.bindir / program), *args]
        if self.as_root:
            command = ["runuser", "-u", "postgres", "--", *command]
        with open(output or self.command_log, "ab") as out, open(self.command_log, "ab") as log:
            code = subprocess.run(command, cwd=self.home, stdout=out, stderr=log).returncode
        if check and code != 0:
            raise RuntimeError(
                f"{program} {' '.join(args)} exited with {code}:\n"
                f"{tail(self.command_log)}\n{tail(self.log_path)}"
            )
        return code

    def _pg_ctl(self, *args: str, **options: Any) -> int:
        return self._pg_command("pg_ctl", "-D", str(self.data), "-w", *args, **options)

    def start(self) -> None:
        """Start the server, creating the cluster the first time; wait until it accepts."""
        if not self.data.exists():
            self._pg_command("initdb", "-D", str(self.data), *INITDB_OPTIONS)
        options = f"-p {self.port} -k {self.home} {SERVER_OPTIONS}"
        # Without -l the server writes to pg_ctl's output, a file opened here: its log can
        # sit in the test's directory, where the postgres user could not create one.
        self._pg_ctl("-o", options, "start", output=self.log_path)
        self.up_since = time.monotonic()

    def stop(self, mode: str = "fast") -> None:
        """Stop the server with pg_ctl's shutdown mode (smart, fast or immediate)."""
        # A frozen postmaster cannot act on the shutdown request.
        self.thaw()
        self.down_since = time.monotonic()
        self._pg_ctl("-m", mode, "stop")

    def restart(self, mode: str = "fast") -> float:
        """Stop and start the server; return the seconds from the stop request to accepting.

        That is an upper bound of the time new connections were refused: pg_ctl notices
        the server is up again only when it next polls, every tenth of a second.
        """
        self.stop(mode)
        self.start()
        return self.up_since - self.down_since

    def postmaster_pid(self) -> int:
        """Return the postmaster's process id, from the first line of postmaster.pid."""
        return int((self.data / "postmaster.pid").read_text().splitlines()[0])

    def freeze(self) -> None:
        """Stop the postmaster and every backend: connections hang rather than fail."""
        postmaster = psutil.Process(self.postmaster_pid())
        # The postmaster first, so that it starts no backend after the list is taken.
        postmaster.suspend()
        self.frozen = [postmaster, *postmaster.children(recursive=True)]
        signal_all(self.frozen[1:], signal.SIGSTOP)

    def thaw(self) -> None:
        """Let the frozen processes run again."""
        signal_all(reversed(self.frozen), signal.SIGCONT)
        self.frozen = []

    def execute(
        self,
        statement: str | sql.Composable,
        parameters: Sequence[Any] | Mapping[str, Any] | None = None,
        *,
        database: str = "postgres",
        connect_timeout: int = 5,
    ) -> list[tuple] | None:
        """Run SQL in autocommit on a new connection; return the last statement's rows, if any."""
        connection = psycopg2.connect(self.url(database), connect_timeout=connect_timeout)
        try:
            connection.autocommit = True
            with connection.cursor() as cursor:
                cursor.execute(statement, parameters)
                return cursor.fetchall() if cursor.description else None
        finally:
            connection.close()

    def create_database(self, name: str) -> str:
        """Create a database; return its URL."""
        self.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url(name)

    def hold_lock(self, table: str, seconds: float, database: str) -> TableLock:
        """Lock a table ACCESS EXCLUSIVE for some seconds from a background thread."""
        return TableLock(self.url(database), table, seconds)

    def close(self) -> None:
        """Stop the server at once, if it runs, and remove the cluster."""
        self.thaw()
        if self.data.exists():
            self._pg_ctl("-m", "immediate", "stop", check=False)
        if self.as_root:
            shutil.rmtree(self.home, ignore_errors=True)


class OwnRedis:
    """A throwaway redis-server on a free port that tests may stop, restart and pause."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.port = free_port()
        self.log_path = self.directory / f"redis-{self.port}.log"
        self.process: subprocess.Popen | None = None
        self.paused = False

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def ping(self, timeout: float = 0.2) -> bool:
        """Return whether the server answers a PING within `timeout` seconds."""
        client = Redis.from_url(self.url, socket_timeout=timeout, socket_connect_timeout=timeout)
        try:
            return bool(client.ping())
        except RedisError:
            return False
        finally:
            client.close()

    def start(self) -> None:
        """Start redis-server without persistence and wait until it answers."""
        command = ["redis-server", "--port", str(self.port), *REDIS_OPTIONS]
        command += ["--dir", str(self.directory)]
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if self.ping():
                return
            time.sleep(0.05)
        raise RuntimeError(f"redis-server did not start:\n{tail(self.log_path)}")

    def stop(self) -> None:
        """Shut the server down (its data is gone: nothing is saved)."""
        self.resume()
        self.process.terminate()
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def pause(self) -> None:
        """Freeze the server: connections open but nothing is answered."""
        self.process.send_signal(signal.SIGSTOP)
        self.paused = True

    def resume(self) -> None:
        """Let a paused server answer again."""
        if self.paused:
            self.process.send_signal(signal.SIGCONT)
            self.paused = False

    def close(self) -> None:
        """Stop the server if it runs."""
        if self.process is not None and self.process.poll() is None:
            self.stop()


class OwnPgBouncer:
    """A throwaway PgBouncer in transaction mode in front of an OwnPostgres (or a server's URL
    on 127.0.0.1: anything with a `port`)."""

    def __init__(self, directory: Path, postgres: Any) -> None:
        self.postgres = postgres
        self.port = free_port()
        self.home = Path(tempfile.mkdtemp(prefix="studio-faults-pgbouncer-"))
        self.log_path = Path(directory) / f"pgbouncer-{self.port}.log"
        self.process: subprocess.Popen | None = None

    def url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        """Start pgbouncer in the foreground of a child process; wait until it accepts."""
        (self.home / "users.txt").write_text('"postgres" ""\n')
        (self.home / "pgbouncer.ini").write_text(
            "[databases]\n"
            f"* = host=127.0.0.1 port={self.postgres.port} user=postgres\n"
            "[pgbouncer]\n"
            f"listen_addr = 127.0.0.1\nlisten_port = {self.port}\nunix_socket_dir =\n"
            f"auth_type = trust\nauth_file = {self.home / 'users.txt'}\n"
            "pool_mode = transaction\ndefault_pool_size = 10\nmax_client_conn = 500\n"
        )
        command = [shutil.which("pgbouncer"), str(self.home / "pgbouncer.ini")]
        if os.geteuid() == 0:  # pgbouncer refuses to run as root, too
            shutil.chown(self.home, "postgres", "postgres")
            command = ["runuser", "-u", "postgres", "--", *command]
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                psycopg2.connect(self.url("postgres"), connect_timeout=1).close()
                return
            except psycopg2.OperationalError:
                time.sleep(0.1)
        raise RuntimeError(f"pgbouncer did not start:\n{tail(self.log_path)}")

    def close(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(5)
        shutil.rmtree(self.home, ignore_errors=True)


def studio_environment(database_url: str, redis_url: str | None = None) -> dict[str, str]:
    """Return the environment of studio in production, on the given servers only."""
    environ = {name: value for name, value in os.environ.items() if name not in INHERITED_SETTINGS}
    environ.update(
        STUDIO_ENV="production",
        SECRET_KEY=secrets.token_hex(32),
        DATABASE_URL=database_url,
        # Our own PostgreSQL has no certificate; production would insist on SSL.
        DATABASE_SSLMODE="disable",
    )
    if redis_url:
        environ["REDIS_URL"] = redis_url
    return environ


def control_socket_args(directory: Path, port: int) -> list[str]:
    """Return gunicorn's control-socket options: a socket in `directory`, or none at all."""
    # gunicorn 27 puts its control socket in ~/.gunicorn by default, one path for every
    # instance of the user: a second server takes it over, and stopping one removes it.
    path = directory / f"gunicorn-{port}.ctl"
    if len(str(path)) > MAX_SOCKET_PATH:
        return ["--no-control-socket"]
    return ["--control-socket", str(path)]


def health_status(port: int) -> int:
    """Return the status of GET /health on the port, or 0 when nothing answers."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        connection.request("GET", "/health")
        return connection.getresponse().status
    except (OSError, http.client.HTTPException):
        return 0
    finally:
        connection.close()


class StudioServer:
    """studio under gunicorn as the Procfile runs it, with production settings, on a free port."""

    def __init__(
        self,
        database_url: str,
        redis_url: str | None = None,
        workers: int = 2,
        extra_args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        *,
        log_path: Path,
    ) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = Path(log_path)
        self.metrics_token = secrets.token_hex(16)
        self.environ = {
            **studio_environment(database_url, redis_url),
            "WEB_CONCURRENCY": str(workers),
            "PROXY_HOPS": "0",
            "PROMETHEUS_MULTIPROC_DIR": tempfile.mkdtemp(
                prefix="metrics-", dir=self.log_path.parent
            ),
            "METRICS_TOKEN": self.metrics_token,
            **(env or {}),
        }
        sockets = ["--bind", f"127.0.0.1:{self.port}"]
        sockets += control_socket_args(self.log_path.parent, self.port)
        self.command = [sys.executable, "-m", "gunicorn", "wsgi:app", *sockets, *extra_args]
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 30) -> None:
        """Start gunicorn from the repository root and wait until GET /health answers."""
        with open(self.log_path, "ab") as log:
            # gunicorn reads gunicorn.conf.py from its working directory, as in production.
            self.process = subprocess.Popen(
                self.command, cwd=REPOSITORY, env=self.environ, stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"gunicorn exited with {self.process.returncode}:\n{tail(self.log_path)}"
                )
            if health_status(self.port) == 200:
                return
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"studio did not answer within {timeout} s:\n{tail(self.log_path)}")

    def worker_pids(self) -> list[int]:
        """Return the process ids of gunicorn's workers now."""
        return [child.pid for child in psutil.Process(self.process.pid).children()]

    def log_text(self) -> str:
        """Return everything gunicorn and studio logged so far."""
        return self.log_path.read_text(errors="replace")

    def kill_worker(self, pid: int) -> None:
        """Kill one of this server's workers with SIGKILL, as the OOM killer would."""
        if pid not in self.worker_pids():
            raise ValueError(f"{pid} is not a worker of this server")
        os.kill(pid, signal.SIGKILL)

    def stop(self) -> None:
        """Stop gunicorn gracefully (SIGTERM); kill it and its workers after 15 s."""
        if self.process is None or self.process.poll() is not None:
            return
        workers = psutil.Process(self.process.pid).children()
        self.process.terminate()
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            logger.warning("gunicorn did not stop within 15 s; killing it and its workers")
            self.process.kill()
            self.process.wait()
        # A killed master leaves its workers behind; none may outlive the test.
        signal_all(workers, signal.SIGKILL)


def run_logged(
    command: Sequence[str],
    environ: Mapping[str, str],
    log_path: Path,
    stdin: str | None = None,
    secret_output: bool = False,
) -> str:
    """Run a command from the repository root with its output logged; return the output."""
    with open(log_path, "a") as log:
        log.write(f"$ {' '.join(command)}\n")
        log.flush()
        done = subprocess.run(
            command,
            cwd=REPOSITORY,
            env=environ,
            input=stdin,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
        )
        if not secret_output:
            log.write(done.stdout)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} exited with {done.returncode}:\n{tail(log_path)}")
    return done.stdout


def prepare_database(url: str, log_path: Path, username: str = "faults") -> str:
    """Migrate the database, create an admin with an API token; return the token."""
    environ = studio_environment(url)
    flask = [sys.executable, "-m", "flask", "--app", "wsgi"]
    run_logged([*flask, "db", "upgrade"], environ, log_path)
    create_admin = [*flask, "create-admin", username, "--password-stdin"]
    run_logged(create_admin, environ, log_path, stdin=ADMIN_PASSWORD + "\n")
    create_token = [*flask, "create-token", username, "--name", "faults"]
    # The token is printed alone on the last line; it stays out of the log.
    output = run_logged(create_token, environ, log_path, secret_output=True)
    return output.strip().splitlines()[-1]
