"""A small HTTP load generator that keeps every answer, failed or not, for counting."""

import http.client
import json
import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

LOAD_REASON_PREFIX = "load "
SEED_STOCK = 10
# (kind, method, path, JSON body or None, extra headers or None)
Request = tuple[str, str, str, Any, dict[str, str] | None]
Pick = Callable[[random.Random, int], Request]


@dataclass
class Answer:
    """One request and what came back: status 0 when no answer came (error says why)."""

    kind: str
    method: str
    path: str
    status: int
    started: float
    finished: float
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    request_body: Any = None
    error: str | None = None


def failed(request: Request, started: float, exc: Exception) -> Answer:
    """Return the answer of a request that got none."""
    kind, method, path, body, _ = request
    return Answer(
        kind, method, path, 0, started, time.monotonic(), request_body=body, error=repr(exc)
    )


def connect(base_url: str, timeout: float) -> http.client.HTTPConnection:
    """Return an unopened connection to the server of `base_url`."""
    parts = urlsplit(base_url)
    return http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)


def parse_body(raw: bytes, content_type: str) -> Any:
    """Return the JSON in a response body, or None when it is not JSON."""
    if "json" not in content_type:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return None


def send(
    connection: http.client.HTTPConnection,
    request: Request,
    token: str | None,
) -> Answer:
    """Send one request on the connection and return its answer; raise if none came."""
    kind, method, path, body, extra = request
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    payload = None
    if body is not None:
        payload = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    started = time.monotonic()
    connection.request(method, path, body=payload, headers={**headers, **(extra or {})})
    response = connection.getresponse()
    raw = response.read()
    return Answer(
        kind=kind,
        method=method,
        path=path,
        status=response.status,
        started=started,
        finished=time.monotonic(),
        body=parse_body(raw, response.getheader("Content-Type", "")),
        headers=dict(response.getheaders()),
        request_body=body,
    )


def call(
    base_url: str,
    method: str,
    path: str,
    token: str | None = None,
    body: Any = None,
    headers: dict[str, str] | None = None,
) -> Answer:
    """Send one request on a connection of its own; status 0 when no answer came."""
    connection = connect(base_url, timeout=35)
    request = ("call", method, path, body, headers)
    started = time.monotonic()
    try:
        return send(connection, request, token)
    except (OSError, http.client.HTTPException) as exc:
        return failed(request, started, exc)
    finally:
        connection.close()


class Load:
    """Clients sending requests back to back, each on its own kept-alive connection.

    http.client opens a new connection by itself when the server closed the last one
    (gunicorn's sync workers close after every answer).
    """

    def __init__(self, base_url: str, token: str, clients: int = 8, timeout: float = 35) -> None:
        self.base_url, self.token = base_url, token
        self.clients, self.timeout = clients, timeout
        self.answers: list[Answer] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []

    def _record(self, answer: Answer) -> None:
        with self._lock:
            self.answers.append(answer)

    def _client(self, index: int, pick: Pick, deadline: float) -> None:
        rng = random.Random(index)
        connection = connect(self.base_url, self.timeout)
        while not self._stopping.is_set() and time.monotonic() < deadline:
            request = pick(rng, index)
            started = time.monotonic()
            try:
                answer = send(connection, request, self.token)
            except (OSError, http.client.HTTPException) as exc:
                answer = failed(request, started, exc)
                # Whatever broke, the next request starts on a new connection; a refused
                # one fails at once, so pause rather than spin while the server is away.
                connection.close()
                self._stopping.wait(0.01)
            self._record(answer)
        connection.close()

    def start(self, pick: Pick, seconds: float = 3600) -> None:
        """Start the clients in the background; they run until stop() or `seconds` pass."""
        self._stopping.clear()
        deadline = time.monotonic() + seconds
        self._threads = [
            threading.Thread(
                target=self._client, args=(index, pick, deadline), name=f"load client {index}"
            )
            for index in range(self.clients)
        ]
        for thread in self._threads:
            thread.start()

    def stop(self) -> list[Answer]:
        """Stop the clients once their current request is answered; return all answers."""
        self._stopping.set()
        for thread in self._threads:
            thread.join()
        self._threads = []
        return self.answers

    def run(self, seconds: float, pick: Pick) -> list[Answer]:
        """Send load for `seconds`; return all answers so far."""
        self.start(pick, seconds)
        for thread in self._threads:
            thread.join()
        return self.stop()

    def summary(self) -> Counter:
        """Return how many answers came per (kind, status), for assertion messages."""
        with self._lock:
            return Counter((answer.kind, answer.status) for answer in self.answers)


def mixed_pick(paint_ids: Sequence[int], write_share: float = 0.1) -> Pick:
    """Return a pick of paint reads, some list reads and, at `write_share`, stock writes.

    Each write carries a reason of its own, so a test can find its movement in the database.
    """

    def pick(rng: random.Random, client: int) -> Request:
        paint_id = rng.choice(paint_ids)
        draw = rng.random()
        if draw < write_share:
            body = {"delta": 1, "reason": f"{LOAD_REASON_PREFIX}{uuid.uuid4()}"}
            return ("write", "POST", f"/api/v1/paints/{paint_id}/stock", body, None)
        if draw < write_share + (1 - write_share) * 0.2:
            return ("list", "GET", "/api/v1/paints?per_page=20", None, None)
        return ("read", "GET", f"/api/v1/paints/{paint_id}", None, None)

    return pick


def seed_paints(base_url: str, token: str, count: int) -> list[int]:
    """Create paints through the API; return their ids."""
    batch = uuid.uuid4().hex[:8]
    ids = []
    for number in range(count):
        paint = {
            "name": f"Fault paint {number}",
            "brand": "Faults",
            "color_code": f"F-{batch}-{number}",
            "stock": SEED_STOCK,
            "price": "4.50",
        }
        answer = call(base_url, "POST", "/api/v1/paints", token, paint)
        if answer.status != 201:
            raise RuntimeError(f"creating a paint answered {answer.status}: {answer.body}")
        ids.append(answer.body["id"])
    return ids
