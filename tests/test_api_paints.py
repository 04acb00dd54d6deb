"""The paints API: create, read, list, edit, delete."""

import pytest

from studio.extensions import db
from studio.models import Paint, StockMovement

NEW_PAINT = {
    "name": "Abaddon Black",
    "brand": "Citadel",
    "color_code": "21-25",
    "color_type": "Base",
    "color_family": "Black",
    "stock": 12,
    "price": "4.55",
    "description": "A deep, neutral black.",
    "color_preview": "#231f20",
    "image_url": "https://example.com/abaddon.png",
}


def test_create_returns_the_paint_with_location(api):
    response = api.post("/api/v1/paints", json=NEW_PAINT)
    assert response.status_code == 201
    body = response.get_json()
    assert response.headers["Location"] == f"/api/v1/paints/{body['id']}"
    assert body["price"] == "4.55"
    assert body["color_preview"] == "#231F20"
    assert body["version"] == 1
    assert body["created_at"].endswith("Z")
    fetched = api.get(response.headers["Location"]).get_json()
    assert fetched == body


def test_create_records_opening_stock_as_a_movement(api):
    paint_id = api.post("/api/v1/paints", json=NEW_PAINT).get_json()["id"]
    movements = api.get(f"/api/v1/paints/{paint_id}/movements").get_json()["items"]
    assert [(m["kind"], m["delta"], m["stock_after"], m["user"]) for m in movements] == [
        ("initial", 12, 12, "alice")
    ]


def test_price_accepts_numbers_and_keeps_cents_exact(api):
    body = api.post("/api/v1/paints", json={"name": "A", "brand": "B", "price": 0.1}).get_json()
    assert body["price"] == "0.10"
    body = api.post("/api/v1/paints", json={"name": "A", "brand": "C", "price": 12}).get_json()
    assert body["price"] == "12.00"


def test_duplicate_code_within_a_brand_is_a_conflict(api):
    assert api.post("/api/v1/paints", json=NEW_PAINT).status_code == 201
    response = api.post("/api/v1/paints", json={**NEW_PAINT, "name": "Other"})
    assert response.status_code == 409
    assert "color_code" in response.get_json()["error"]["fields"]
    assert db.session.query(Paint).count() == 1
    other_brand = api.post("/api/v1/paints", json={**NEW_PAINT, "brand": "Vallejo"})
    assert other_brand.status_code == 201


def test_paints_without_code_do_not_clash(api):
    for _ in range(2):
        response = api.post("/api/v1/paints", json={"name": "X", "brand": "B", "color_code": ""})
        assert response.status_code == 201
        assert response.get_json()["color_code"] is None


@pytest.mark.parametrize(
    ("payload", "field", "message"),
    [
        ({"brand": "B"}, "name", "required"),
        ({"name": "  ", "brand": "B"}, "name", "required"),
        ({"name": "A"}, "brand", "required"),
        ({"name": "A", "brand": "B", "stock": -1}, "stock", "between"),
        ({"name": "A", "brand": "B", "stock": 1.5}, "stock", "whole number"),
        ({"name": "A", "brand": "B", "stock": "5"}, "stock", "whole number"),
        ({"name": "A", "brand": "B", "stock": True}, "stock", "whole number"),
        ({"name": "A", "brand": "B", "stock": 10**20}, "stock", "between"),
        ({"name": "A", "brand": "B", "price": "-1"}, "price", "between"),
        ({"name": "A", "brand": "B", "price": "1.999"}, "price", "two decimal"),
        ({"name": "A", "brand": "B", "price": "abc"}, "price", "number"),
        ({"name": "A", "brand": "B", "price": "NaN"}, "price", "number"),
        ({"name": "A", "brand": "B", "price": "1e400"}, "price", "number"),
        ({"name": "A", "brand": "B", "price": [1]}, "price", "number"),
        ({"name": "A", "brand": "B", "image_url": "javascript:alert(1)"}, "image_url", "http"),
        ({"name": "A", "brand": "B", "image_url": "ftp://x/y.png"}, "image_url", "http"),
        ({"name": "A", "brand": "B", "color_preview": "red"}, "color_preview", "#RRGGBB"),
        ({"name": "A", "brand": "B", "color_preview": "#12345G"}, "color_preview", "#RRGGBB"),
        ({"name": "A", "brand": "B", "color_preview": "notacolour"}, "color_preview", "#RRGGBB"),
        ({"name": "A" * 201, "brand": "B"}, "name", "at most 200"),
        ({"name": "A\x00B", "brand": "B"}, "name", "control"),
        ({"name": 5, "brand": "B"}, "name", "string"),
        ({"name": "A", "brand": "B", "colour": "red"}, "colour", "not a known field"),
        ({"name": "A", "brand": "B", "id": 5}, "id", "read-only"),
    ],
)
def test_bad_fields_are_named_and_nothing_is_created(api, payload, field, message):
    response = api.post("/api/v1/paints", json=payload)
    assert response.status_code == 422
    error = response.get_json()["error"]
    assert error["code"] == "validation_error"
    assert message in error["fields"][field]
    assert db.session.query(Paint).count() == 0


def test_every_bad_field_is_reported_at_once(api):
    response = api.post("/api/v1/paints", json={"stock": -1, "price": "x", "extra": 1})
    assert set(response.get_json()["error"]["fields"]) == {
        "name",
        "brand",
        "stock",
        "price",
        "extra",
    }


def test_patch_changes_fields_and_bumps_version(api, make_paint):
    paint = make_paint(stock=3)
    response = api.patch(
        f"/api/v1/paints/{paint.id}", json={"version": 1, "name": "Renamed", "price": "9.99"}
    )
    assert response.status_code == 200
    body = response.get_json()
    assert (body["name"], body["price"], body["version"], body["stock"]) == (
        "Renamed",
        "9.99",
        2,
        3,
    )


def test_patch_on_a_stale_version_is_refused_with_the_current_version(api, make_paint):
    paint = make_paint()
    api.patch(f"/api/v1/paints/{paint.id}", json={"version": 1, "name": "First"})
    response = api.patch(f"/api/v1/paints/{paint.id}", json={"version": 1, "name": "Second"})
    assert response.status_code == 409
    assert response.get_json()["error"]["current_version"] == 2
    assert api.get(f"/api/v1/paints/{paint.id}").get_json()["name"] == "First"


def test_patch_needs_a_version(api, make_paint):
    paint = make_paint()
    response = api.patch(f"/api/v1/paints/{paint.id}", json={"name": "X"})
    assert response.status_code == 422
    assert response.get_json()["error"]["fields"] == {"version": "is required."}


def test_patch_with_bad_fields_changes_nothing(api, make_paint):
    paint = make_paint(name="Keep")
    response = api.patch(
        f"/api/v1/paints/{paint.id}", json={"version": 1, "name": "New", "price": "-3"}
    )
    assert response.status_code == 422
    assert api.get(f"/api/v1/paints/{paint.id}").get_json()["name"] == "Keep"


def test_patch_of_stock_is_recorded_as_a_correction(api, make_paint):
    paint = make_paint(stock=10)
    response = api.patch(f"/api/v1/paints/{paint.id}", json={"version": 1, "stock": 7})
    assert response.get_json()["stock"] == 7
    items = api.get(f"/api/v1/paints/{paint.id}/movements").get_json()["items"]
    assert (items[0]["kind"], items[0]["delta"], items[0]["stock_after"]) == ("correction", -3, 7)


def test_delete_removes_the_paint_and_its_history(api, make_paint):
    paint = make_paint(stock=5)
    assert api.delete(f"/api/v1/paints/{paint.id}").status_code == 204
    assert api.get(f"/api/v1/paints/{paint.id}").status_code == 404
    assert db.session.query(StockMovement).filter_by(paint_id=paint.id).count() == 0
    assert api.delete(f"/api/v1/paints/{paint.id}").status_code == 404


@pytest.mark.parametrize("path", ["/api/v1/paints/999999", "/api/v1/paints/99999999999999999999"])
def test_unknown_paint_is_404_json(api, path):
    response = api.get(path)
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "not_found"
