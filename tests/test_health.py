"""Liveness and readiness."""

from .conftest import free_port
from .test_cache import counting_statements


def test_liveness_touches_nothing(client):
    with counting_statements() as statements:
        response = client.get("/health")
    assert response.status_code == 200 and response.get_json() == {"status": "ok"}
    assert statements == []


def test_ready_when_database_and_cache_answer(client):
    response = client.get("/health/ready")
    assert response.status_code == 200
    body = response.get_json()
    assert (body["status"], body["database"], body["cache"]) == ("ok", "ok", "ok")
    assert body["timestamp"].endswith("Z")


def test_not_ready_without_the_database(extra_apps):
    app = extra_apps(DATABASE_URL=f"postgresql://postgres@127.0.0.1:{free_port()}/nowhere")
    response = app.test_client().get("/health/ready")
    assert response.status_code == 503
    assert response.get_json()["database"] == "unreachable"
    assert app.test_client().get("/health").status_code == 200


def test_ready_but_degraded_without_redis(extra_apps):
    app = extra_apps(REDIS_URL=f"redis://127.0.0.1:{free_port()}/0", CACHE_KEY_PREFIX="health:")
    response = app.test_client().get("/health/ready")
    assert response.status_code == 200
    assert response.get_json()["status"] == "degraded"
    assert response.get_json()["cache"] == "degraded"


def test_health_is_not_redirected_to_https(extra_apps):
    app = extra_apps(FORCE_HTTPS=True, ALLOWED_HOSTS=("localhost",))
    assert app.test_client().get("/health").status_code == 200
    assert app.test_client().get("/login").status_code == 308
