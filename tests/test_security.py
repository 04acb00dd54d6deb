"""HTTPS enforcement and sign-in throttling shared through Redis."""

import re
import uuid

from .conftest import make_api


def test_force_https_redirects_and_sends_hsts(extra_apps):
    app = extra_apps(FORCE_HTTPS=True, HSTS=True, ALLOWED_HOSTS=("localhost",))
    client = app.test_client()
    response = client.get("/login?next=/admin/")
    assert response.status_code == 308
    assert response.headers["Location"] == "https://localhost/login?next=/admin/"
    secure = client.get("/login", base_url="https://localhost")
    assert secure.status_code == 200
    assert secure.headers["Strict-Transport-Security"].startswith("max-age=")


def test_without_force_https_plain_http_is_served(client):
    response = client.get("/login")
    assert response.status_code == 200
    assert "Strict-Transport-Security" not in response.headers


def test_sign_in_throttle_is_shared_by_every_worker_through_redis(
    committed_app, redis_url, extra_apps
):
    """Two app instances (two workers) on one Redis count the same failed sign-ins."""
    # Limiter keys outlive the test in Redis: a name of its own keeps runs apart.
    username = f"target-{uuid.uuid4().hex[:8]}"
    # Failures count per address as well: one of its own, for the same reason.
    address = {"REMOTE_ADDR": f"2001:db8::{uuid.uuid4().hex[:4]}"}
    make_api(committed_app, username)
    # A cache of its own too: the other test process's users have the same ids.
    run = uuid.uuid4().hex
    settings = {
        "REDIS_URL": redis_url,
        "RATELIMIT_KEY_PREFIX": f"test-{run}",
        "CACHE_KEY_PREFIX": f"test-{run}:",
    }
    workers = [extra_apps(**settings), extra_apps(**settings)]
    assert all(worker.config["RATELIMIT_STORAGE_URI"] == redis_url for worker in workers)
    statuses = []
    for attempt in range(7):
        client = workers[attempt % 2].test_client()
        page = client.get("/login").get_data(as_text=True)
        token = re.search(r'name="csrf_token"[^>]*?value="([^"]+)"', page).group(1)
        data = {"username": username, "password": "not the password", "csrf_token": token}
        statuses.append(client.post("/login", data=data, environ_base=address).status_code)
    assert statuses == [401] * 5 + [429] * 2
