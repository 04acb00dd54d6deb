"""Deep numbered pages started from page anchors are exactly the pages an offset gives."""

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import delete, insert, select, text, update

from studio.extensions import db
from studio.models import Paint, PaintOrderChange
from studio.services import anchors, listing, paints

from .conftest import ON_POSTGRESQL

PER_PAGE = 3


@pytest.fixture
def shop(app, monkeypatch):
    """45 paints with repeated names, brands, prices and stock (ties broken by id)."""
    monkeypatch.setattr(anchors, "ANCHOR_EVERY", 5)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    rows = [
        {
            "name": f"Paint {number % 13:02d}",
            "brand": ("Citadel", "Vallejo", "Army Painter")[number % 3],
            "price": f"{number % 7}.50",
            "stock": number % 4,
            "created_at": start + timedelta(hours=number % 11),
            "color_code": f"T-{number:04d}",
        }
        for number in range(45)
    ]
    db.session.execute(insert(Paint), rows)
    db.session.flush()
    return app


def offset_ids(paint_filter: listing.PaintFilter) -> list[int]:
    statement = listing.page_statement(paint_filter, [], True)
    return [paint.id for paint in db.session.execute(statement)]


def anchored_ids(paint_filter: listing.PaintFilter) -> tuple[list[int], set[bool]]:
    statement = anchors.page_statement(paint_filter, paint_filter.order_by())
    pairs = db.session.execute(statement).all()
    return [row.id for row in pairs], {row.anchored for row in pairs}


def check_every_page(expect_anchored: dict[str, bool]) -> None:
    for sort in anchors.SORTS:
        for page in range(2, 18):
            paint_filter = listing.PaintFilter(sort=sort, page=page, per_page=PER_PAGE)
            ids, used = anchored_ids(paint_filter)
            assert ids == offset_ids(paint_filter), (sort, page)
            if ids and (page - 1) * PER_PAGE >= anchors.ANCHOR_EVERY:
                assert used == {expect_anchored[sort.removeprefix("-")]}, (sort, page)


ALL = dict.fromkeys(("name", "brand", "price", "stock", "created_at"), True)
NONE = dict.fromkeys(ALL, False)


@ON_POSTGRESQL
def test_without_anchors_deep_pages_read_by_offset(shop):
    check_every_page(NONE)


@ON_POSTGRESQL
def test_built_anchors_give_the_offset_pages_in_every_order(shop):
    assert anchors.rebuild() == 10 * (45 // 5)
    check_every_page(ALL)


@ON_POSTGRESQL
def test_a_rename_retires_the_name_anchors_only_until_a_rebuild(shop):
    anchors.rebuild()
    first = db.session.scalar(select(Paint.id).order_by(Paint.name, Paint.id).limit(1))
    db.session.execute(update(Paint).where(Paint.id == first).values(name="Zzz last"))
    check_every_page({**ALL, "name": False})
    assert anchors.rebuild() == 2 * (45 // 5)  # only name and -name were stale
    check_every_page(ALL)


@ON_POSTGRESQL
def test_a_stock_change_retires_the_stock_anchors_only(shop):
    anchors.rebuild()
    db.session.execute(update(Paint).where(Paint.stock == 0).values(stock=Paint.stock + 9))
    check_every_page({**ALL, "stock": False})


@ON_POSTGRESQL
def test_inserts_and_deletes_retire_every_order(shop):
    anchors.rebuild()
    db.session.execute(
        insert(Paint),
        [{"name": "Paint 00", "brand": "Citadel", "price": "0.10", "stock": 1, "color_code": "N"}],
    )
    check_every_page(NONE)
    anchors.rebuild()
    check_every_page(ALL)
    db.session.execute(delete(Paint).where(Paint.color_code == "T-0007"))
    check_every_page(NONE)
    anchors.rebuild()
    check_every_page(ALL)


@ON_POSTGRESQL
def test_each_write_counts_for_the_orders_it_can_change(shop):
    def counts() -> dict[str, int]:
        rows = db.session.execute(
            select(PaintOrderChange.sort_column, PaintOrderChange.changes)
        ).all()
        totals: dict[str, int] = {}
        for column, changes in rows:
            totals[column] = totals.get(column, 0) + changes
        return totals

    before = counts()
    db.session.execute(update(Paint).where(Paint.id < 0).values(description="x"))
    assert counts() == before
    db.session.execute(update(Paint).values(price=Paint.price + 1))
    after = counts()
    assert after["price"] == before["price"] + 1
    assert {k: v for k, v in after.items() if k != "price"} == {
        k: v for k, v in before.items() if k != "price"
    }


@ON_POSTGRESQL
def test_a_deep_page_without_anchors_asks_for_a_rebuild(shop, monkeypatch):
    asked = []
    monkeypatch.setattr(anchors, "request_rebuild", lambda: asked.append(True))
    paint_filter = listing.PaintFilter(sort="-price", page=4, per_page=PER_PAGE)
    anchors.rebuild()
    page = listing._load_page(paint_filter)
    assert [item.id for item in page.items] == offset_ids(paint_filter)[:PER_PAGE]
    assert asked == []
    db.session.execute(update(Paint).values(price=Paint.price + 1))
    page = listing._load_page(paint_filter)
    assert [item.id for item in page.items] == offset_ids(paint_filter)[:PER_PAGE]
    assert asked == [True]


def test_sqlite_and_filtered_listings_never_use_anchors(app, monkeypatch):
    monkeypatch.setattr(anchors, "ANCHOR_EVERY", 5)
    deep = listing.PaintFilter(page=10, per_page=PER_PAGE)
    dialect = listing.dialect_name()
    assert anchors.usable(deep, [], dialect) == (dialect == "postgresql")
    assert not anchors.usable(deep, [Paint.brand == "Citadel"], dialect)
    assert not anchors.usable(listing.PaintFilter(page=1), [], dialect)


def test_build_anchors_command(app, runner, monkeypatch):
    monkeypatch.setattr(anchors, "ANCHOR_EVERY", 5)
    result = runner.invoke(args=["build-anchors"])
    assert result.exit_code == 0, result.output
    if listing.dialect_name() == "postgresql":
        assert "Page anchors built: 0 written" in result.output
    else:
        assert "not built" in result.output


@ON_POSTGRESQL
def test_a_writer_takes_a_slot_no_open_transaction_holds(committed_app):
    """A slot picked by the connection alone made a writer wait for a long import's commit."""
    paint_id = paints.create_paint({"name": "Slot", "brand": "Citadel", "stock": 4}, None).id
    db.session.remove()
    with db.engine.begin() as connection:  # every slot in use already
        connection.execute(
            text(
                "INSERT INTO paint_order_changes (sort_column, slot, changes) "
                "SELECT 'stock', slot, 0 FROM generate_series(0, 15) AS slot "
                "ON CONFLICT DO NOTHING"
            )
        )
    with db.engine.connect() as holding, db.engine.connect() as other:
        own = other.scalar(text("SELECT pg_backend_pid() % 16"))
        # Another open transaction holds every stock slot but one, the writer's own among them.
        holding.execute(
            text(
                "SELECT slot FROM paint_order_changes WHERE sort_column = 'stock' "
                "AND slot <> :free FOR UPDATE"
            ),
            {"free": (own + 1) % 16},
        )
        other.execute(text("SET LOCAL lock_timeout = '1s'"))
        other.execute(
            text("UPDATE paints SET stock = stock + 1 WHERE id = :id"), {"id": paint_id}
        )  # a wait for its own slot would fail after 1 s
        other.commit()
        holding.rollback()
    counted = db.session.scalar(
        select(db.func.sum(PaintOrderChange.changes)).where(PaintOrderChange.sort_column == "stock")
    )
    assert counted >= 1
