"""A write whose connection drops during COMMIT is answered by what the server did with it."""

import psycopg2
import pytest
from flask_sqlalchemy.session import Session
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from studio.extensions import db
from studio.models import StockMovement
from studio.resilience.retry import note_commit_sent
from studio.services import transactions

from .conftest import make_api

ON_POSTGRESQL = pytest.mark.parametrize("backend", ["postgresql"], indirect=True)


def lost_connection() -> OperationalError:
    original = psycopg2.OperationalError("server closed the connection unexpectedly")
    return OperationalError("COMMIT", {}, original, connection_invalidated=True)


@pytest.fixture
def commit_goes_wrong(monkeypatch):
    """Make the next COMMIT lose its connection, after (or instead of) reaching the server."""
    original = Session.commit

    def arrange(*, reached_the_server: bool) -> None:
        def commit(session: Session) -> None:
            monkeypatch.setattr(Session, "commit", original)  # once
            if reached_the_server:
                original(session)
            else:
                note_commit_sent()  # COMMIT was on its way: only the server can say
                session.rollback()
            raise lost_connection()

        monkeypatch.setattr(Session, "commit", commit)

    return arrange


def movements(app, reason: str) -> int:
    with app.app_context():
        return db.session.scalar(
            select(func.count()).select_from(StockMovement).where(StockMovement.reason == reason)
        )


@ON_POSTGRESQL
@pytest.mark.parametrize(
    "reached_the_server", [True, False], ids=["committed, answered as saved", "aborted, retried"]
)
def test_a_write_whose_commit_lost_its_connection_is_applied_once_and_answered_201(
    committed_app, commit_goes_wrong, reached_the_server
):
    api = make_api(committed_app)
    paint = api.post("/api/v1/paints", json={"name": "Kept", "brand": "B"}).get_json()
    commit_goes_wrong(reached_the_server=reached_the_server)
    response = api.post(
        f"/api/v1/paints/{paint['id']}/stock", json={"delta": 3, "reason": "delivery"}
    )
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["paint"]["stock"] == 3
    assert movements(committed_app, "delivery") == 1


@ON_POSTGRESQL
def test_a_commit_nobody_can_ask_about_is_a_503_that_says_so(
    committed_app, commit_goes_wrong, monkeypatch
):
    api = make_api(committed_app)
    paint = api.post("/api/v1/paints", json={"name": "Kept", "brand": "B"}).get_json()
    committed_app.config["DB_COMMIT_CONFIRM_SECONDS"] = 0.2
    monkeypatch.setattr(transactions, "_ask_status", lambda xid: None)
    commit_goes_wrong(reached_the_server=True)
    try:
        response = api.post(
            f"/api/v1/paints/{paint['id']}/stock", json={"delta": 3, "reason": "delivery"}
        )
    finally:
        committed_app.config["DB_COMMIT_CONFIRM_SECONDS"] = 10.0
    assert response.status_code == 503
    assert response.headers["Retry-After"]
    message = response.get_json()["error"]["message"]
    assert "not known" in message and "Idempotency-Key" in message
    # It did commit; the answer says it may have, and nothing repeated it.
    assert movements(committed_app, "delivery") == 1
