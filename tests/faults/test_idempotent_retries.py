"""A client that retries a write with its Idempotency-Key gets it applied exactly once."""

import json
import socket
import threading
import time
import uuid
from urllib.parse import urlsplit

from .load import call, seed_paints


def movements_with(own_postgres, reason: str) -> int:
    [(count,)] = own_postgres.execute(
        "SELECT count(*) FROM stock_movements WHERE reason = %s", (reason,), database="studio"
    )
    return count


def send_and_hang_up(base: str, token: str, path: str, body: dict, key: str) -> None:
    """Send a POST and close the connection without reading the answer."""
    parts = urlsplit(base)
    payload = json.dumps(body).encode()
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {parts.netloc}\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: application/json\r\nIdempotency-Key: {key}\r\n"
        f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n"
    ).encode()
    with socket.create_connection((parts.hostname, parts.port)) as connection:
        connection.sendall(head + payload)
        connection.shutdown(socket.SHUT_WR)


def test_a_retry_after_a_lost_answer_applies_the_change_once(
    fault_database, own_postgres, studio_server
):
    url, token = fault_database
    server = studio_server(url)
    paint_id = seed_paints(server.base, token, 1)[0]
    path, key = f"/api/v1/paints/{paint_id}/stock", str(uuid.uuid4())
    body = {"delta": 4, "reason": f"delivery {key}"}

    send_and_hang_up(server.base, token, path, body, key)
    deadline = time.monotonic() + 5
    while movements_with(own_postgres, body["reason"]) == 0:
        assert time.monotonic() < deadline, "the first request was never applied"
        time.sleep(0.05)
    retried = call_with_key(server.base, token, path, body, key)

    assert retried.status == 201
    assert retried.headers.get("Idempotent-Replayed") == "true"
    assert retried.body["paint"]["stock"] == 10 + 4
    assert movements_with(own_postgres, body["reason"]) == 1


def test_clients_retrying_through_restarts_apply_every_write_exactly_once(
    fault_database, own_postgres, studio_server
):
    url, token = fault_database
    server = studio_server(url, env={"CACHE_TYPE": "NullCache"})
    ids = seed_paints(server.base, token, 5)
    stop = threading.Event()
    outcomes: list[tuple[str, int, int]] = []  # (reason, tries, final status)
    lock = threading.Lock()

    def client(number: int) -> None:
        while not stop.is_set():
            key = str(uuid.uuid4())
            path = f"/api/v1/paints/{ids[number % len(ids)]}/stock"
            body = {"delta": 1, "reason": f"retried {key}"}
            tries, answer = 0, None
            while tries < 50 and (answer is None or answer.status != 201):
                tries += 1
                answer = call_with_key(server.base, token, path, body, key)
                if answer.status != 201:
                    time.sleep(0.05)
            with lock:
                outcomes.append((body["reason"], tries, answer.status))

    threads = [threading.Thread(target=client, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for _ in range(2):
        time.sleep(1.5)
        own_postgres.restart()
    # A restart is often ridden out by the server's own retries; an outage longer
    # than their budget (DB_RETRY_SECONDS) is answered 503 and the clients must retry.
    time.sleep(1.5)
    own_postgres.stop()
    time.sleep(2)
    own_postgres.start()
    time.sleep(1.5)
    stop.set()
    for thread in threads:
        thread.join()

    assert all(status == 201 for _, _, status in outcomes), outcomes
    assert any(tries > 1 for _, tries, _ in outcomes), "no write needed a retry"
    rows = own_postgres.execute(
        "SELECT reason, count(*) FROM stock_movements WHERE reason LIKE 'retried %%' "
        "GROUP BY reason",
        database="studio",
    )
    assert dict(rows) == {reason: 1 for reason, _, _ in outcomes}


def call_with_key(base: str, token: str, path: str, body: dict, key: str):
    return call(base, "POST", path, token, body, headers={"Idempotency-Key": key})
