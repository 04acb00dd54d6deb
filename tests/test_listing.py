"""Listing paints: search, filters, sorting and pagination."""

import pytest
from sqlalchemy import select

from studio.extensions import db
from studio.models import Paint
from studio.services.listing import PaintFilter


@pytest.fixture
def shelf(make_paint):
    """A small, known inventory."""
    make_paint(
        name="Abaddon Black",
        brand="Citadel",
        color_family="Black",
        color_type="Base",
        stock=0,
        price="4.55",
        description="Deep neutral black",
    )
    make_paint(
        name="Mephiston Red",
        brand="Citadel",
        color_family="Red",
        color_type="Base",
        stock=3,
        price="4.55",
        description="Rich crimson red",
    )
    make_paint(
        name="Flat Red",
        brand="Vallejo",
        color_family="Red",
        color_type="Acrylic",
        stock=40,
        price="3.20",
        color_code="70.957",
    )
    make_paint(
        name="Bone White",
        brand="Vallejo",
        color_family="White",
        color_type="Acrylic",
        stock=6,
        price="3.20",
        description="Warm off-white",
    )
    make_paint(
        name="Matt Black",
        brand="The Army Painter",
        color_family="Black",
        color_type="Wash",
        stock=12,
        price="3.50",
    )


def names(api, query):
    response = api.get(f"/api/v1/paints?{query}")
    assert response.status_code == 200, response.get_json()
    return [item["name"] for item in response.get_json()["items"]]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", ["Abaddon Black", "Bone White", "Flat Red", "Matt Black", "Mephiston Red"]),
        ("brand=Vallejo", ["Bone White", "Flat Red"]),
        ("color_family=Red", ["Flat Red", "Mephiston Red"]),
        ("color_type=Base", ["Abaddon Black", "Mephiston Red"]),
        ("color_family=Black&brand=Citadel", ["Abaddon Black"]),
        ("stock=out_of_stock", ["Abaddon Black"]),
        ("stock=low_stock", ["Mephiston Red"]),
        ("stock=in_stock", ["Bone White", "Flat Red", "Matt Black"]),
        ("sort=-stock", ["Flat Red", "Matt Black", "Bone White", "Mephiston Red", "Abaddon Black"]),
        ("sort=price&brand=Citadel", ["Abaddon Black", "Mephiston Red"]),
        ("sort=-price", ["Mephiston Red", "Abaddon Black", "Matt Black", "Bone White", "Flat Red"]),
        ("sort=brand", ["Abaddon Black", "Mephiston Red", "Matt Black", "Flat Red", "Bone White"]),
        (
            "sort=-created_at",
            ["Matt Black", "Bone White", "Flat Red", "Mephiston Red", "Abaddon Black"],
        ),
        ("q=black", ["Abaddon Black", "Matt Black"]),
        ("q=red", ["Flat Red", "Mephiston Red"]),
        ("q=citadel red", ["Mephiston Red"]),
        ("q=crims", ["Mephiston Red"]),
        ("q=70.957", ["Flat Red"]),
        ("q=warm", ["Bone White"]),
        ("q=nothing-like-this", []),
        ("q=%27%29%3B+drop+table+paints%3B--", []),
        (
            "q=%26%7C%21%3A*",
            ["Abaddon Black", "Bone White", "Flat Red", "Matt Black", "Mephiston Red"],
        ),
    ],
)
def test_filters_search_and_sort(api, shelf, query, expected):
    assert names(api, query) == expected


def test_pagination_reports_totals(api, shelf):
    body = api.get("/api/v1/paints?per_page=2&page=3").get_json()
    assert [item["name"] for item in body["items"]] == ["Mephiston Red"]
    assert body["pagination"] == {
        "page": 3,
        "per_page": 2,
        "total": 5,
        "pages": 3,
        "has_next": False,
        "next_cursor": None,
        "total_is_estimate": False,
    }
    beyond = api.get("/api/v1/paints?per_page=2&page=9").get_json()
    assert beyond["items"] == [] and beyond["pagination"]["total"] == 5


@pytest.mark.parametrize(
    "sort", ["name", "-name", "brand", "-stock", "price", "-price", "created_at"]
)
def test_cursor_pages_walk_the_same_order_as_numbered_pages(api, make_paint, sort):
    for number in range(7):
        make_paint(
            name=f"P{number % 3}",
            brand=f"B{number % 2}",
            stock=number % 4,
            price=f"{number % 3}.50",
        )
    numbered = [
        item["id"]
        for page in (1, 2, 3)
        for item in api.get(f"/api/v1/paints?sort={sort}&per_page=3&page={page}").get_json()[
            "items"
        ]
    ]
    walked, cursor = [], None
    while True:
        query = f"sort={sort}&per_page=3" + (f"&after={cursor}" if cursor else "")
        body = api.get(f"/api/v1/paints?{query}").get_json()
        walked += [item["id"] for item in body["items"]]
        cursor = body["pagination"]["next_cursor"]
        assert body["pagination"]["has_next"] == (cursor is not None)
        if cursor is None:
            break
    assert walked == numbered and len(walked) == 7


@pytest.mark.parametrize(
    "cursor",
    ["garbage", "W10", "WyJuYW1lIiwxLDFd", "WyJwcmljZSIsIngiLDFd", "x" * 1001],
)
def test_bad_cursors_are_refused(api, cursor):
    response = api.get(f"/api/v1/paints?after={cursor}")
    assert response.status_code == 422
    assert "after" in response.get_json()["error"]["fields"]


def test_a_cursor_only_fits_its_own_sort(api, make_paint):
    for _ in range(3):
        make_paint()
    cursor = api.get("/api/v1/paints?per_page=1").get_json()["pagination"]["next_cursor"]
    assert api.get(f"/api/v1/paints?per_page=1&after={cursor}").status_code == 200
    assert api.get(f"/api/v1/paints?per_page=1&sort=-price&after={cursor}").status_code == 422


def test_default_page_size_is_20(api, make_paint):
    for _ in range(21):
        make_paint()
    body = api.get("/api/v1/paints").get_json()
    assert len(body["items"]) == 20 and body["pagination"]["has_next"] is True


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("per_page=101", "per_page"),
        ("per_page=0", "per_page"),
        ("page=0", "page"),
        ("page=abc", "page"),
        ("page=99999999999999999999", "page"),
        ("sort=colour", "sort"),
        ("sort=--name", "sort"),
        ("stock=plenty", "stock"),
        ("q=" + "x" * 201, "q"),
        ("brand=%00", "brand"),
    ],
)
def test_bad_query_values_are_named(api, query, field):
    response = api.get(f"/api/v1/paints?{query}")
    assert response.status_code == 422
    assert field in response.get_json()["error"]["fields"]


def explain(query) -> str:
    """Return PostgreSQL's plan for a query, with sequential scans made unattractive."""
    connection = db.session.connection()
    compiled = query.compile(dialect=connection.dialect)
    connection.exec_driver_sql("SET LOCAL enable_seqscan = off")
    cursor = connection.connection.cursor()
    cursor.execute("EXPLAIN " + compiled.string, compiled.params)
    return "\n".join(row[0] for row in cursor.fetchall())


@pytest.mark.parametrize(
    "paint_filter",
    [
        PaintFilter(q="red"),
        PaintFilter(brand="Citadel"),
        PaintFilter(color_family="Red"),
        PaintFilter(color_family="Red", color_type="Base"),
        PaintFilter(stock="out_of_stock"),
        PaintFilter(stock="low_stock"),
    ],
)
@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_filters_use_an_index_on_postgresql(app, shelf, paint_filter):
    plan = explain(select(Paint.id).where(*paint_filter.conditions("postgresql")))
    assert "Seq Scan" not in plan and "ix_paints_" in plan, plan
