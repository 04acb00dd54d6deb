"""Inventory figures."""

import re
from decimal import Decimal

import pytest
from sqlalchemy import event

from studio.extensions import db


def test_stats_of_an_empty_shop(api):
    body = api.get("/api/v1/stats").get_json()
    assert body["paints"] == 0 and body["units"] == 0 and body["value"] == "0.00"
    assert body["by_brand"] == [] and body["by_color_family"] == []


def test_stats_add_up(api, make_paint):
    make_paint(brand="Citadel", color_family="Red", stock=0, price="4.55")
    make_paint(brand="Citadel", color_family="Red", stock=3, price="4.55")
    make_paint(brand="Vallejo", color_family="Blue", stock=10, price="3.10")
    make_paint(brand="Vallejo", color_family=None, stock=7, price="0.10")
    body = api.get("/api/v1/stats").get_json()
    assert (body["paints"], body["units"]) == (4, 20)
    # 3 * 4.55 + 10 * 3.10 + 7 * 0.10, exactly.
    assert Decimal(body["value"]) == Decimal("45.35")
    assert (body["in_stock"], body["low_stock"], body["out_of_stock"]) == (2, 1, 1)
    assert body["low_stock_threshold"] == 5
    assert body["by_brand"] == [
        {"brand": "Citadel", "paints": 2, "units": 3},
        {"brand": "Vallejo", "paints": 2, "units": 17},
    ]
    families = {
        row["color_family"]: (row["paints"], row["units"]) for row in body["by_color_family"]
    }
    assert families == {"Red": (2, 3), "Blue": (1, 10), None: (1, 7)}


def test_value_is_exact_over_many_cents(api, make_paint):
    for _ in range(30):
        make_paint(stock=3, price="0.10")
    assert api.get("/api/v1/stats").get_json()["value"] == "9.00"


@pytest.mark.parametrize("paint_count", [2, 25])
def test_stats_cost_one_query_of_the_totals(app, api, make_paint, paint_count):
    for number in range(paint_count):
        make_paint(
            brand=f"Brand {number % 7}",
            color_family=("Red", "Blue", "Green", "Grey", "Pink")[number % 5],
            stock=number,
        )
    statements = []

    def count(*args):
        statements.append(args[2])

    engine = db.engines[None].engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        assert api.get("/api/v1/stats").status_code == 200
    finally:
        event.remove(engine, "before_cursor_execute", count)
    # The running totals alone (one row per brand and family), however many paints.
    assert not [sql for sql in statements if re.search(r"FROM paints\b", sql)]
    assert len([sql for sql in statements if "FROM paint_totals" in sql]) == 1
