"""The history of every change: recorded with the change, kept after it, read by page and filter."""

import csv
import html
import io
import re

import pytest
from sqlalchemy import func, select

from studio.extensions import db
from studio.models import HistoryEntry, Paint, StockMovement, VocabularyTerm
from studio.services import csv_io, paints, stock, vocabularies
from studio.services.errors import Conflict, InsufficientStock
from studio.services.history import Actor

from .conftest import make_api, stored
from .test_cache import counting_statements
from .test_imports import confirm, upload

ALICE = Actor(None, "alice")


def entries(paint_id: int | None = None) -> list[HistoryEntry]:
    """Return the entries as the database has them, oldest first."""
    db.session.expire_all()
    query = select(HistoryEntry).order_by(HistoryEntry.id)
    if paint_id is not None:
        query = query.where(HistoryEntry.paint_id == paint_id)
    return list(db.session.scalars(query))


def original_of(paint) -> dict:
    return {"name": paint.name, "price": f"{paint.price:.2f}", "stock": paint.stock}


def test_each_kind_of_change_is_recorded_with_old_and_new_and_outlives_the_paint(app):
    paint = paints.create_paint(
        {
            "name": "Abaddon Black",
            "brand": "Citadel",
            "color_code": "21-25",
            "stock": 5,
            "price": "4.55",
        },
        ALICE,
    )
    opened = original_of(paint)
    paints.update_paint(paint.id, {"price": "4.95", "stock": 7, "original": opened}, ALICE)
    paints.update_paint(paint.id, {"name": "Abaddon Black 2", "version": 2}, ALICE)
    stock.adjust_stock(paint.id, -2, "Sold", ALICE)
    paints.delete_paint(paint.id, ALICE)

    recorded = [(entry.kind, entry.changes, entry.note) for entry in entries(paint.id)]
    assert recorded == [
        (
            "create",
            {
                "name": [None, "Abaddon Black"],
                "brand": [None, "Citadel"],
                "color_code": [None, "21-25"],
                "stock": [None, 5],
                "price": [None, "4.55"],
                "reorder_level": [None, 5],
            },
            None,
        ),
        ("edit", {"stock": [5, 7], "price": ["4.55", "4.95"]}, None),
        ("edit", {"name": ["Abaddon Black", "Abaddon Black 2"]}, None),
        ("stock", {"stock": [7, 5]}, "Sold"),
        (
            "delete",
            {
                "name": ["Abaddon Black 2", None],
                "brand": ["Citadel", None],
                "color_code": ["21-25", None],
                "stock": [5, None],
                "price": ["4.95", None],
                "reorder_level": [5, None],
            },
            None,
        ),
    ]
    last = entries(paint.id)[-1]
    assert (last.username, last.paint_name, last.paint_brand, last.paint_code) == (
        "alice",
        "Abaddon Black 2",
        "Citadel",
        "21-25",
    )
    # The paint and its movements are gone; its history is not.
    assert stored(paint.id) is None
    assert db.session.scalar(select(func.count(StockMovement.id))) == 0


def test_a_refused_change_records_nothing_and_a_failed_entry_changes_nothing(
    app, make_paint, monkeypatch
):
    paint = make_paint(stock=1, color_code="A-1")
    make_paint(color_code="A-2")
    before = len(entries())
    with pytest.raises(InsufficientStock):
        stock.adjust_stock(paint.id, -5, "Sold", ALICE)
    with pytest.raises(Conflict):
        paints.update_paint(
            paint.id, {"color_code": "A-2", "original": {"color_code": "A-1"}}, ALICE
        )
    assert len(entries()) == before

    def broken(*args, **kwargs):
        raise RuntimeError("the entry could not be written")

    # The entry is part of the change's transaction: without it the change does not commit.
    monkeypatch.setattr("studio.services.history.record", broken)
    with pytest.raises(RuntimeError):
        stock.adjust_stock(paint.id, 3, "Delivery", ALICE)
    db.session.rollback()
    assert stored(paint.id).stock == 1
    assert len(entries()) == before


def test_imports_record_one_entry_per_paint_naming_the_file(app, admin):
    # The staged upload inserts with INSERT ... SELECT; the command line's import in batches.
    page = upload(
        admin,
        "name,brand,color_code,stock,price\nKimera Red,Kimera,K-1,3,9.50\n",
        "delivery-17.csv",
    ).get_data(as_text=True)
    assert confirm(admin, page).status_code == 302
    csv_io.import_paints("name,brand,price\nFlat Blue,Vallejo,3.20\n", None)
    staged, batched = [entry for entry in entries() if entry.kind == "import"]
    assert staged.changes == {
        "name": [None, "Kimera Red"],
        "brand": [None, "Kimera"],
        "color_code": [None, "K-1"],
        "stock": [None, 3],
        "price": [None, "9.50"],
        "reorder_level": [None, 5],
    }
    assert (staged.username, staged.note, staged.paint_name) == (
        "admin",
        "CSV import: delivery-17.csv",
        "Kimera Red",
    )
    assert staged.paint_id == db.session.scalar(select(Paint.id).where(Paint.name == "Kimera Red"))
    assert batched.changes == {
        "name": [None, "Flat Blue"],
        "brand": [None, "Vallejo"],
        "stock": [None, 0],
        "price": [None, "3.20"],
        "reorder_level": [None, 5],
    }
    assert batched.username is None


def test_a_rename_of_a_type_is_one_entry_for_the_shop(app, make_paint):
    for _ in range(3):
        make_paint(color_type="Layer")
    before = len(entries())
    layer = db.session.scalar(select(VocabularyTerm).where(VocabularyTerm.name == "Layer"))
    vocabularies.rename_term(layer.id, "Layer paint", ALICE)
    (rename,) = entries()[before:]
    assert (rename.kind, rename.paint_id, rename.changes, rename.note, rename.username) == (
        "rename",
        None,
        {"color_type": ["Layer", "Layer paint"]},
        "3 paints changed",
        "alice",
    )


def test_the_api_shows_a_paints_history_newest_first_with_its_token(api):
    paint = api.post("/api/v1/paints", json={"name": "Mephiston Red", "brand": "Citadel"}).json
    api.post(f"/api/v1/paints/{paint['id']}/stock", json={"delta": 4, "reason": "Delivery"})
    api.delete(f"/api/v1/paints/{paint['id']}")
    body = api.get(f"/api/v1/paints/{paint['id']}/history?per_page=2").json
    first, second = body["items"]
    assert [first["kind"], second["kind"]] == ["delete", "stock"]
    assert second["changes"] == {"stock": {"old": 0, "new": 4}}
    assert (second["user"], second["token"], second["note"]) == ("alice", "tests", "Delivery")
    assert second["paint"] == {
        "id": paint["id"],
        "brand": "Citadel",
        "name": "Mephiston Red",
        "color_code": None,
    }
    assert body["pagination"]["has_next"] and body["pagination"]["total"] == 3
    rest = api.get(
        f"/api/v1/paints/{paint['id']}/history?per_page=2&after={body['pagination']['next_cursor']}"
    ).json
    assert [entry["kind"] for entry in rest["items"]] == ["create"]
    assert api.get("/api/v1/paints/999999/history").status_code == 404


def test_reading_a_paint_does_not_read_its_history(api, make_paint):
    paint = make_paint()
    with counting_statements() as statements:
        assert api.get(f"/api/v1/paints/{paint.id}").status_code == 200
    assert statements and not any("history_entries" in sql for sql in statements)


def test_activity_filters_by_admin_kind_and_day(app, api):
    bob = make_api(app, "bob")
    one = api.post("/api/v1/paints", json={"name": "One", "brand": "B"}).json
    bob.post("/api/v1/paints", json={"name": "Two", "brand": "B"})
    bob.post(f"/api/v1/paints/{one['id']}/stock", json={"delta": 2, "reason": "Found"})

    def kinds(query: str) -> list[tuple[str, str]]:
        response = api.get(f"/api/v1/activity?{query}")
        assert response.status_code == 200, response.json
        return [(entry["kind"], entry["user"]) for entry in response.json["items"]]

    assert kinds("user=bob") == [("stock", "bob"), ("create", "bob")]
    assert kinds("kind=create") == [("create", "bob"), ("create", "alice")]
    assert kinds("user=bob&kind=create&since=2000-01-01&until=9999-12-31") == [("create", "bob")]
    assert kinds("until=2000-01-01") == []
    assert kinds("since=2026-03-02&until=2026-03-01") == []
    assert kinds("user=nobody") == []


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("kind=sale", "kind"),
        ("since=2026-13-01", "since"),
        ("since=20260301", "since"),
        ("after=not-a-cursor", "after"),
        ("page=0", "page"),
        ("user=%01", "user"),
    ],
)
def test_bad_activity_parameters_are_400_naming_the_field(api, query, field):
    for path in ("/api/v1/activity", "/api/v1/paints/1/history"):
        response = api.get(f"{path}?{query}")
        assert response.status_code == 400
        assert list(response.json["error"]["fields"]) == [field]


def test_the_activity_pages_keep_their_size(app, admin, make_paint):
    """Older → dropped per_page: page 2 of 5-entry pages showed 20 entries from the 6th."""
    for number in range(8):
        make_paint(name=f"Paint {number}")
    first = admin.get("/admin/activity?per_page=5").get_data(as_text=True)
    older = re.search(r'href="([^"]*)"[^>]*rel="next"|rel="next"[^>]*href="([^"]*)"', first)
    assert older is not None
    link = html.unescape(older.group(1) or older.group(2))
    assert "per_page=5" in link
    second = admin.get(link).get_data(as_text=True)
    assert second.count('<td data-label="What">') == 3


def test_the_activity_page_and_its_export_share_the_filters(app, admin):
    admin.post(
        "/admin/paints/new",
        {"name": "Kept", "brand": "Citadel", "price": "4,50", "stock": "2"},
        form_page="/admin/paints/new",
    )
    paint_id = db.session.scalar(select(Paint.id).where(Paint.name == "Kept"))
    admin.post(
        f"/admin/paints/{paint_id}",
        {"delta": "-1", "reason": "=1+1 sold"},
        form_page=f"/admin/paints/{paint_id}",
    )
    page = admin.get("/admin/activity?user=admin&kind=stock").get_data(as_text=True)
    what = '<td data-label="What">{}</td>'.format
    assert "=1+1 sold" in page and what("Stock change") in page and what("Created") not in page
    detail = admin.get(f"/admin/paints/{paint_id}").get_data(as_text=True)
    assert what("Created") in detail and what("Stock change") in detail
    export = admin.get("/admin/activity.csv?user=admin&kind=stock")
    rows = list(csv.reader(io.StringIO(export.get_data(as_text=True).lstrip("\ufeff"))))
    assert rows[0][:3] == ["when_utc", "kind", "admin"]
    assert [row[1:3] + row[8:] for row in rows[1:]] == [
        ["stock", "admin", "stock: 2 → 1", "'=1+1 sold"]
    ]
    assert admin.get("/admin/activity?since=nope").status_code == 400


def test_a_paint_given_a_deleted_paints_id_starts_a_history_of_its_own(api):
    first = api.post("/api/v1/paints", json={"name": "Gone", "brand": "B"}).json
    api.delete(f"/api/v1/paints/{first['id']}")
    second = api.post("/api/v1/paints", json={"name": "New", "brand": "B"}).json
    # SQLite hands the newest id out again once its paint is deleted; PostgreSQL never does.
    body = api.get(f"/api/v1/paints/{second['id']}/history").json
    assert [(entry["kind"], entry["paint"]["name"]) for entry in body["items"]] == [
        ("create", "New")
    ]


def test_an_edit_is_not_credited_with_what_another_admin_already_did(app, make_paint):
    paint = make_paint(name="Flat Red", price="4.50")
    opened = {"name": "Flat Red", "price": "4.50"}
    paints.update_paint(paint.id, {"price": "5.00", "original": opened}, Actor(None, "bob"))
    paints.update_paint(
        paint.id, {"price": "5.00", "name": "Flat Red 2", "original": opened}, ALICE
    )
    bob, alice = entries(paint.id)[-2:]
    assert (bob.username, bob.changes) == ("bob", {"price": ["4.50", "5.00"]})
    assert (alice.username, alice.changes) == ("alice", {"name": ["Flat Red", "Flat Red 2"]})


def test_every_editable_field_has_a_label_in_the_timeline(app, admin, make_paint):
    """The reorder fields were shown by their column names, 'reorder_level'."""
    paint = make_paint(reorder_level=5)
    paints.update_paint(paint.id, {"version": 1, "reorder_level": 8, "reorder_quantity": 12}, ALICE)
    page = admin.get(f"/admin/paints/{paint.id}").get_data(as_text=True)
    assert '<span class="change-field">Reorder level</span> 5 → 8' in page
    assert '<span class="change-field">Reorder quantity</span>' in page
    assert "reorder_" not in page.split('class="changes"', 1)[1]


def test_the_delete_pages_say_the_history_stays(admin, make_paint):
    """They said the paint's whole stock history would be removed; its entries are kept."""
    paint = make_paint(stock=3)
    one = admin.get(f"/admin/paints/{paint.id}/delete").get_data(as_text=True)
    several = admin.post("/admin/paints", {"action": "delete", "ids": [paint.id]})
    for page in (one, several.get_data(as_text=True)):
        assert "stock histor" not in page
        assert "its history stays on the Activity page" in page
    admin.post(f"/admin/paints/{paint.id}/delete", form_page=f"/admin/paints/{paint.id}/delete")
    assert db.session.get(Paint, paint.id) is None
    activity = admin.get("/admin/activity?kind=delete").get_data(as_text=True)
    assert paint.name in activity
