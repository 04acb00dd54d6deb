"""With its database away, studio answers 503 with Retry-After, fast, in the API and the admin."""

import time

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from studio.api.openapi import openapi_document
from studio.extensions import db
from studio.observability import metrics
from studio.resilience import database_breaker
from studio.services import listing

from .conftest import ON_POSTGRESQL, free_port, make_api, make_app
from .test_openapi import PREFIX, Contract, operations


@pytest.fixture
def no_database():
    """An app whose PostgreSQL refuses every connection (nothing listens on its port)."""
    app = make_app(f"postgresql://postgres@127.0.0.1:{free_port()}/gone", DB_RETRY_SECONDS=0.2)
    yield app
    with app.app_context():
        db.engine.dispose()


@pytest.mark.parametrize(("method", "template"), operations(openapi_document()))
def test_every_operation_answers_503_while_the_database_is_away(no_database, method, template):
    response = no_database.test_client().open(
        PREFIX + template.format(paint_id=1),
        method=method,
        headers={"Authorization": "Bearer stu_a-token-that-must-be-looked-up"},
        json={"name": "x", "brand": "y"} if method in ("POST", "PATCH") else None,
    )
    assert response.status_code == 503
    assert int(response.headers["Retry-After"]) >= 1
    assert response.get_json()["error"]["code"] == "unavailable"
    Contract(openapi_document()).check_response(response, method, template)


def test_an_admin_page_is_a_503_page_that_asks_nothing_of_the_database(no_database):
    client = no_database.test_client()
    with client.session_transaction() as session:
        session["_user_id"] = "1"
        session["_fresh"] = True
    response = client.get("/admin/paints")
    page = response.get_data(as_text=True)
    assert response.status_code == 503
    assert response.headers["Retry-After"]
    assert "The database is not available right now. Nothing was changed." in page
    assert "Sign out" not in page


def test_sign_in_while_the_database_is_away_is_a_503_page(no_database):
    client = no_database.test_client()
    page = client.get("/login").get_data(as_text=True)
    token = page.split('name="csrf_token" type="hidden" value="')[1].split('"')[0]
    response = client.post(
        "/login", data={"csrf_token": token, "username": "alice", "password": "whatever12"}
    )
    assert response.status_code == 503


def test_readiness_is_503_and_the_breaker_opens(no_database):
    client = no_database.test_client()
    answers = [client.get("/health/ready") for _ in range(4)]
    assert {answer.status_code for answer in answers} == {503}
    assert answers[-1].get_json()["database"] == "unreachable"
    assert answers[-1].headers["Retry-After"]
    with no_database.app_context():
        assert database_breaker().state != "closed"
    assert answers[-1].get_json()["database_breaker"] in ("open", "half_open")
    with no_database.app_context():
        dialect = db.engine.dialect
    attempts = []
    connect = dialect.connect
    dialect.connect = lambda *args, **kwargs: attempts.append(1) or connect(*args, **kwargs)
    try:
        assert client.get("/health/ready").status_code == 503
    finally:
        del dialect.connect
    assert attempts == [], "an open breaker answers without trying to connect"


def test_the_liveness_check_needs_no_database(no_database):
    assert no_database.test_client().get("/health").status_code == 200


@ON_POSTGRESQL
def test_a_connection_killed_under_a_read_is_retried(committed_app):
    """The server ends the connection (as on a restart): the read is tried again, and answered."""
    api = make_api(committed_app)
    killer = create_engine(committed_app.config["SQLALCHEMY_DATABASE_URI"])
    paint = api.post(f"{PREFIX}/paints", json={"name": "Kept", "brand": "B"}).get_json()
    with committed_app.app_context():
        pids = list(
            db.session.execute(
                text(
                    "SELECT pid FROM pg_stat_activity WHERE application_name LIKE 'studio/%' "
                    "AND datname = current_database()"
                )
            ).scalars()
        )
        db.session.remove()
    with killer.begin() as connection:
        for pid in pids:
            connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    killer.dispose()
    retries_before = counted("studio_db_retries_total", error="OperationalError")
    response = api.get(f"{PREFIX}/paints/{paint['id']}")
    assert response.status_code == 200 and response.get_json()["name"] == "Kept"
    assert counted("studio_db_retries_total", error="OperationalError") == retries_before + 1


def test_503s_and_the_breaker_are_in_the_metrics(no_database):
    before = counted("studio_db_unavailable_total")
    opened = counted("studio_db_breaker_opened_total")
    client = no_database.test_client()
    for _ in range(3):
        client.get("/api/v1/stats", headers={"Authorization": "Bearer stu_unknown"})
    assert counted("studio_db_unavailable_total") == before + 3
    assert counted("studio_db_breaker_opened_total") == opened + 1
    assert counted("studio_db_breaker_state") == 2  # open


def counted(name: str, **labels: str) -> float:
    """Return a metric summed over the series whose labels include `labels`."""
    found = metrics.samples().get(name, [])
    return sum(value for got, value in found if labels.items() <= got.items())


@pytest.mark.parametrize(("path", "status"), [("/admin/no-such-page", 404), ("/logout", 405)])
def test_a_signed_in_admins_error_page_needs_no_database(no_database, path, status):
    client = no_database.test_client()
    with client.session_transaction() as session:
        session["_user_id"] = "1"
        session["_fresh"] = True
    response = client.get(path)
    assert response.status_code == status
    assert "Sign out" not in response.get_data(as_text=True)


def test_an_export_whose_query_fails_is_a_503_not_a_cut_download(app, admin, monkeypatch):
    def failing(*args, **kwargs):
        raise OperationalError("SELECT", {}, Exception("server closed the connection"), True)
        yield  # a generator, as the real one is

    monkeypatch.setattr(listing, "matching_paints", failing)
    app.config["DB_RETRY_SECONDS"] = 0.05
    try:
        response = admin.get("/admin/paints/export.csv")
    finally:
        app.config["DB_RETRY_SECONDS"] = 0.75
    assert response.status_code == 503
    assert response.headers["Retry-After"]


@ON_POSTGRESQL
def test_an_open_breaker_is_closed_by_a_pooled_connection_that_answers(extra_apps):
    """With the server back, the first checkout's ping is the probe: no connection is lost."""
    app = extra_apps(DB_BREAKER_OPEN_SECONDS=0.01)
    with app.app_context():
        api = make_api(app, "breaker")
    missing = "/api/v1/paints/999999"  # never cached: each read asks the database
    assert api.get(missing).status_code == 404
    with app.app_context():
        breaker, pool = database_breaker(), db.engine.pool
        before = pool.checkedin()
        for _ in range(3):
            breaker.failed("a test")
    assert breaker.state == "open"
    time.sleep(0.02)
    assert api.get(missing).status_code == 404
    assert breaker.state == "closed"
    assert pool.checkedin() == before


@ON_POSTGRESQL
def test_a_locked_row_is_a_busy_503_not_an_outage(committed_app, caplog):
    """The server is up: the answer says another change holds the data, and logs no traceback."""
    api = make_api(committed_app)
    paint = api.post(f"{PREFIX}/paints", json={"name": "Held", "brand": "B"}).get_json()
    holder = create_engine(committed_app.config["SQLALCHEMY_DATABASE_URI"])
    with holder.begin() as connection:
        connection.execute(text("SELECT 1 FROM paints WHERE id = :id FOR UPDATE"), paint)
        with caplog.at_level("WARNING", logger="studio"):
            response = api.patch(
                f"{PREFIX}/paints/{paint['id']}", json={"version": 1, "name": "Changed"}
            )
    holder.dispose()
    assert response.status_code == 503 and int(response.headers["Retry-After"]) >= 1
    message = response.get_json()["error"]["message"]
    assert message.startswith("The database is busy with another change to the same data")
    assert "Traceback" not in caplog.text and "lock timeout" in caplog.text
    assert api.get(f"{PREFIX}/paints/{paint['id']}").get_json()["name"] == "Held"
