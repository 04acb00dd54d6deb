"""POST /api/v1/paints/bulk: many changes as one, all or none, each bad one named."""

import pytest
from sqlalchemy import func, select

from studio.extensions import db
from studio.models import Paint, StockMovement
from studio.services import bulk

BULK = "/api/v1/paints/bulk"


def snapshot() -> list[tuple]:
    """Every paint's changeable state, and the number of movements."""
    db.session.expire_all()
    paints = db.session.execute(
        select(
            Paint.id, Paint.stock, Paint.reorder_level, Paint.color_family, Paint.version
        ).order_by(Paint.id)
    ).all()
    return [*map(tuple, paints), db.session.scalar(select(func.count(StockMovement.id)))]


def test_adjusts_sets_and_deletes_in_one_request(api, make_paint):
    kept, changed, gone = (make_paint(stock=5) for _ in range(3))
    operations = [
        {"op": "adjust_stock", "paint_id": kept.id, "delta": -2, "reason": "Sold"},
        {"op": "adjust_stock", "paint_id": kept.id, "delta": 10, "reason": "Delivery 7"},
        {"op": "update", "paint_id": changed.id, "fields": {"reorder_level": 2, "price": "5"}},
        {"op": "delete", "paint_id": gone.id},
    ]
    response = api.post(BULK, json={"operations": operations})
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["applied"] == 4
    first, second, update, delete = body["results"]
    assert (first["paint"]["stock"], second["paint"]["stock"]) == (3, 13)
    assert second["movement"]["reason"] == "Delivery 7" and second["movement"]["user"] == "alice"
    assert update["paint"]["reorder_level"] == 2 and update["paint"]["price"] == "5.00"
    assert update["paint"]["version"] == changed.version + 1
    assert delete == {"op": "delete", "paint_id": gone.id}
    assert api.get(f"/api/v1/paints/{kept.id}").get_json()["stock"] == 13
    assert api.get(f"/api/v1/paints/{gone.id}").status_code == 404
    # Each change is in the paints' histories, as one at a time would be.
    edited = api.get(f"/api/v1/paints/{changed.id}/history").get_json()["items"][0]
    assert edited["kind"] == "edit" and edited["user"] == "alice"
    assert edited["changes"] == {
        "price": {"old": "4.50", "new": "5.00"},
        "reorder_level": {"old": changed.reorder_level, "new": 2},
    }
    kinds = [e["kind"] for e in api.get(f"/api/v1/paints/{kept.id}/history").get_json()["items"]]
    assert kinds[:2] == ["stock", "stock"]
    assert api.get(f"/api/v1/paints/{gone.id}/history").get_json()["items"][0]["kind"] == "delete"


def test_one_bad_operation_changes_nothing_and_every_bad_one_is_named(api, make_paint):
    paint, other = make_paint(stock=3), make_paint(stock=1)
    before = snapshot()
    operations = [
        {"op": "adjust_stock", "paint_id": paint.id, "delta": 1, "reason": "fine"},
        {"op": "adjust_stock", "paint_id": paint.id, "delta": -5, "reason": "too many"},
        {"op": "update", "paint_id": other.id, "fields": {"reorder_level": 1}, "version": 9},
        {"op": "delete", "paint_id": 999_999},
        {"op": "delete", "paint_id": other.id},
        {"op": "update", "paint_id": other.id, "fields": {"price": "2"}},
    ]
    response = api.post(BULK, json={"operations": operations})
    assert response.status_code == 409
    fields = response.get_json()["error"]["fields"]
    assert set(fields) == {
        "operations[1].delta",
        "operations[2].version",
        "operations[3].paint_id",
        "operations[5].paint_id",  # deleted by operation 4
    }
    assert "it is 4 at this point" in fields["operations[1].delta"]
    assert snapshot() == before


@pytest.mark.parametrize(
    ("operation", "field"),
    [
        ({"op": "adjust_stock", "paint_id": 1, "delta": 0, "reason": "x"}, "delta"),
        ({"op": "adjust_stock", "paint_id": 1, "delta": 1}, "reason"),
        ({"op": "update", "paint_id": 1, "fields": {"stock": 4}}, "fields.stock"),
        ({"op": "update", "paint_id": 1, "fields": {"price": "-1"}}, "fields.price"),
        ({"op": "update", "paint_id": 1, "fields": {}}, "fields"),
        ({"op": "update", "paint_id": 1, "fields": {"colour": "red"}}, "fields.colour"),
        ({"op": "delete", "paint_id": 0}, "paint_id"),
        ({"op": "delete", "paint_id": "1"}, "paint_id"),
        ({"op": "delete", "paint_id": 1, "reason": "x"}, "reason"),
        ({"op": "rename", "paint_id": 1}, "op"),
    ],
)
def test_a_malformed_operation_is_named_by_its_place(api, make_paint, operation, field):
    paint = make_paint(stock=2)
    before = snapshot()
    fine = {"op": "adjust_stock", "paint_id": paint.id, "delta": 1, "reason": "fine"}
    response = api.post(BULK, json={"operations": [fine, operation]})
    assert response.status_code == 422
    assert list(response.get_json()["error"]["fields"]) == [f"operations[1].{field}"]
    assert snapshot() == before


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"operations": []},
        {"operations": "all"},
        {"operations": [{"op": "delete", "paint_id": 1}] * (bulk.MAX_OPERATIONS + 1)},
    ],
)
def test_the_list_of_operations_is_bounded(api, body):
    response = api.post(BULK, json=body)
    assert response.status_code == 422
    assert "1 to 1,000 operations" in response.get_json()["error"]["fields"]["operations"]


def test_a_thousand_operations_are_applied(api, make_paint):
    paints = [make_paint(stock=0) for _ in range(10)]
    operations = [
        {"op": "adjust_stock", "paint_id": paints[i % 10].id, "delta": 1, "reason": "count"}
        for i in range(bulk.MAX_OPERATIONS)
    ]
    response = api.post(BULK, json={"operations": operations})
    assert response.status_code == 200
    for paint in paints:
        assert api.get(f"/api/v1/paints/{paint.id}").get_json()["stock"] == 100


def test_a_repeated_idempotency_key_applies_once(api, make_paint):
    paint = make_paint(stock=1)
    body = {"operations": [{"op": "adjust_stock", "paint_id": paint.id, "delta": 3, "reason": "r"}]}
    headers = {"Idempotency-Key": "bulk-once"}
    first = api.post(BULK, json=body, headers=headers)
    again = api.post(BULK, json=body, headers=headers)
    assert first.status_code == again.status_code == 200
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.get_json() == first.get_json()
    assert api.get(f"/api/v1/paints/{paint.id}").get_json()["stock"] == 4


def test_a_colour_code_taken_in_the_brand_is_a_conflict(api, make_paint):
    taken, paint = make_paint(color_code="X-1"), make_paint(stock=2)
    before = snapshot()
    operations = [
        {"op": "adjust_stock", "paint_id": paint.id, "delta": 1, "reason": "first"},
        {"op": "update", "paint_id": paint.id, "fields": {"color_code": taken.color_code}},
    ]
    response = api.post(BULK, json={"operations": operations})
    assert response.status_code == 409
    # Named by its place, as every other refused operation is; it said only "color_code".
    error = response.get_json()["error"]
    assert error["fields"] == {
        "operations[1].fields.color_code": "is already used by another paint of this brand."
    }
    assert "operations[1]" in error["message"]
    assert snapshot() == before
