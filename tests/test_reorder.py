"""Reorder levels: each paint is low at or below its own level, and the reorder list."""

import csv
import io
import re

import pytest
from flask_migrate import upgrade
from sqlalchemy import select, text

from studio.extensions import db
from studio.models import Paint
from studio.services import csv_io, levels, listing, reorder, stats
from studio.services.errors import ValidationError
from studio.services.listing import PaintFilter
from studio.services.reorder import ReorderRequest

from .test_imports import confirm, upload


@pytest.fixture
def levels_shelf(make_paint):
    """Paints whose own levels, not one threshold, decide which are low.

    With the old threshold of 5, Fast Seller (12 of 20) was in stock and Rare Ink (2 of 1)
    low; Boundary (5 of 5) was low and stays low: low means stock <= level.
    """
    return {
        "fast": make_paint(name="Fast Seller", brand="Citadel", stock=12, reorder_level=20),
        "rare": make_paint(name="Rare Ink", brand="Vallejo", stock=2, reorder_level=1),
        "boundary": make_paint(name="Boundary", brand="Vallejo", stock=5, reorder_level=5),
        "empty": make_paint(
            name="Empty", brand="Citadel", stock=0, reorder_level=3, reorder_quantity=24
        ),
        "plenty": make_paint(name="Plenty", brand="Army", stock=40),
    }


def names(paint_filter):
    return [paint.name for paint in listing.list_paints(paint_filter).items]


def test_low_in_and_out_of_stock_use_each_paints_own_level(admin, api, levels_shelf):
    assert names(PaintFilter(stock="low_stock")) == ["Boundary", "Fast Seller"]
    assert names(PaintFilter(stock="in_stock")) == ["Plenty", "Rare Ink"]
    assert names(PaintFilter(stock="out_of_stock")) == ["Empty"]
    body = api.get("/api/v1/paints?stock=low_stock&sort=-stock").get_json()
    assert [item["name"] for item in body["items"]] == ["Fast Seller", "Boundary"]
    figures = stats.inventory_stats()
    assert (figures.in_stock, figures.low_stock, figures.out_of_stock) == (2, 2, 1)
    assert [paint.name for paint in listing.low_stock_paints()] == ["Boundary", "Fast Seller"]
    dashboard = admin.get("/admin/").get_data(as_text=True)
    assert re.search(r'data-stat="low_stock" data-value="2">2<', dashboard)
    panel = dashboard.split("Running low", 1)[1].split("</section>", 1)[0]
    assert "Fast Seller" in panel and "Boundary" in panel and "Rare Ink" not in panel


def test_a_new_paint_gets_the_configured_default_level(app, api, make_paint):
    app.config["LOW_STOCK_THRESHOLD"] = 7
    try:
        made = make_paint(name="Through the service")
        sent = api.post("/api/v1/paints", json={"name": "Through the API", "brand": "Citadel"})
        csv_io.import_paints("name,brand\nThrough a file,Vallejo\n", None)
    finally:
        app.config["LOW_STOCK_THRESHOLD"] = 5
    assert made.reorder_level == 7 and made.reorder_quantity is None
    assert sent.status_code == 201 and sent.get_json()["reorder_level"] == 7
    imported = db.session.scalar(select(Paint).where(Paint.name == "Through a file"))
    assert (imported.reorder_level, imported.reorder_quantity) == (7, None)


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"reorder_level": -1}, "reorder_level", "must be between 0 and"),
        ({"reorder_level": "5"}, "reorder_level", "must be a whole number."),
        ({"reorder_level": None}, "reorder_level", "is required."),
        ({"reorder_level": True}, "reorder_level", "must be a whole number."),
        ({"reorder_quantity": 0}, "reorder_quantity", "must be between 1 and"),
        ({"reorder_quantity": 2.5}, "reorder_quantity", "must be a whole number."),
    ],
)
def test_bad_levels_and_quantities_are_refused_naming_the_field(
    api, make_paint, fields, field, message
):
    created = api.post("/api/v1/paints", json={"name": "X", "brand": "Y", **fields})
    assert created.status_code == 422
    assert message in created.get_json()["error"]["fields"][field]
    paint = make_paint(stock=3)
    patched = api.patch(f"/api/v1/paints/{paint.id}", json={"version": paint.version, **fields})
    assert patched.status_code == 422
    assert message in patched.get_json()["error"]["fields"][field]
    assert db.session.scalar(select(Paint.reorder_level).where(Paint.id == paint.id)) == 5


def test_the_form_edits_the_level_and_explains_a_bad_one(admin, make_paint):
    paint = make_paint(name="Edited", stock=3)
    path = f"/admin/paints/{paint.id}/edit"
    form = admin.get(path).get_data(as_text=True)
    original = re.search(r'name="original" type="hidden" value="([^"]+)"', form).group(1)
    values = {
        "name": "Edited",
        "brand": "Citadel",
        "color_code": paint.color_code,
        "stock": "3",
        "price": "4.50",
        "original": original,
    }
    refused = admin.post(path, {**values, "reorder_level": "lots", "reorder_quantity": "0"})
    assert refused.status_code == 422
    page = refused.get_data(as_text=True)
    assert "Reorder level must be a whole number" in page
    assert "Reorder quantity must be between 1 and" in page
    saved = admin.post(path, {**values, "reorder_level": "2", "reorder_quantity": "12"})
    assert saved.status_code == 302
    db.session.expire_all()
    edited = db.session.get(Paint, paint.id)
    assert (edited.reorder_level, edited.reorder_quantity) == (2, 12)


def test_the_reorder_list_groups_by_brand_with_suggested_quantities(admin, api, levels_shelf):
    page = reorder.reorder_page(ReorderRequest())
    lines = [(line.paint.brand, line.paint.name, line.suggested_quantity) for line in page.items]
    # Empty has its own quantity; the others get enough to go above their level.
    assert lines == [
        ("Citadel", "Empty", 24),
        ("Citadel", "Fast Seller", 9),
        ("Vallejo", "Boundary", 1),
    ]
    totals = [(total.brand, total.paints, total.units) for total in reorder.brand_totals()]
    assert totals == [("Citadel", 2, 33), ("Vallejo", 1, 1)]
    html = admin.get("/admin/reorder?brand=Citadel").get_data(as_text=True)
    assert "Fast Seller" in html and "Boundary" not in html
    assert 'data-brand-units="33"' in html and 'data-suggested="9"' in html
    body = api.get("/api/v1/reorder?per_page=2").get_json()
    assert [item["paint"]["name"] for item in body["items"]] == ["Empty", "Fast Seller"]
    assert body["pagination"]["total"] == 3 and body["pagination"]["has_next"] is True
    assert body["brands"][0] == {"brand": "Citadel", "paints": 2, "units": 33}
    assert api.get("/api/v1/reorder?brand=" + "x" * 101).status_code == 422


def test_the_reorder_csv_is_an_order_per_brand_or_for_all(admin, levels_shelf):
    response = admin.get("/admin/reorder.csv?brand=Vallejo")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert 'filename="reorder-vallejo-' in response.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True).lstrip("\ufeff"))))
    assert [(row["name"], row["suggested_quantity"]) for row in rows] == [("Boundary", "1")]
    everything = admin.get("/admin/reorder.csv").get_data(as_text=True).lstrip("\ufeff")
    rows = list(csv.DictReader(io.StringIO(everything)))
    assert [row["name"] for row in rows] == ["Empty", "Fast Seller", "Boundary"]
    assert rows[0]["reorder_quantity"] == "24" and rows[1]["reorder_level"] == "20"


def test_levels_go_out_in_the_export_and_come_back_in_an_import(app, make_paint):
    make_paint(name="Levelled", stock=1, reorder_level=8, reorder_quantity=6)
    exported = "".join(csv_io.export_csv(db.session.scalars(select(Paint))))
    assert exported.splitlines()[0].lstrip("\ufeff").split(",")[5:9] == [
        "stock",
        "price",
        "reorder_level",
        "reorder_quantity",
    ]
    check = csv_io.check_import(exported.replace("Levelled", "Again").replace("T-0001", "T-9"))
    assert check.ok
    assert (check.rows[0]["reorder_level"], check.rows[0]["reorder_quantity"]) == (8, 6)
    bad = csv_io.check_import("name,brand,reorder_level\nX,Y,-3\n")
    assert bad.errors and "reorder_level" in bad.errors[0][1]


def test_a_staged_import_keeps_the_levels_it_is_given(admin):
    page = upload(admin, "name,brand,reorder_level,reorder_quantity\nA,B,9,\nC,B,,4\n")
    assert confirm(admin, page.get_data(as_text=True)).status_code == 302
    query = select(Paint.name, Paint.reorder_level, Paint.reorder_quantity).order_by(Paint.name)
    assert db.session.execute(query).all() == [("A", 9, None), ("C", 5, 4)]


# PostgreSQL's plans are checked on 100,000 paints in test_query_plans.
@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_sqlite_reads_the_partial_indexes_too(app):
    low_first = select(Paint.id).where(levels.LOW).order_by(Paint.stock.desc())
    sql = low_first.compile(db.engine, compile_kwargs={"literal_binds": True})
    plan = db.session.execute(text(f"EXPLAIN QUERY PLAN {sql}")).all()
    assert "ix_paints_reorder_stock_id" in str(plan)


def test_a_bad_brand_on_the_reorder_list_is_refused():
    with pytest.raises(ValidationError) as refused:
        ReorderRequest.from_args({"brand": "x" * 101, "page": "0"})
    assert set(refused.value.fields) == {"brand", "page"}


def test_upgrade_gives_existing_paints_the_default_level(fresh_app):
    upgrade(revision="0008")
    with db.engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO paints (name, brand, stock, price, created_at, updated_at, version) "
                "VALUES ('Old', 'Citadel', 4, 0, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP, 1)"
            )
        )
    upgrade(revision="0010")
    with db.engine.connect() as connection:
        row = connection.execute(text("SELECT reorder_level, reorder_quantity FROM paints")).one()
        epochs = connection.execute(text("SELECT count(*) FROM cache_epochs")).scalar()
    assert tuple(row) == (5, None)
    assert epochs >= 1  # cached copies without the new fields are retired
