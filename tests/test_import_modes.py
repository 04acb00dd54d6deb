"""Price lists and deliveries through the staged import: previewed, then applied all at once."""

import io
import re
from decimal import Decimal

import pytest
from sqlalchemy import func, select, update
from werkzeug.datastructures import FileStorage
from werkzeug.test import encode_multipart

from studio.extensions import db
from studio.models import HistoryEntry, ImportUpload, Paint, StockMovement, User
from studio.services import imports, paints
from studio.services.errors import Conflict, ValidationError
from studio.services.history import Actor
from studio.services.stock import adjust_stock
from studio.services.validation import MAX_STOCK

from .conftest import password_hash, token_from
from .test_openapi import checked, contract  # noqa: F401 (fixtures)


@pytest.fixture
def user_id(app) -> int:
    user = User(username="importer", password_hash=password_hash())
    db.session.add(user)
    db.session.commit()
    return user.id


def as_importer(user_id: int) -> Actor:
    return Actor(user_id, "importer")


def recorded(kind: str) -> list[tuple]:
    """Return the history entries of this kind: (paint code, changes, note, who)."""
    entries = db.session.scalars(
        select(HistoryEntry).where(HistoryEntry.kind == kind).order_by(HistoryEntry.id)
    )
    return [(e.paint_code, e.changes, e.note, e.username) for e in entries]


@pytest.fixture
def limits(app) -> imports.ImportLimits:
    return imports.ImportLimits.from_config(app.config)


@pytest.fixture
def shop(make_paint) -> dict[str, Paint]:
    """Three paints of one brand: A-1 at 4.50 × 10, A-2 at 3.00 × 0, A-3 at 2.00 × 5."""
    return {
        code: make_paint(name=f"Paint {code}", color_code=code, price=price, stock=stock)
        for code, price, stock in (("A-1", "4.50", 10), ("A-2", "3.00", 0), ("A-3", "2.00", 5))
    }


def stage(text: str, user_id: int, limits, mode: str, reference: str | None = None):
    check, upload = imports.stage_upload(
        text.encode(), f"{mode}.csv", user_id, limits, mode=mode, reference=reference
    )
    assert check is not None and check.ok, check and check.errors
    return upload


def by_code(code: str) -> Paint:
    db.session.expire_all()
    return db.session.scalar(select(Paint).where(Paint.color_code == code))


PRICE_LIST = "brand,color_code,price\nCitadel,A-1,4.75\nCitadel,A-2,3.00\nCitadel,Z-9,1.00\n"


def test_a_price_list_changes_only_the_prices_that_differ(shop, user_id, limits):
    staged = stage(PRICE_LIST, user_id, limits, "update")
    preview = staged.changes
    assert [(row.color_code, row.status, row.changes) for row in preview.rows] == [
        ("A-1", "changed", [("price", Decimal("4.50"), Decimal("4.75"))]),
        ("A-2", "unchanged", []),
        ("Z-9", "unknown", []),
    ]
    totals = preview.totals
    assert (totals.rows, totals.changed, totals.unchanged, totals.unknown) == (3, 1, 1, 1)
    # 10 pots of A-1 went from 4.50 to 4.75; nothing is written before the confirmation.
    assert totals.value_change == Decimal("2.50")
    assert by_code("A-1").price == Decimal("4.50")
    versions = {code: by_code(code).version for code in shop}

    done = imports.import_upload(staged.id, as_importer(user_id), limits)

    assert (done.count, done.mode) == (1, "update")
    changed = by_code("A-1")
    assert (changed.price, changed.name, changed.stock) == (Decimal("4.75"), "Paint A-1", 10)
    # A concurrent edit form of A-1 now meets a newer version; the others were not touched.
    assert changed.version == versions["A-1"] + 1
    assert by_code("A-2").version == versions["A-2"]
    assert db.session.scalar(select(func.count(Paint.id))) == 3
    assert recorded("import") == [
        ("A-1", {"price": ["4.50", "4.75"]}, "CSV import: update.csv", "importer")
    ]
    # A second confirmation changes nothing more and says so.
    again = imports.import_upload(staged.id, as_importer(user_id), limits)
    assert again.already and again.count == 1


def test_an_update_sets_the_columns_it_has_and_records_a_stock_change(shop, user_id, limits):
    text = "brand,color_code,name,stock,description\nCitadel,A-3,Bone White,8,\n"
    staged = stage(text, user_id, limits, "update")
    assert staged.changes.rows[0].changes == [("name", "Paint A-3", "Bone White"), ("stock", 5, 8)]
    imports.import_upload(staged.id, as_importer(user_id), limits)
    paint = by_code("A-3")
    assert (paint.name, paint.stock, paint.price) == ("Bone White", 8, Decimal("2.00"))
    movement = db.session.scalars(
        select(StockMovement).where(StockMovement.paint_id == paint.id).order_by(StockMovement.id)
    ).all()[-1]
    assert (movement.kind, movement.delta, movement.stock_after) == ("correction", 3, 8)


DELIVERY = (
    "brand,color_code,quantity,unit_cost\nCitadel,A-1,6,2.10\nCitadel,A-2,12,\nCitadel,Q-7,3,1.00\n"
)


def test_a_delivery_adds_stock_with_one_movement_per_paint(shop, user_id, limits):
    staged = stage(DELIVERY, user_id, limits, "receive", reference="DN-4711")
    preview = staged.changes
    assert [(row.color_code, row.status, row.changes) for row in preview.rows] == [
        ("A-1", "changed", [("stock", 10, 16)]),
        ("A-2", "changed", [("stock", 0, 12)]),
        ("Q-7", "unknown", []),
    ]
    totals = preview.totals
    assert (totals.changed, totals.unknown, totals.units) == (2, 1, 18)
    # 6 × 4.50 + 12 × 3.00; the unit cost is shown (6 × 2.10), never made the price.
    assert totals.value_change == Decimal("63.00")
    assert totals.delivery_cost == Decimal("12.60")
    # A sale between the preview and the confirmation is not lost: the delivery adds to it.
    adjust_stock(shop["A-1"].id, -1, "Sold", None)

    done = imports.import_upload(staged.id, as_importer(user_id), limits)

    assert (done.count, done.units) == (2, 18)
    assert (by_code("A-1").stock, by_code("A-2").stock, by_code("A-1").price) == (
        15,
        12,
        Decimal("4.50"),
    )
    movements = db.session.execute(
        select(StockMovement.delta, StockMovement.stock_after, StockMovement.reason)
        .where(StockMovement.kind == "delivery")
        .order_by(StockMovement.id)
    ).all()
    assert movements == [(6, 15, "DN-4711"), (12, 12, "DN-4711")]
    # One history entry per paint received, naming the delivery note, the file and who.
    assert recorded("stock") == [
        ("A-1", {"stock": [10, 9]}, "Sold", None),
        ("A-1", {"stock": [9, 15]}, "Delivery DN-4711 (CSV import: receive.csv)", "importer"),
        ("A-2", {"stock": [0, 12]}, "Delivery DN-4711 (CSV import: receive.csv)", "importer"),
    ]


def test_an_update_refuses_paints_changed_since_the_check(shop, user_id, limits):
    staged = stage(PRICE_LIST, user_id, limits, "update")
    # Another admin edits A-2 (which the preview showed unchanged) after the check.
    paints.update_paint(shop["A-2"].id, {"version": 1, "price": "3.10"}, None)
    with pytest.raises(Conflict, match=r"row 2: Citadel A-2"):
        imports.import_upload(staged.id, as_importer(user_id), limits)
    assert (by_code("A-1").price, by_code("A-2").price) == (Decimal("4.50"), Decimal("3.10"))
    upload = db.session.get(ImportUpload, staged.id)
    assert upload.status == "checked"


def test_a_delivery_past_the_stock_limit_receives_nothing(shop, user_id, limits):
    db.session.execute(update(Paint).where(Paint.id == shop["A-3"].id).values(stock=MAX_STOCK - 2))
    db.session.commit()
    text = "brand,color_code,quantity\nCitadel,A-1,4\nCitadel,A-3,3\n"
    staged = stage(text, user_id, limits, "receive", reference="DN-1")
    with pytest.raises(Conflict, match=r"row 2: Citadel A-3"):
        imports.import_upload(staged.id, as_importer(user_id), limits)
    # All or nothing: A-1, which fitted, did not move either.
    assert (by_code("A-1").stock, by_code("A-1").version) == (10, shop["A-1"].version)
    assert db.session.scalar(select(func.count()).where(StockMovement.kind == "delivery")) == 0


@pytest.mark.parametrize(
    ("mode", "text", "reference", "field", "message"),
    [
        ("receive", DELIVERY, "", "reference", "is required"),
        ("sideways", PRICE_LIST, None, "mode", "must be one of add, update, receive"),
    ],
)
def test_a_wrong_mode_or_missing_reference_is_named(
    user_id, limits, mode, text, reference, field, message
):
    with pytest.raises(ValidationError) as refused:
        imports.stage_upload(text.encode(), "x.csv", user_id, limits, mode, reference)
    assert message in refused.value.fields[field]
    assert db.session.scalar(select(func.count(ImportUpload.id))) == 0


@pytest.mark.parametrize(
    ("mode", "text", "problem"),
    [
        ("update", "brand,color_code\nCitadel,A-1\n", "no column to change"),
        ("update", "brand,price\nCitadel,4\n", "missing column(s): color_code"),
        ("update", "brand,color_code,price\nCitadel,,4\n", "color_code is required"),
        ("update", "brand,color_code,price\nCitadel,A-1,-4\n", "price"),
        ("receive", "brand,color_code,quantity\nCitadel,A-1,-3\n", "must be between 1"),
        ("receive", "brand,color_code,quantity\nCitadel,A-1,0\n", "must be between 1"),
        ("receive", "brand,color_code,quantity,price\nCitadel,A-1,2,1\n", "unknown column"),
        ("receive", "brand,color_code,quantity\nC,A-1,2\nC,A-1,3\n", "repeats line 2"),
    ],
)
def test_a_bad_file_is_refused_by_line_and_stages_nothing(user_id, limits, mode, text, problem):
    check, staged = imports.stage_upload(text.encode(), "x.csv", user_id, limits, mode, "DN-2")
    assert staged is None
    assert any(problem in reason for _, reason in check.errors), check.errors


@pytest.mark.parametrize(
    ("column", "value"), [("stock", "-3"), ("reorder_level", "-1"), ("price", "4.5x")]
)
def test_an_updates_bad_value_is_the_only_problem_named(user_id, limits, column, value):
    """The row's brand and code were said to be missing whenever another cell was bad."""
    text = f"brand,color_code,{column}\nCitadel,A-1,{value}\n"
    check, staged = imports.stage_upload(text.encode(), "x.csv", user_id, limits, "update")
    assert staged is None
    [(line, reason)] = check.errors
    assert line == 2 and reason.startswith(f'{column} "{value}"'), reason
    assert "required" not in reason


def send(admin, text: str, mode: str, reference: str = ""):
    """Send the file from the import page as a browser does, with its mode and reference."""
    token = token_from(admin.get("/admin/paints/import").get_data(as_text=True))
    boundary, body = encode_multipart(
        {
            "csrf_token": token,
            "mode": mode,
            "reference": reference,
            "file": FileStorage(io.BytesIO(text.encode()), f"{mode}.csv", "file", "text/csv"),
        }
    )
    return admin.client.post(
        "/admin/paints/import", data=body, content_type=f"multipart/form-data; boundary={boundary}"
    )


def test_the_page_previews_old_and_new_and_refuses_a_stale_confirmation(admin, shop):
    page = send(admin, PRICE_LIST, "update").get_data(as_text=True)
    assert "1 paint to update" in page
    assert "<del>€4.50</del> → <ins>€4.75</ins>" in page
    assert 'Row 3: Citadel <span class="mono">Z-9</span>' in page
    path = re.search(r'action="(/admin/paints/import/\d+)"', page).group(1)
    paints.update_paint(shop["A-1"].id, {"version": 1, "name": "Renamed"}, None)
    refused = admin.post(path, form_page=path)
    assert refused.status_code == 409
    assert "row 1: Citadel A-1" in refused.get_data(as_text=True)
    assert by_code("A-1").price == Decimal("4.50")


def test_a_delivery_needs_its_reference_named_on_the_page(admin, shop):
    refused = send(admin, DELIVERY, "receive")
    page = refused.get_data(as_text=True)
    assert refused.status_code == 422
    assert 'id="reference-error">is required' in page
    received = send(admin, DELIVERY, "receive", "DN-9")
    path = re.search(r'action="(/admin/paints/import/\d+)"', received.get_data(as_text=True))
    done = admin.post(path.group(1), form_page=path.group(1))
    assert done.status_code == 302
    listing = admin.get(done.headers["Location"]).get_data(as_text=True)
    assert "Received 18 units into 2 paints." in listing


def test_a_delivery_movement_is_answered_as_the_api_document_says(
    checked,  # noqa: F811
    shop,
    user_id,
    limits,
):
    staged = stage(DELIVERY, user_id, limits, "receive", reference="DN-5")
    imports.import_upload(staged.id, as_importer(user_id), limits)
    history = checked.send("GET", "/paints/{paint_id}/movements", shop["A-1"].id)
    assert history.get_json()["items"][0]["kind"] == "delivery"


def test_an_edit_landing_during_the_update_refuses_it_all(shop, user_id, limits, monkeypatch):
    staged = stage(PRICE_LIST, user_id, limits, "update")
    # As if the edit came after the confirmation's look at the versions: the UPDATE's own
    # condition on each paint's version is then what refuses the file.
    monkeypatch.setattr(imports.bulk_updates, "refuse_changed_paints", lambda *args: None)
    paints.update_paint(shop["A-1"].id, {"version": 1, "name": "Renamed"}, None)
    with pytest.raises(Conflict, match="while it was being applied"):
        imports.import_upload(staged.id, as_importer(user_id), limits)
    assert (by_code("A-1").price, by_code("A-1").name) == (Decimal("4.50"), "Renamed")


@pytest.mark.parametrize(
    ("mode", "text", "field", "now"),
    [
        ("update", PRICE_LIST, "price", "4.75"),
        ("receive", "brand,color_code,quantity\nCitadel,A-1,4\n", "stock", 14),
    ],
)
def test_an_import_retires_the_cached_copies_of_the_paints_it_changed(
    api, shop, user_id, limits, mode, text, field, now
):
    path = f"/api/v1/paints/{shop['A-1'].id}"
    assert api.get(path).get_json()[field] != now  # cached now
    staged = stage(text, user_id, limits, mode, reference="DN-2" if mode == "receive" else None)
    imports.import_upload(staged.id, as_importer(user_id), limits)
    assert api.get(path).get_json()[field] == now


def test_a_delivery_past_the_stock_limit_is_flagged_before_confirming(admin, shop):
    """The preview offered 'Receive' for a delivery its confirmation could only refuse."""
    db.session.execute(update(Paint).where(Paint.id == shop["A-3"].id).values(stock=MAX_STOCK - 2))
    db.session.commit()
    text = "brand,color_code,quantity\nCitadel,A-1,4\nCitadel,A-3,3\n"
    page = send(admin, text, "receive", "DN-7").get_data(as_text=True)
    assert "1 row would take stock past 1,000,000,000" in page
    assert re.search(r'<button type="submit" class="button" disabled>Receive 7 units', page)
    # The new stock is written as every other figure is.
    assert "<ins>1,000,000,001</ins>" in page


def test_a_paints_timeline_shows_a_price_lists_old_and_new_values(admin, shop, user_id, limits):
    """An update's entry was shown as an added paint's: the new values alone."""
    staged = stage(PRICE_LIST, user_id, limits, "update")
    imports.import_upload(staged.id, as_importer(user_id), limits)
    page = admin.get(f"/admin/paints/{shop['A-1'].id}").get_data(as_text=True)
    assert '<span class="change-field">Price</span> €4.50 → €4.75' in page
    # A paint the import added still shows its values alone.
    added = "name,brand,color_code,price\nNew One,Citadel,N-1,2.00\n"
    imports.import_upload(stage(added, user_id, limits, "add").id, as_importer(user_id), limits)
    new = admin.get(f"/admin/paints/{by_code('N-1').id}").get_data(as_text=True)
    assert '<span class="change-field">Price</span> €2.00</li>' in new


def test_the_import_page_names_the_reorder_columns_a_new_paint_may_have(admin):
    """The page listed the optional columns of an export but the two reorder ones."""
    page = admin.get("/admin/paints/import").get_data(as_text=True)
    adding = page.split("<strong>Add new paints:</strong>", 1)[1].split("</li>", 1)[0]
    assert "<code>reorder_level</code>" in adding and "<code>reorder_quantity</code>" in adding
