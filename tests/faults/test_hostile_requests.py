"""Requests only a real server sees: bytes on a socket to studio under gunicorn.

gunicorn decodes a chunked body and enforces the limits on a request's head itself, so
these are sent raw to one studio started as the Procfile runs it, with production
settings, on a PostgreSQL of the module's own (tests/test_hostile_input.py has the rest).
"""

import json
import socket
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import require_fault_programs
from .servers import OwnPostgres, StudioServer, prepare_database

MAX_BODY = 2 * 1024 * 1024  # MAX_CONTENT_LENGTH's default


class Studio:
    """The running server, an API token, and a way to send it raw bytes."""

    def __init__(self, server: StudioServer, token: str) -> None:
        self.server, self.token = server, token

    def send(self, head: str, body: bytes = b"") -> tuple[int, dict[str, str], bytes]:
        """Send a request as written; return the status, headers and body of the answer."""
        with socket.create_connection(("127.0.0.1", self.server.port), timeout=10) as sock:
            sock.sendall(head.replace("\n", "\r\n").encode() + b"\r\n" + body)
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
        top, _, content = answer.partition(b"\r\n\r\n")
        status_line, *lines = top.decode("latin-1").split("\r\n")
        headers = dict(line.split(": ", 1) for line in lines)
        return int(status_line.split()[1]), headers, content

    def post_chunked(self, path: str, body: bytes, content_type: str) -> tuple[int, dict, bytes]:
        head = (
            f"POST {path} HTTP/1.1\nHost: studio\nAuthorization: Bearer {self.token}\n"
            f"Content-Type: {content_type}\nTransfer-Encoding: chunked\nConnection: close\n"
        )
        return self.send(head, body)

    def get(self, path: str) -> tuple[int, dict]:
        request = urllib.request.Request(
            self.server.base + path, headers={"Authorization": f"Bearer {self.token}"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.load(response)

    def requests_counted(self, endpoint: str, status: str) -> float:
        """Return /metrics' count of the endpoint's requests answered with a status class."""
        request = urllib.request.Request(
            f"{self.server.base}/metrics",
            headers={"Authorization": f"Bearer {self.server.metrics_token}"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            text = response.read().decode()
        series = f'studio_request_duration_seconds_count{{endpoint="{endpoint}",status="{status}"}}'
        return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(series))


def in_chunks(data: bytes, size: int = 65536) -> bytes:
    """Return `data` as a well-formed chunked body."""
    pieces = [data[at : at + size] for at in range(0, len(data), size)]
    return b"".join(b"%x\r\n%s\r\n" % (len(piece), piece) for piece in pieces) + b"0\r\n\r\n"


@pytest.fixture(scope="module")
def studio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Studio]:
    require_fault_programs()
    directory = Path(tmp_path_factory.mktemp("hostile"))
    postgres = OwnPostgres(directory)
    postgres.start()
    server = None
    try:
        url = postgres.create_database("studio")
        token = prepare_database(url, directory / "prepare.log")
        # One worker, so that /metrics counts what this module sent, from one process.
        server = StudioServer(url, workers=1, log_path=directory / "studio.log")
        server.start()
        yield Studio(server, token)
        assert "Traceback" not in server.log_text()
    finally:
        if server is not None:
            server.stop()
        postgres.close()


@pytest.mark.parametrize(
    ("path", "endpoint", "content_type"),
    [
        ("/login", "auth.login", "application/x-www-form-urlencoded"),
        ("/logout", "auth.logout", "application/x-www-form-urlencoded"),
        ("/admin/paints/new", "admin.new_paint", "multipart/form-data; boundary=x"),
        ("/api/v1/paints", "api.create_paint", "application/json"),
    ],
)
def test_a_malformed_chunked_body_is_a_400_counted_in_metrics(studio, path, endpoint, content_type):
    before = studio.requests_counted(endpoint, "4xx")
    status, _, body = studio.post_chunked(path, b"zz\r\nabc\r\n0\r\n\r\n", content_type)
    assert status == 400
    assert b"not valid chunked encoding" in body
    assert studio.requests_counted(endpoint, "4xx") == before + 1


def test_a_chunked_body_over_the_limit_is_a_413(studio):
    # Valid JSON if cut at the limit: the spaces after the object are what goes over it.
    paint = json.dumps({"name": "Cut short", "brand": "Citadel"}).encode()
    body = paint + b" " * (MAX_BODY - len(paint) + 10)
    status, _, answer = studio.post_chunked("/api/v1/paints", in_chunks(body), "application/json")
    assert status == 413
    assert json.loads(answer)["error"]["code"] == "payload_too_large"
    assert studio.get("/api/v1/paints?q=Cut")[1]["pagination"]["total"] == 0


def test_a_chunked_body_within_the_limit_is_taken(studio):
    paint = json.dumps({"name": "Sent in chunks", "brand": "Citadel"}).encode()
    status, _, _ = studio.post_chunked(
        "/api/v1/paints", in_chunks(paint + b" " * 100_000), "application/json"
    )
    assert status == 201


def test_a_long_api_url_gets_studio_s_json_414(studio):
    head = f"GET /api/v1/paints?q={'a' * 7000} HTTP/1.1\nHost: studio\nConnection: close\n"
    status, headers, body = studio.send(head)
    assert status == 414
    assert headers["Content-Type"] == "application/json"
    assert json.loads(body)["error"]["code"] == "uri_too_long"


@pytest.mark.parametrize(
    ("head", "status"),
    [
        (f"GET /health?{'a' * 9000} HTTP/1.1\nHost: studio\n", 414),
        ("GET /health HTTP/1.1\nHost: studio\n" + "X-Extra: 1\n" * 60, 431),
        (f"GET /health HTTP/1.1\nHost: studio\nX-Big: {'a' * 9000}\n", 431),
    ],
)
def test_an_over_long_request_head_gets_gunicorn_s_short_answer(studio, head, status):
    answered, _, body = studio.send(head + "Connection: close\n")
    assert answered == status
    assert len(body) < 500
