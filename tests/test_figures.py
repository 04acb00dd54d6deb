"""Running totals: every kind of write keeps the figures equal to a recount of the paints."""

import random
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import pytest
from sqlalchemy import select, text

from studio.extensions import db
from studio.models import Paint, PaintTotals, VocabularyTerm
from studio.services import csv_io, demo, figures, paints, stats, vocabularies

from .conftest import ON_POSTGRESQL, make_api


def counted() -> dict:
    """Return the figures counted in Python from every paint, as the API shows them."""
    db.session.expire_all()
    rows = db.session.scalars(select(Paint)).all()
    brands, families = Counter(), Counter()
    brand_units, family_units = Counter(), Counter()
    for paint in rows:
        brands[paint.brand] += 1
        brand_units[paint.brand] += paint.stock
        families[paint.color_family] += 1
        family_units[paint.color_family] += paint.stock
    return {
        "paints": len(rows),
        "units": sum(paint.stock for paint in rows),
        "value": sum((paint.price * paint.stock for paint in rows), Decimal("0.00")),
        "in_stock": sum(paint.stock > paint.reorder_level for paint in rows),
        "low_stock": sum(1 <= paint.stock <= paint.reorder_level for paint in rows),
        "out_of_stock": sum(paint.stock == 0 for paint in rows),
        "by_brand": {key: (brands[key], brand_units[key]) for key in brands},
        "by_color_family": {key: (families[key], family_units[key]) for key in families},
    }


def shown() -> dict:
    """Return the figures as the running totals give them."""
    figures_now = stats.inventory_stats()
    return {
        **{name: getattr(figures_now, name) for name in figures.FIELDS},
        "by_brand": {row.key: (row.paints, row.units) for row in figures_now.by_brand},
        "by_color_family": {
            row.key: (row.paints, row.units) for row in figures_now.by_color_family
        },
    }


def assert_exact() -> None:
    assert shown() == counted()
    assert figures.check() == []


def edit(api, paint, **fields):
    response = api.patch(f"/api/v1/paints/{paint.id}", json={"version": paint.version, **fields})
    assert response.status_code == 200, response.get_json()


def write_create(api, shop):
    paints.create_paint({"name": "New", "brand": "Vallejo", "stock": 3, "price": "2.25"}, None)


def write_price(api, shop):
    edit(api, shop[0], price="9.99")


def write_stock(api, shop):
    edit(api, shop[0], stock=0)


def write_brand(api, shop):
    edit(api, shop[1], brand="Vallejo")


def write_family(api, shop):
    edit(api, shop[1], color_family="Blue")


def write_family_removed(api, shop):
    edit(api, shop[1], color_family=None)


def write_reorder_level(api, shop):
    edit(api, shop[2], reorder_level=50)


def write_delete(api, shop):
    assert api.delete(f"/api/v1/paints/{shop[2].id}").status_code == 204


def write_adjust(api, shop):
    response = api.post(f"/api/v1/paints/{shop[0].id}/stock", json={"delta": -2, "reason": "x"})
    assert response.status_code == 201


def write_bulk(api, shop):
    operations = [
        {"op": "adjust_stock", "paint_id": shop[0].id, "delta": 4, "reason": "Delivery"},
        {"op": "update", "paint_id": shop[1].id, "fields": {"price": "1.10", "brand": "Army"}},
        {"op": "delete", "paint_id": shop[2].id},
    ]
    response = api.post("/api/v1/paints/bulk", json={"operations": operations})
    assert response.status_code == 200, response.get_json()


def write_import(api, shop):
    rows = "".join(
        f"Imported {n},{('Citadel', 'Scale75')[n % 2]},I-{n},{('Red', '', 'Green')[n % 3]},"
        f"{n % 7},{n % 4}.15,{n % 5}\n"
        for n in range(25)
    )
    document = "name,brand,color_code,color_family,stock,price,reorder_level\n" + rows
    assert csv_io.import_paints(document, None) == 25


def write_seed(api, shop):
    assert demo.seed_demo(40) == 40


def write_family_rename(api, shop):
    term = db.session.scalar(
        select(VocabularyTerm.id).where(
            VocabularyTerm.kind == "color_family", VocabularyTerm.name == "Red"
        )
    )
    vocabularies.rename_term(term, "Crimson")


def write_raw_sql(api, shop):
    db.session.execute(text("UPDATE paints SET stock = stock + 1, brand = 'Raw' WHERE stock < 6"))
    db.session.execute(text("DELETE FROM paints WHERE price > 4"))
    db.session.commit()


WRITES = [
    write_create,
    write_price,
    write_stock,
    write_brand,
    write_family,
    write_family_removed,
    write_reorder_level,
    write_delete,
    write_adjust,
    write_bulk,
    write_import,
    write_seed,
    write_family_rename,
    write_raw_sql,
]


@pytest.fixture
def shop(make_paint):
    return [
        make_paint(brand="Citadel", color_family="Red", stock=5, price="4.55"),
        make_paint(brand="Citadel", color_family="Red", stock=8, price="3.10", reorder_level=2),
        make_paint(brand="Citadel", color_family=None, stock=12, price="0.10"),
        make_paint(brand="Vallejo", color_family="Blue", stock=0, price="2.00"),
    ]


def test_a_new_shop_has_no_totals(app):
    assert shown()["paints"] == 0 and figures.check() == []


@pytest.mark.parametrize("write", WRITES, ids=lambda write: write.__name__)
def test_each_write_keeps_the_figures_exact(api, shop, write):
    assert_exact()
    write(api, shop)
    assert_exact()


def test_a_group_whose_paints_are_gone_leaves_the_breakdowns(api, shop):
    for paint in shop[:3]:
        paints.delete_paint(paint.id, None)
    body = api.get("/api/v1/stats").get_json()
    assert body["by_brand"] == [{"brand": "Vallejo", "paints": 1, "units": 0}]
    assert body["paints"] == 1
    assert_exact()


def corrupt() -> None:
    """Seven units too many for Citadel/Red, Vallejo/Blue's rows gone, a group of no paints."""
    insert = text(
        "INSERT INTO paint_totals (brand, color_family, paints, units, value, "
        "in_stock, low_stock, out_of_stock) "
        "VALUES (:brand, :family, :paints, :units, 0, 0, 0, :out)"
    )
    db.session.execute(
        insert, {"brand": "Citadel", "family": "Red", "paints": 0, "units": 7, "out": 0}
    )
    db.session.execute(insert, {"brand": "Ghost", "family": "", "paints": 2, "units": 0, "out": 2})
    db.session.execute(text("DELETE FROM paint_totals WHERE brand = 'Vallejo'"))
    db.session.commit()


def test_check_figures_names_each_drift_and_fix_mends_them(runner, shop):
    corrupt()
    found = runner.invoke(args=["check-figures"])
    assert found.exit_code == 1, found.output
    assert "Citadel / Red: units kept 20, counted 13" in found.output
    assert "Vallejo / Blue: paints kept 0, counted 1" in found.output
    assert "Ghost / (no family): paints kept 2, counted 0" in found.output
    assert "Ghost / (no family): out_of_stock kept 2, counted 0" in found.output
    assert "--fix" in found.output

    fixed = runner.invoke(args=["check-figures", "--fix"])
    assert fixed.exit_code == 0, fixed.output
    assert "Fixed" in fixed.output
    again = runner.invoke(args=["check-figures"])
    assert again.exit_code == 0, again.output
    assert "The figures match the paints." in again.output
    assert_exact()


def test_a_drift_in_value_is_found_to_the_cent(app, shop):
    db.session.execute(
        text(
            "INSERT INTO paint_totals (brand, color_family, paints, units, value, "
            "in_stock, low_stock, out_of_stock) VALUES ('Vallejo', 'Blue', 0, 0, 1, 0, 0, 0)"
        )
    )
    db.session.commit()
    [drift] = figures.check()
    assert (drift.brand, drift.color_family, drift.field) == ("Vallejo", "Blue", "value")
    assert drift.actual == Decimal("0.00") and drift.stored != drift.actual


@ON_POSTGRESQL
def test_random_concurrent_writes_leave_no_drift(committed_app):
    """Eight admins create, edit, adjust, bulk-change and delete paints at once."""
    api = make_api(committed_app)
    brands, families = ["Citadel", "Vallejo", "Army"], ["Red", "Blue", None]
    ids = [
        paints.create_paint(
            {
                "name": f"P{n}",
                "brand": brands[n % 3],
                "color_family": families[n % 3],
                "stock": n % 9,
                "price": f"{n % 5}.25",
            },
            None,
        ).id
        for n in range(24)
    ]
    db.session.remove()

    def writer(seed):
        rng = random.Random(seed)
        statuses = []
        for _ in range(25):
            paint_id = rng.choice(ids)
            action = rng.randrange(6)
            if action == 0:
                response = api.post(
                    f"/api/v1/paints/{paint_id}/stock",
                    json={"delta": rng.choice([-2, -1, 1, 3]), "reason": "x"},
                )
            elif action in (1, 2):
                current = api.get(f"/api/v1/paints/{paint_id}").get_json()
                if "version" not in current:
                    continue
                change = rng.choice(
                    [
                        {"brand": rng.choice(brands)},
                        {"color_family": rng.choice(families)},
                        {"price": f"{rng.randrange(10)}.50"},
                        {"reorder_level": rng.randrange(10)},
                        {"stock": rng.randrange(12)},
                    ]
                )
                response = api.patch(
                    f"/api/v1/paints/{paint_id}", json={"version": current["version"], **change}
                )
            elif action == 3:
                response = api.post(
                    "/api/v1/paints",
                    json={
                        "name": f"W{seed}-{rng.random()}",
                        "brand": rng.choice(brands),
                        "stock": rng.randrange(9),
                        "price": "1.75",
                    },
                )
            elif action == 4:
                others = rng.sample(ids, 3)
                operations = [
                    {"op": "adjust_stock", "paint_id": other, "delta": 1, "reason": "bulk"}
                    for other in others
                ]
                response = api.post("/api/v1/paints/bulk", json={"operations": operations})
            else:
                response = api.delete(f"/api/v1/paints/{paint_id}")
            statuses.append(response.status_code)
        return statuses

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = [status for result in pool.map(writer, range(8)) for status in result]
    assert all(status < 500 for status in statuses), Counter(statuses)
    assert sum(status in (200, 201, 204) for status in statuses) > 100
    with committed_app.app_context():
        assert figures.check() == []
        assert shown() == counted()


def test_one_writer_keeps_one_row_per_group(app, shop):
    """Differences are added to the group's row in place, not appended."""
    for number in range(300):
        db.session.execute(
            text("UPDATE paints SET stock = :stock WHERE id = :id"),
            {"stock": number % 9, "id": shop[number % 4].id},
        )
    db.session.commit()
    groups = db.session.execute(select(PaintTotals.brand, PaintTotals.color_family)).all()
    assert sorted(groups) == [("Citadel", ""), ("Citadel", "Red"), ("Vallejo", "Blue")]
    assert_exact()


@ON_POSTGRESQL
def test_a_writer_never_waits_for_another_writer_of_the_same_group(committed_app):
    """An open transaction holds its group's row; a second writer takes another one."""
    first, second = (
        paints.create_paint({"name": name, "brand": "Citadel", "stock": 4}, None).id
        for name in ("First", "Second")
    )
    db.session.remove()
    update = text("UPDATE paints SET stock = stock + 1 WHERE id = :id")
    with db.engine.connect() as holding, db.engine.connect() as other:
        holding.execute(update, {"id": first})  # its transaction stays open
        other.execute(text("SET LOCAL lock_timeout = '1s'"))
        other.execute(update, {"id": second})  # a lock wait would fail after 1 s
        other.commit()
        holding.commit()
    rows = db.session.scalars(select(PaintTotals).where(PaintTotals.brand == "Citadel")).all()
    assert len(rows) == 2
    assert figures.check() == []
    assert shown()["units"] == 10
