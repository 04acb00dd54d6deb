"""PostgreSQL plans on 100,000 paints: every filter, sort, search and figure uses an index."""

import re

import pytest
from flask_migrate import upgrade
from sqlalchemy import event, select, text

from studio.database import lift_time_limits
from studio.extensions import db
from studio.models import Paint
from studio.services import levels, listing, reorder, stats
from studio.services.listing import PaintFilter, encode_cursor
from studio.services.paints import PaintRecord

from .conftest import empty_database, make_app

PAINTS = 100_000
FILL = """
INSERT INTO paints (name, brand, color_code, color_type, color_family, stock, price,
                    description, created_at, updated_at, version)
SELECT (ARRAY['Crimson','Scarlet','Cobalt','Moss','Ochre','Umber','Ivory','Jet'])[1 + n % 8]
         || ' ' || (ARRAY['Deep','Pale','Bright','Dark','Warm','Cold'])[1 + n % 6] || ' ' || n,
       'Brand ' || (n % 40),
       'C-' || n,
       (ARRAY['Base','Layer','Shade','Metallic','Wash'])[1 + n % 5],
       (ARRAY['Red','Blue','Green','Yellow','Brown','White','Black','Grey','Purple','Pink'])
         [1 + n % 10],
       (n * 7919) % 120,
       ((n * 31) % 2000) / 100.0,
       'A paint for tests number ' || n,
       now() - (n || ' minutes')::interval, now(), 1
FROM generate_series(1, :paints) AS n
"""


@pytest.fixture(scope="module")
def big_shop(tmp_path_factory):
    """A PostgreSQL database of 100,000 paints, analysed and vacuumed like a live one."""
    with empty_database("postgresql", tmp_path_factory) as url:
        app = make_app(url)
        with app.app_context():
            upgrade()
            lift_time_limits()  # bulk work, as the seed-demo command does
            db.session.execute(text(FILL), {"paints": PAINTS})
            db.session.commit()
            with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(text("SET statement_timeout = 0"))
                conn.execute(text("VACUUM ANALYZE paints"))
                conn.execute(text("RESET statement_timeout"))
            yield app
            db.session.remove()
            db.engine.dispose()


def plan_of(query) -> str:
    connection = db.session.connection()
    compiled = query.compile(dialect=connection.dialect)
    cursor = connection.connection.cursor()
    cursor.execute("EXPLAIN " + compiled.string, compiled.params)
    return "\n".join(row[0] for row in cursor.fetchall())


def largest_sort(plan: str) -> int:
    """Return how many rows the plan's biggest Sort node expects (0 if it sorts nothing)."""
    sizes = re.findall(r"(?<!Incremental )Sort  \(cost=[\d.]+ rows=(\d+)", plan)
    return max((int(size) for size in sizes), default=0)


def listing_plan(paint_filter: PaintFilter) -> str:
    """Return the plan of the page query the listing would send for this filter."""
    where = paint_filter.conditions("postgresql")
    _, exact = listing.count_matching(where, "postgresql")
    return plan_of(listing.page_statement(paint_filter, where, exact))


SORTS = [sort for column in listing.SORT_COLUMNS for sort in (column, f"-{column}")]


@pytest.mark.parametrize("sort", SORTS)
def test_every_sort_reads_its_index_without_sorting(big_shop, sort):
    plan = listing_plan(PaintFilter(sort=sort))
    assert "Seq Scan" not in plan and " Sort" not in plan, plan
    assert "ix_paints_" in plan


@pytest.mark.parametrize("sort", SORTS)
def test_deep_pages_by_offset_only_walk_the_sort_index(big_shop, sort):
    plan = listing_plan(PaintFilter(sort=sort, page=4000))
    # Only the page's own 21 rows are put back in order after fetching them by id.
    assert "Seq Scan" not in plan and largest_sort(plan) <= 21, plan
    assert "Index Only Scan" in plan


@pytest.mark.parametrize("sort", SORTS)
def test_cursor_pages_seek_the_index(big_shop, sort):
    paint = db.session.scalars(select(Paint).order_by(Paint.id).offset(PAINTS // 2)).first()
    cursor = encode_cursor(sort, PaintRecord.of(paint))
    plan = listing_plan(PaintFilter(sort=sort, after=cursor))
    assert "Seq Scan" not in plan and " Sort" not in plan, plan
    assert "Index Cond: (ROW(" in plan


@pytest.mark.parametrize(
    "paint_filter",
    [
        PaintFilter(brand="Brand 7"),
        PaintFilter(color_family="Red"),
        PaintFilter(color_family="Red", color_type="Base"),
        PaintFilter(color_type="Metallic", sort="-price"),
        PaintFilter(stock="out_of_stock"),
        PaintFilter(stock="low_stock", sort="stock"),
        PaintFilter(stock="in_stock", sort="-created_at"),
        PaintFilter(brand="Brand 3", stock="low_stock"),
        PaintFilter(q="crimson"),
        PaintFilter(q="cobalt pale", sort="-price"),
        PaintFilter(q="C-4242"),
    ],
    ids=repr,
)
def test_filters_and_search_use_indexes(big_shop, paint_filter):
    plan = listing_plan(paint_filter)
    assert "Seq Scan" not in plan, plan


@pytest.mark.parametrize("sort", ["stock", "-stock"])
def test_low_stock_by_stock_reads_the_index_of_paints_at_their_level(big_shop, sort):
    """Most first once walked the stock index down past every paint above its level."""
    plan = listing_plan(PaintFilter(stock="low_stock", sort=sort))
    assert "ix_paints_reorder_stock_id" in plan and "Seq Scan" not in plan, plan


def test_the_reorder_list_and_its_totals_read_their_partial_index(big_shop):
    batch = select(Paint).where(levels.AT_OR_BELOW_LEVEL).order_by(*reorder.ORDER).limit(1000)
    assert "ix_paints_reorder_brand_name_id" in plan_of(batch)
    totals = plan_of(reorder.totals_statement())
    assert "Index Only Scan using ix_paints_reorder_brand_name_id" in totals, totals


@pytest.mark.parametrize("q", ["4242", "C-4242", "c-424", "99999", "deep 4242", "rimso dee"])
@pytest.mark.parametrize("sort", ["name", "-price"])
def test_a_code_fragment_is_found_through_the_trigram_index(big_shop, q, sort):
    """Fragments of codes and words are looked up by trigrams; only the matches are sorted."""
    paint_filter = PaintFilter(q=q, sort=sort)
    plan = listing_plan(paint_filter)
    assert "ix_paints_search" in plan and "Seq Scan" not in plan, plan
    where = paint_filter.conditions("postgresql")
    matches = db.session.scalar(select(db.func.count()).select_from(Paint).where(*where))
    # The planner guesses how many match; either way it sorts those, not every paint.
    assert 0 < matches and largest_sort(plan) <= listing.EXACT_COUNT_LIMIT, plan


@pytest.mark.parametrize("q", ["j", "iv", "JE", "ō", "c-4", "je 42"])
def test_one_or_two_characters_find_word_starts_through_the_trigram_index(big_shop, q):
    """Fewer than 3 characters cannot be found anywhere by trigrams, but at a word's start."""
    plan = listing_plan(PaintFilter(q=q))
    assert "ix_paints_search" in plan and "Seq Scan" not in plan, plan


@pytest.mark.parametrize("sort", ["price", "-price"])
def test_a_big_brand_by_price_reads_its_own_index(big_shop, sort):
    """A brand with more than EXACT_COUNT_LIMIT paints is read in price order from an index."""
    paint_filter = PaintFilter(brand="Brand 7", sort=sort)
    where = paint_filter.conditions("postgresql")
    plan = plan_of(listing.page_statement(paint_filter, where, few_matches=False))
    assert "ix_paints_brand_price_id" in plan and largest_sort(plan) == 0, plan


@pytest.mark.parametrize("sort", ["name", "-price", "created_at"])
def test_a_search_sorts_its_matches_instead_of_walking_the_sort_index(big_shop, sort):
    plan = listing_plan(PaintFilter(q="crimson", sort=sort))
    assert "ix_paints_search" in plan, plan
    assert f"ix_paints_{sort.lstrip('-')}_id" not in plan, plan


@pytest.mark.parametrize(
    "paint_filter",
    [PaintFilter(), PaintFilter(q="crimson"), PaintFilter(stock="low_stock")],
    ids=repr,
)
def test_totals_never_count_more_than_the_limit(big_shop, paint_filter):
    where = paint_filter.conditions("postgresql")
    total, exact = listing.count_matching(where, "postgresql")
    true_total = db.session.scalar(select(db.func.count()).select_from(Paint).where(*where))
    if true_total > listing.EXACT_COUNT_LIMIT:
        assert not exact and 0.5 * true_total <= total <= 2 * true_total
    else:
        assert exact and total == true_total


def test_figures_read_the_running_totals_not_the_paints(big_shop):
    """The figures are sums of the running totals per brand and family (kept by triggers),
    so the one query they send reads those rows alone, however many paints there are."""
    statements = []

    def record(conn, cursor, statement, *args):
        statements.append(statement)

    event.listen(db.engine, "before_cursor_execute", record)
    try:
        figures = stats.inventory_stats()
    finally:
        event.remove(db.engine, "before_cursor_execute", record)
    assert figures.paints == PAINTS
    assert sum(row.paints for row in figures.by_brand) == PAINTS
    [statement] = [sql for sql in statements if sql.startswith("SELECT")]
    plan = plan_of(stats.group_totals())
    assert "paint_totals" in statement and "on paint_totals" in plan, plan
    assert not re.search(r"on paints\b", plan), plan
