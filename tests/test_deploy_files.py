"""The deployment files: what Railway and Heroku read, checked as they read it, then run.

`.railway/railway.py` (Railway), `app.json` and the `Procfile` (Heroku) must name the same
commands, match the platforms' schemas (copies in tests/deploy_schemas/, whose README says
where each came from), and those commands must work: the migrations on an empty database,
then studio serving /health/ready with production settings, then stopping on SIGTERM.
"""

import copy
import functools
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
import tomllib
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import psutil
import pytest
from alembic.script import ScriptDirectory
from jsonschema import Draft7Validator
from sqlalchemy import create_engine, text

from .conftest import (
    PG_SKIP_REASON,
    PG_VARIABLE,
    REDIS_VARIABLE,
    free_port,
    temporary_postgres_database,
)
from .faults.servers import REPOSITORY, control_socket_args, studio_environment, tail

SCHEMAS = Path(__file__).parent / "deploy_schemas"
RAILWAY_FILE = REPOSITORY / ".railway" / "railway.py"
# What Railway's CLI runs to read the file (`railway config plan`, `apply`): import it,
# call main(), take the graph.
RAILWAY_EVALUATION = """
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("railway_iac_user", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
project = module.main()
print(json.dumps(project.to_graph() if hasattr(project, "to_graph") else project))
"""


def procfile() -> dict[str, str]:
    """Return the Procfile's commands by process type."""
    lines = (REPOSITORY / "Procfile").read_text().splitlines()
    return dict(line.split(":", 1) for line in lines if line.strip())


def command(process_type: str) -> str:
    return procfile()[process_type].strip()


def load_json(path: Path) -> Any:
    return json.loads(path.read_text())


@functools.cache
def railway_project() -> dict[str, Any]:
    """Return the project `.railway/railway.py` describes, evaluated as Railway's CLI does."""
    done = subprocess.run(
        [sys.executable, "-c", RAILWAY_EVALUATION, str(RAILWAY_FILE)],
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout)


def railway_resource(project: dict[str, Any], address: str) -> dict[str, Any]:
    return next(item for item in project["resources"] if item["address"] == address)


def test_railway_runs_what_the_procfile_runs():
    studio = railway_resource(railway_project(), "service.studio")
    deploy = studio["deploy"]
    assert deploy["startCommand"] == command("web")
    # Railway has no release phase: its pre-deploy command is Heroku's release process.
    assert deploy["preDeployCommand"] == [command("release")]
    assert deploy["healthcheckPath"] == "/health/ready"
    assert deploy["restartPolicyType"] == "ON_FAILURE"


def test_railway_wires_studio_to_its_database_and_redis():
    project = railway_project()
    variables = railway_resource(project, "service.studio")["variables"]
    for name, engine in (("DATABASE_URL", "postgres"), ("REDIS_URL", "redis")):
        reference = variables[name]
        assert reference["type"] == "reference" and reference["output"] == name
        assert railway_resource(project, reference["resource"])["engine"] == engine
    # The secret is set by hand and kept by every apply; the file never holds one.
    assert variables["SECRET_KEY"] == {"type": "preserve"}
    assert variables["ALLOWED_HOSTS"]["value"] == "${{RAILWAY_PUBLIC_DOMAIN}}"


def test_railway_deploy_settings_match_railways_schema():
    deploy = railway_resource(railway_project(), "service.studio")["deploy"]
    Draft7Validator(load_json(SCHEMAS / "railway.schema.json")).validate({"deploy": deploy})


def test_railway_waits_for_gunicorn_to_drain(tmp_path):
    deploy = railway_resource(railway_project(), "service.studio")["deploy"]
    # gunicorn.conf.py's graceful timeout, or gunicorn's own default where it sets none.
    read = (
        "import runpy; from gunicorn.config import Config;"
        "print(runpy.run_path('gunicorn.conf.py').get('graceful_timeout',"
        " Config().graceful_timeout))"
    )
    environ = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    graceful = subprocess.run(
        [sys.executable, "-c", read], cwd=REPOSITORY, env=environ, capture_output=True, text=True
    )
    assert graceful.returncode == 0, graceful.stderr
    assert deploy["drainingSeconds"] >= float(graceful.stdout)


def test_app_json_matches_herokus_schema():
    Draft7Validator(load_json(SCHEMAS / "app-json.schema.json")).validate(
        load_json(REPOSITORY / "app.json")
    )


def test_app_json_provisions_what_studio_needs():
    manifest = load_json(REPOSITORY / "app.json")
    plans = [addon["plan"].split(":")[0] for addon in manifest["addons"]]
    assert plans == ["heroku-postgresql", "heroku-redis"]
    # Generated once per app by Heroku; never a value of the repository's.
    assert manifest["env"]["SECRET_KEY"] == {
        "description": manifest["env"]["SECRET_KEY"]["description"],
        "generator": "secret",
    }
    assert manifest["buildpacks"] == [{"url": "heroku/python"}]
    assert manifest["formation"]["web"]["quantity"] >= 1
    # app.json has no release script: Heroku's release phase is the Procfile's.
    assert command("release") == "flask --app wsgi db upgrade"


def test_python_version_is_one_studio_supports():
    version = (REPOSITORY / ".python-version").read_text().strip()
    # major.minor: the platforms install the newest patch release of it.
    assert re.fullmatch(r"3\.\d+", version)
    requires = tomllib.loads((REPOSITORY / "pyproject.toml").read_text())["project"]
    lowest = re.fullmatch(r">=3\.(\d+)", requires["requires-python"]).group(1)
    assert int(version.split(".")[1]) >= int(lowest)


def mutated(document: dict[str, Any], path: tuple[str, ...], value: Any) -> dict[str, Any]:
    changed = copy.deepcopy(document)
    place = changed
    for key in path[:-1]:
        place = place.setdefault(key, {})
    place[path[-1]] = value
    return changed


@pytest.mark.parametrize(
    ("schema", "path", "value"),
    [
        # Heroku's release phase lives in the Procfile; app.json has no such script.
        ("app-json", ("scripts", "release"), "flask --app wsgi db upgrade"),
        ("app-json", ("formation", "web", "size"), "huge"),
        ("app-json", ("env", "SECRET_KEY", "generator"), "password"),
        ("railway", ("deploy", "restartPolicyType"), "SOMETIMES"),
        ("railway", ("deploy", "preDeployCommand"), ["one", "two"]),
        ("railway", ("deploy", "healthCheckPath"), "/health/ready"),
    ],
)
def test_the_schemas_refuse_what_the_platforms_would(schema, path, value):
    """The shipped schemas are strict enough for the checks above to mean something."""
    if schema == "app-json":
        document = load_json(REPOSITORY / "app.json")
    else:
        document = {"deploy": railway_resource(railway_project(), "service.studio")["deploy"]}
    validator = Draft7Validator(load_json(SCHEMAS / f"{schema}.schema.json"))
    assert validator.is_valid(document)
    assert not validator.is_valid(mutated(document, path, value))


@pytest.fixture
def empty_postgres_database():
    server = os.environ.get(PG_VARIABLE)
    if not server:
        pytest.skip(PG_SKIP_REASON)
    with temporary_postgres_database(server) as url:
        yield url


def platform_environment(database_url: str, directory: Path) -> dict[str, str]:
    """Return what a platform gives studio: production settings, a database, Redis, $PORT."""
    environ = studio_environment(database_url, os.environ.get(REDIS_VARIABLE))
    port = free_port()
    (directory / "metrics").mkdir()
    environ.update(
        PORT=str(port),
        # The commands are run by name, as the platforms run them, from this virtualenv.
        PATH=os.pathsep.join([str(Path(sys.executable).parent), environ.get("PATH", "")]),
        # Keys of their own on the shared Redis, whatever other tests cache there.
        CACHE_KEY_PREFIX=f"deploy-{uuid.uuid4().hex[:8]}:",
        PROMETHEUS_MULTIPROC_DIR=str(directory / "metrics"),
        # Not gunicorn's shared default socket, which another server may be using.
        GUNICORN_CMD_ARGS=shlex.join(control_socket_args(directory, port)),
    )
    return environ


def ready_status(port: int) -> tuple[int, dict[str, Any]]:
    """Return GET /health/ready's status and body, or (0, {}) when nothing answers yet."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health/ready", timeout=5) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, {}
    except OSError:
        return 0, {}


def wait_ready(server: subprocess.Popen, port: int, log: Path) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert server.poll() is None, f"the start command exited:\n{tail(log)}"
        status, body = ready_status(port)
        if status == 200:
            return body
        time.sleep(0.2)
    raise AssertionError(f"/health/ready never answered 200:\n{tail(log)}")


def test_release_and_start_commands_migrate_serve_and_stop(empty_postgres_database, tmp_path):
    environ = platform_environment(empty_postgres_database, tmp_path)
    release = subprocess.run(
        shlex.split(command("release")),
        cwd=REPOSITORY,
        env=environ,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert release.returncode == 0, release.stderr[-4000:]
    head = ScriptDirectory(str(REPOSITORY / "migrations")).get_current_head()
    engine = create_engine(empty_postgres_database)
    with engine.connect() as connection:
        assert connection.scalar(text("SELECT version_num FROM alembic_version")) == head
    engine.dispose()

    log = tmp_path / "start.log"
    with open(log, "wb") as output:
        server = subprocess.Popen(
            shlex.split(command("web")),
            cwd=REPOSITORY,
            env=environ,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        body = wait_ready(server, int(environ["PORT"]), log)
        assert (body["status"], body["database"]) == ("ok", "ok")
        workers = psutil.Process(server.pid).children()
        assert workers, "gunicorn started no worker"
        server.send_signal(signal.SIGTERM)
        assert server.wait(60) == 0, tail(log)
        assert not [worker for worker in workers if worker.is_running()]
    finally:
        if server.poll() is None:
            for child in psutil.Process(server.pid).children(recursive=True):
                child.kill()
            server.kill()
            server.wait()


def test_a_start_that_refuses_its_settings_stops_gunicorn(empty_postgres_database, tmp_path):
    """gunicorn replaced each refusing worker for ever, answering nothing on the port."""
    environ = platform_environment(empty_postgres_database, tmp_path)
    del environ["SECRET_KEY"]
    # With no folder given for the workers' metrics, gunicorn makes one and removes it.
    del environ["PROMETHEUS_MULTIPROC_DIR"]
    (tmp_path / "tmp").mkdir()
    environ["TMPDIR"] = str(tmp_path / "tmp")
    started = subprocess.run(
        shlex.split(command("web")),
        cwd=REPOSITORY,
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert started.returncode != 0
    assert "SECRET_KEY is not set" in started.stderr
    assert started.stderr.count("SECRET_KEY is not set") <= 2  # a worker or two, not a loop
    assert not list((tmp_path / "tmp").glob("studio-metrics-*"))
