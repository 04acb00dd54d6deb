"""Stock adjustments: atomic, never below zero, each one a movement."""

from concurrent.futures import ThreadPoolExecutor

import pytest

from studio.extensions import db
from studio.models import Paint, StockMovement
from studio.services import paints

from .conftest import make_api
from .test_cache import counting_statements


def adjust(api, paint_id, delta, reason="Counted"):
    return api.post(f"/api/v1/paints/{paint_id}/stock", json={"delta": delta, "reason": reason})


def test_adjustment_changes_stock_and_records_a_movement(api, make_paint):
    paint = make_paint(stock=5)
    response = adjust(api, paint.id, 3, "Delivery")
    assert response.status_code == 201
    body = response.get_json()
    assert body["paint"]["stock"] == 8
    assert body["paint"]["version"] == 2
    movement = body["movement"]
    assert (movement["delta"], movement["stock_after"], movement["kind"]) == (3, 8, "adjustment")
    assert (movement["reason"], movement["user"]) == ("Delivery", "alice")


def test_an_adjustment_names_its_admin_without_reading_their_row(api, make_paint):
    """The movement's admin is the one acting: loading the user again cost every write a query."""
    paint = make_paint(stock=3)
    assert api.get(f"/api/v1/paints/{paint.id}").status_code == 200  # the token, now cached
    with counting_statements() as statements:
        answer = api.post(f"/api/v1/paints/{paint.id}/stock", json={"delta": 1, "reason": "In"})
    assert answer.status_code == 201
    assert answer.get_json()["movement"]["user"] == "alice"
    assert [sql for sql in statements if "WHERE users.id =" in sql] == []


def test_adjustment_below_zero_is_refused_and_changes_nothing(api, make_paint):
    paint = make_paint(stock=2)
    response = adjust(api, paint.id, -3)
    assert response.status_code == 409
    error = response.get_json()["error"]
    assert error["code"] == "insufficient_stock"
    assert error["current_stock"] == 2
    assert "delta" in error["fields"]
    fetched = api.get(f"/api/v1/paints/{paint.id}").get_json()
    assert (fetched["stock"], fetched["version"]) == (2, 1)
    assert db.session.query(StockMovement).filter_by(paint_id=paint.id).count() == 1


def test_taking_the_last_unit_is_allowed(api, make_paint):
    paint = make_paint(stock=2)
    assert adjust(api, paint.id, -2).get_json()["paint"]["stock"] == 0


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"reason": "x"}, "delta"),
        ({"delta": 0, "reason": "x"}, "delta"),
        ({"delta": "1", "reason": "x"}, "delta"),
        ({"delta": 1.5, "reason": "x"}, "delta"),
        ({"delta": 10**12, "reason": "x"}, "delta"),
        ({"delta": 1}, "reason"),
        ({"delta": 1, "reason": "  "}, "reason"),
        ({"delta": 1, "reason": "x", "user": "bob"}, "user"),
    ],
)
def test_bad_adjustments_name_the_field(api, make_paint, payload, field):
    paint = make_paint(stock=2)
    response = api.post(f"/api/v1/paints/{paint.id}/stock", json=payload)
    assert response.status_code == 422
    assert field in response.get_json()["error"]["fields"]
    assert db.session.get(Paint, paint.id).stock == 2


def test_stock_cannot_overflow(api, make_paint):
    paint = make_paint(stock=1_000_000_000)
    response = adjust(api, paint.id, 1_000_000_000)
    assert response.status_code == 409
    assert api.get(f"/api/v1/paints/{paint.id}").get_json()["stock"] == 1_000_000_000


def test_adjusting_an_unknown_paint_is_404(api):
    assert adjust(api, 424242, 1).status_code == 404


def test_movements_are_paginated_newest_first(api, make_paint):
    paint = make_paint(stock=1)
    for delta in (1, 2, 3):
        adjust(api, paint.id, delta)
    page = api.get(f"/api/v1/paints/{paint.id}/movements?per_page=2").get_json()
    assert [item["delta"] for item in page["items"]] == [3, 2]
    assert page["pagination"] == {
        "page": 1,
        "per_page": 2,
        "total": 4,
        "pages": 2,
        "has_next": True,
        "next_cursor": None,
        "total_is_estimate": False,
    }
    second = api.get(f"/api/v1/paints/{paint.id}/movements?per_page=2&page=2").get_json()
    assert [item["delta"] for item in second["items"]] == [1, 1]
    assert second["items"][-1]["kind"] == "initial"


def test_movements_of_unknown_paint_is_404(api):
    assert api.get("/api/v1/paints/424242/movements").status_code == 404


def test_an_adjustment_makes_an_older_edit_stale(api, make_paint):
    paint = make_paint(stock=5)
    adjust(api, paint.id, 1)
    response = api.patch(f"/api/v1/paints/{paint.id}", json={"version": 1, "stock": 0})
    assert response.status_code == 409
    assert api.get(f"/api/v1/paints/{paint.id}").get_json()["stock"] == 6


def test_concurrent_adjustments_lose_nothing(committed_app):
    """50 admins add one unit at the same moment: all 50 land, each with its movement."""
    api = make_api(committed_app)
    paint = paints.create_paint({"name": "Busy", "brand": "Citadel", "stock": 10}, actor=None)
    paint_id = paint.id
    db.session.remove()

    def add_one(_):
        return adjust(api, paint_id, 1).status_code

    with ThreadPoolExecutor(max_workers=16) as pool:
        statuses = list(pool.map(add_one, range(50)))
    assert statuses == [201] * 50
    assert db.session.get(Paint, paint_id).stock == 60
    deltas = db.session.query(StockMovement.delta).filter_by(paint_id=paint_id, kind="adjustment")
    assert [delta for (delta,) in deltas] == [1] * 50


def test_concurrent_withdrawals_never_go_below_zero(committed_app):
    """30 admins each take 1 of 20 units: exactly 20 succeed and stock ends at 0."""
    api = make_api(committed_app)
    paint_id = paints.create_paint({"name": "Scarce", "brand": "B", "stock": 20}, actor=None).id
    db.session.remove()

    with ThreadPoolExecutor(max_workers=16) as pool:
        statuses = list(pool.map(lambda _: adjust(api, paint_id, -1).status_code, range(30)))
    assert sorted(statuses) == [201] * 20 + [409] * 10
    assert db.session.get(Paint, paint_id).stock == 0
