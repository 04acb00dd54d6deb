"""Idempotency-Key: a repeated write changes nothing and gets its first answer again."""

import threading
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from studio.extensions import db
from studio.models import IdempotencyKey, Paint, StockMovement

from .conftest import ON_POSTGRESQL, make_api, stored

STOCK = "/api/v1/paints/{id}/stock"


def with_key(key: str) -> dict:
    return {"headers": {"Idempotency-Key": key}}


def movement_count(paint_id: int) -> int:
    return db.session.scalar(
        select(func.count()).select_from(StockMovement).where(StockMovement.paint_id == paint_id)
    )


def test_a_repeated_stock_change_is_applied_once_and_answered_alike(api, make_paint):
    paint = make_paint(stock=2)
    body = {"delta": 5, "reason": "Delivery 4711"}
    first = api.post(STOCK.format(id=paint.id), json=body, **with_key("delivery-4711"))
    again = api.post(STOCK.format(id=paint.id), json=body, **with_key("delivery-4711"))
    assert first.status_code == again.status_code == 201
    assert again.get_json() == first.get_json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert stored(paint.id).stock == 7
    assert movement_count(paint.id) == 2  # the opening stock and one delivery


def test_a_repeated_create_makes_one_paint_with_the_same_location(api):
    body = {"name": "Averland Sunset", "brand": "Citadel", "color_code": "21-01"}
    first = api.post("/api/v1/paints", json=body, **with_key("new-averland"))
    again = api.post("/api/v1/paints", json=body, **with_key("new-averland"))
    assert first.status_code == again.status_code == 201
    assert again.headers["Location"] == first.headers["Location"]
    assert again.get_json()["id"] == first.get_json()["id"]
    assert db.session.scalar(select(func.count()).select_from(Paint)) == 1


@pytest.mark.parametrize(
    "second",
    [
        ("stock", {"delta": 6, "reason": "Delivery 4711"}),
        ("create", {"name": "Other", "brand": "B"}),
    ],
    ids=["another body", "another route"],
)
def test_the_same_key_for_another_request_is_refused(api, make_paint, second):
    paint = make_paint(stock=2)
    first = api.post(
        STOCK.format(id=paint.id), json={"delta": 5, "reason": "Delivery 4711"}, **with_key("k1")
    )
    assert first.status_code == 201
    route, body = second
    path = STOCK.format(id=paint.id) if route == "stock" else "/api/v1/paints"
    response = api.post(path, json=body, **with_key("k1"))
    assert response.status_code == 422
    error = response.get_json()["error"]
    assert error["code"] == "idempotency_key_reused"
    assert "Idempotency-Key" in error["fields"]
    assert stored(paint.id).stock == 7
    assert db.session.scalar(select(func.count()).select_from(Paint)) == 1


@pytest.mark.parametrize("key", ["", "with space", "x" * 256, "schlüssel", "tab\there", "one,two"])
def test_a_malformed_key_is_refused_by_name(api, make_paint, key):
    paint = make_paint(stock=2)
    response = api.post(
        STOCK.format(id=paint.id), json={"delta": 1, "reason": "x"}, **with_key(key)
    )
    assert response.status_code == 422
    assert "Idempotency-Key" in response.get_json()["error"]["fields"]
    assert stored(paint.id).stock == 2


def test_a_refused_write_is_not_remembered(api, make_paint):
    paint = make_paint(stock=1)
    body = {"delta": -3, "reason": "Sold 3"}
    assert api.post(STOCK.format(id=paint.id), json=body, **with_key("sale-9")).status_code == 409
    api.post(STOCK.format(id=paint.id), json={"delta": 5, "reason": "Found more"})
    retried = api.post(STOCK.format(id=paint.id), json=body, **with_key("sale-9"))
    assert retried.status_code == 201
    assert stored(paint.id).stock == 3


def test_keys_belong_to_their_user(app, api, make_paint):
    paint = make_paint(stock=0)
    other = make_api(app, "bob")
    body = {"delta": 1, "reason": "Found"}
    assert api.post(STOCK.format(id=paint.id), json=body, **with_key("same")).status_code == 201
    assert other.post(STOCK.format(id=paint.id), json=body, **with_key("same")).status_code == 201
    assert stored(paint.id).stock == 2


def test_a_key_older_than_a_day_is_forgotten(api, make_paint):
    paint = make_paint(stock=0)
    body = {"delta": 1, "reason": "Found"}
    api.post(STOCK.format(id=paint.id), json=body, **with_key("old"))
    db.session.execute(
        update(IdempotencyKey).values(created_at=IdempotencyKey.created_at - timedelta(hours=25))
    )
    again = api.post(STOCK.format(id=paint.id), json=body, **with_key("old"))
    assert again.status_code == 201 and "Idempotent-Replayed" not in again.headers
    assert stored(paint.id).stock == 2


@ON_POSTGRESQL
def test_the_same_request_sent_at_once_is_applied_once(committed_app):
    api = make_api(committed_app)
    paint = api.post("/api/v1/paints", json={"name": "Busy", "brand": "B"}).get_json()
    body = {"delta": 1, "reason": "Counted twice?"}
    answers, start = [], threading.Barrier(6)

    def send() -> None:
        start.wait()
        answers.append(api.post(STOCK.format(id=paint["id"]), json=body, **with_key("once")))

    threads = [threading.Thread(target=send) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [answer.status_code for answer in answers] == [201] * 6
    assert len({answer.get_data() for answer in answers}) == 1
    assert sum("Idempotent-Replayed" in answer.headers for answer in answers) == 5
    with committed_app.app_context():
        assert db.session.get(Paint, paint["id"]).stock == 1
