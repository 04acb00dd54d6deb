"""Every request has an id: the router's when sane, else a new one; answered and logged."""

import http.client
import logging
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from studio.logs import LOG_FORMAT
from studio.request_ids import current_request_id

from .conftest import free_port
from .faults.servers import control_socket_args, health_status, tail

REPOSITORY = Path(__file__).resolve().parent.parent
HEROKU_ID = "f9ed4675f1c53513c61a3b3b4e25b4c0"
RAILWAY_ID = "Jw2Pq7ZlQ-6n1c8aS0Xy_3421905"
GENERATED = re.compile(r"[0-9a-f]{32}")


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"X-Request-ID": HEROKU_ID}, HEROKU_ID),
        ({"X-Railway-Request-Id": RAILWAY_ID}, RAILWAY_ID),
        ({"X-Request-ID": HEROKU_ID, "X-Railway-Request-Id": RAILWAY_ID}, HEROKU_ID),
        ({"X-Request-ID": "req-42"}, "req-42"),
    ],
)
def test_the_routers_id_is_answered(client, headers, expected):
    assert client.get("/health", headers=headers).headers["X-Request-ID"] == expected


@pytest.mark.parametrize(
    "sent",
    [
        None,
        "",
        "a" * 10_000,
        "a" * 201,
        "abc\x00def",
        "abc\x1b[31mdef",
        "two words",
        'quoted"id',
        "id,another",
        "caf\u00e9",
    ],
    ids=["absent", "empty", "10KB", "201", "NUL", "escape", "space", "quote", "comma", "accent"],
)
def test_an_absent_or_malformed_id_is_replaced_by_a_new_one(client, sent):
    headers = {} if sent is None else {"X-Request-ID": sent}
    answered = client.get("/health", headers=headers).headers["X-Request-ID"]
    assert GENERATED.fullmatch(answered)
    assert answered != client.get("/health", headers=headers).headers["X-Request-ID"]


def test_errors_answer_the_id_too(client):
    response = client.get("/api/v1/paints/1", headers={"X-Request-ID": HEROKU_ID})
    assert response.status_code == 401
    assert response.headers["X-Request-ID"] == HEROKU_ID


@pytest.mark.parametrize("sent", [HEROKU_ID, None])
def test_log_lines_of_a_request_carry_its_id(extra_apps, caplog, sent):
    app = extra_apps(SLOW_REQUEST_MS=0)
    headers = {"X-Request-ID": sent} if sent else {}
    with caplog.at_level(logging.WARNING, logger="studio"):
        response = app.test_client().get("/health", headers=headers)
    (record,) = [r for r in caplog.records if "slow request" in r.getMessage()]
    assert record.request_id == response.headers["X-Request-ID"]
    assert record.request_id == (sent or record.request_id)
    assert f"[{record.request_id}]: slow request" in logging.Formatter(LOG_FORMAT).format(record)


def test_log_lines_outside_a_request_carry_none(app, caplog):
    with caplog.at_level(logging.INFO, logger="studio"):
        logging.getLogger("studio.test").info("between requests")
    assert caplog.records[-1].request_id == "-"
    assert current_request_id() is None


def get(port: int, path: str, headers: dict[str, str]) -> http.client.HTTPMessage:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        response.read()
        return response.headers
    finally:
        connection.close()


@pytest.fixture
def gunicorn_log(tmp_path):
    """studio under gunicorn with gunicorn.conf.py, on SQLite; yield its port and log."""
    port = free_port()
    log_path = tmp_path / "gunicorn.log"
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in ("WEB_CONCURRENCY", "THREADS_PER_WORKER", "GUNICORN_CMD_ARGS")
    }
    env.update(
        STUDIO_ENV="development",
        DATABASE_URL=f"sqlite:///{tmp_path / 'studio.db'}",
        SECRET_KEY="a test key of enough length",
        PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "metrics"),
        WEB_CONCURRENCY="1",
        # Sent on answers over HTTPS only: it shows which scheme studio saw.
        HSTS="true",
    )
    command = [sys.executable, "-m", "gunicorn", "wsgi:app", "--bind", f"127.0.0.1:{port}"]
    command += control_socket_args(tmp_path, port)
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            command, cwd=REPOSITORY, env=env, stdout=log, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 30
        while health_status(port) != 200:
            assert process.poll() is None and time.monotonic() < deadline, tail(log_path)
            time.sleep(0.1)
        yield port, log_path
    finally:
        process.terminate()
        process.wait(15)


def test_gunicorns_access_log_shows_the_id_it_answered(gunicorn_log):
    port, log_path = gunicorn_log
    given = get(port, "/health/ready", {"X-Request-ID": HEROKU_ID})["X-Request-ID"]
    generated = get(port, "/health", {})["X-Request-ID"]
    assert given == HEROKU_ID and GENERATED.fullmatch(generated)
    ready = re.compile(rf'"GET /health/ready HTTP/1.1" \d+ .* request_id={HEROKU_ID} ')
    health = re.compile(rf'"GET /health HTTP/1.1" 200 .* request_id={generated} ')
    deadline = time.monotonic() + 5
    while not (ready.search(log_path.read_text()) and health.search(log_path.read_text())):
        assert time.monotonic() < deadline, tail(log_path)
        time.sleep(0.1)
    logged = log_path.read_text()
    # The start-up line says what gunicorn.conf.py decided, and why.
    assert re.search(r"studio serving: 1 \w+ workers x \d+ threads \(WEB_CONCURRENCY;", logged)


def test_gunicorn_leaves_forwarded_headers_to_studios_proxy_hops(gunicorn_log):
    # Development trusts no router (PROXY_HOPS 0): a client's X-Forwarded-Proto must not
    # make a plain HTTP request look like HTTPS, at gunicorn's level either.
    port, _ = gunicorn_log
    answer = get(port, "/health", {"X-Forwarded-Proto": "https", "X-Forwarded-SSL": "on"})
    assert "Strict-Transport-Security" not in answer
