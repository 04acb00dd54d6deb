"""PostgreSQL plans on 100,000 paints: every filter, sort, search and figure uses an index."""

import re
from dataclasses import replace

import pytest
from flask_migrate import upgrade
from sqlalchemy import event, select, text

from studio.database import lift_time_limits
from studio.extensions import db
from studio.models import Paint
from studio.services import activity, anchors, demo, levels, listing, reorder, stats
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
    compiled = query.compile(dialect=db.session.connection().dialect)
    return explained(compiled.string, compiled.params)


def explained(statement: str, parameters) -> str:
    """Return the plan of a statement as sent, with its parameters."""
    cursor = db.session.connection().connection.cursor()
    cursor.execute("EXPLAIN " + statement, parameters)
    return "\n".join(row[0] for row in cursor.fetchall())


def largest_sort(plan: str) -> int:
    """Return how many rows the plan's biggest Sort node expects (0 if it sorts nothing)."""
    sizes = re.findall(r"(?<!Incremental )Sort  \(cost=[\d.]+ rows=(\d+)", plan)
    return max((int(size) for size in sizes), default=0)


def listing_plan(paint_filter: PaintFilter) -> str:
    """Return the plan of the page query the listing would send for this filter."""
    where = paint_filter.conditions("postgresql")
    if not paint_filter.q:
        total, exact = listing.count_matching(where, "postgresql")
        return plan_of(listing.page_statement(paint_filter, where, listing.few(total, exact)))
    _, walk = listing.search_walk(paint_filter, where)
    statement = listing.page_statement(paint_filter, where, walk is None, walk=walk)
    if walk is None and paint_filter.after is None:  # counted as they are sorted
        statement = statement.add_columns(db.func.count().over())
    return plan_of(statement)


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
def test_anchored_deep_pages_seek_the_index_and_skip_the_offset_read(big_shop, sort):
    paint_filter = PaintFilter(sort=sort, page=4000)
    plan = plan_of(anchors.page_statement(paint_filter, paint_filter.order_by()))
    # Seeked from the anchor's key; the read from the start runs only without an anchor.
    assert "Seq Scan" not in plan and largest_sort(plan) <= 42, plan
    assert "Index Cond: (ROW(" in plan and "One-Time Filter: (NOT " in plan, plan


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


@pytest.mark.parametrize(
    "paint_filter",
    [PaintFilter(brand="Brand 3", sort="-price"), PaintFilter(brand="Brand 3", sort="name")],
    ids=repr,
)
def test_a_brand_of_thousands_is_read_in_order_not_sorted(big_shop, paint_filter):
    """Sorting up to 10,000 matches read each one's row: one brand's low stock took 30 ms."""
    plan = listing_plan(paint_filter)
    assert largest_sort(plan) == 0 and "Seq Scan" not in plan, plan


@pytest.mark.parametrize("sort", ["price", "-price", "brand", "-brand"])
def test_a_type_by_price_or_brand_reads_its_own_index(big_shop, sort):
    """A type belongs to a few brands: the price and brand indexes met it late (0.1-0.9 s)."""
    plan = listing_plan(PaintFilter(color_type="Base", sort=sort))
    column = sort.removeprefix("-")
    assert f"ix_paints_color_type_{column}_id" in plan and " Sort" not in plan, plan


@pytest.mark.parametrize("sort", ["stock", "-stock"])
def test_in_stock_by_stock_reads_the_index_of_paints_above_their_level(big_shop, sort):
    """It walked the stock index past every paint out of stock or low (0.4 s at 1,000,000)."""
    plan = listing_plan(PaintFilter(stock="in_stock", sort=sort))
    assert "ix_paints_above_level_stock_id" in plan and "Seq Scan" not in plan, plan


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
    """Fewer than 3 characters cannot be found anywhere by trigrams, but at a word's start.

    A broad one ("j": every Jet, 1 in 8) walks the name order's index instead.
    """
    paint_filter = PaintFilter(q=q)
    _, walk = listing.search_walk(paint_filter, paint_filter.conditions("postgresql"))
    plan = listing_plan(paint_filter)
    used = "ix_paints_search" if walk is None else "Index Only Scan using ix_paints_name_id_search"
    assert used in plan and "Seq Scan" not in plan, plan


@pytest.mark.parametrize("sort", ["price", "-price"])
def test_a_big_brand_by_price_reads_its_own_index(big_shop, sort):
    """A brand with more than EXACT_COUNT_LIMIT paints is read in price order from an index."""
    paint_filter = PaintFilter(brand="Brand 7", sort=sort)
    where = paint_filter.conditions("postgresql")
    plan = plan_of(listing.page_statement(paint_filter, where, few_matches=False))
    assert "ix_paints_brand_price_id" in plan and largest_sort(plan) == 0, plan


@pytest.mark.parametrize("sort", ["name", "-price", "created_at"])
def test_a_narrow_search_sorts_its_matches_instead_of_walking_the_sort_index(big_shop, sort):
    plan = listing_plan(PaintFilter(q="crimson deep", sort=sort))
    assert "ix_paints_search" in plan, plan
    assert f"ix_paints_{sort.lstrip('-')}_id" not in plan, plan


# One paint in 8 is a Crimson: 12,500 matches.
BROAD = [PaintFilter(q="crimson", sort=sort) for sort in SORTS] + [
    PaintFilter(q="crimson", sort="-price", page=40),
    PaintFilter(q="crimson", sort="-created_at", page=3),
]


@pytest.mark.parametrize("paint_filter", BROAD, ids=repr)
def test_a_broad_search_walks_the_sort_index_and_stops_at_the_page(big_shop, paint_filter):
    """Sorting 12,500 matches for a page of 20 is what made `q=blue` cost 200 ms at 1M."""
    _, walk = listing.search_walk(paint_filter, paint_filter.conditions("postgresql"))
    assert walk is not None
    plan = listing_plan(paint_filter)
    column = paint_filter.sort.lstrip("-")
    index = "ix_paints_name_id_search" if column == "name" else f"ix_paints_{column}_id"
    assert index in plan and "ix_paints_search" not in plan, plan
    assert "Seq Scan" not in plan and largest_sort(plan) <= paint_filter.per_page + 1, plan
    if column == "name":  # the walk reads the index alone
        assert re.search(f"Index Only Scan (Backward )?using {index}", plan), plan


@pytest.mark.parametrize("paint_filter", BROAD, ids=repr)
def test_a_broad_search_lists_what_sorting_its_matches_lists(big_shop, paint_filter):
    where = paint_filter.conditions("postgresql")
    _, walk = listing.search_walk(paint_filter, where)
    walked = db.session.execute(listing.page_statement(paint_filter, where, False, walk=walk))
    sorted_ = db.session.execute(listing.page_statement(paint_filter, where, True))
    ids = [paint.id for paint in walked.all()]
    assert ids == [paint.id for paint in sorted_.all()]
    assert len(ids) == paint_filter.per_page + 1
    order = paint_filter.order_by()
    expected = select(Paint.id).where(*where).order_by(*order)
    offset = (paint_filter.page - 1) * paint_filter.per_page
    assert ids == list(db.session.scalars(expected.offset(offset).limit(len(ids))))


@pytest.mark.parametrize("sort", ["name", "-price", "created_at"])
def test_a_broad_search_walks_on_from_a_cursor(big_shop, sort):
    first = listing._load_page(PaintFilter(q="crimson", sort=sort))
    paint_filter = PaintFilter(q="crimson", sort=sort, after=first.next_cursor)
    where = paint_filter.conditions("postgresql")
    _, walk = listing.search_walk(paint_filter, where)
    assert walk is not None
    walked = db.session.execute(listing.page_statement(paint_filter, where, False, walk=walk))
    sorted_ = db.session.execute(listing.page_statement(paint_filter, where, True))
    ids = [paint.id for paint in walked.all()]
    assert len(ids) == paint_filter.per_page + 1
    assert ids == [paint.id for paint in sorted_.all()]
    assert not set(ids) & {paint.id for paint in first.items}


def test_a_walk_that_meets_too_few_matches_sorts_them_instead(big_shop, monkeypatch):
    """Matches that come late in the order (Crimson after every Cobalt by name)."""
    paint_filter = PaintFilter(q="crimson", sort="name")
    expected = listing._load_page(paint_filter)
    assert expected.items and expected.has_next
    real = listing.search_walk

    def short_walk(*args):
        estimate, _ = real(*args)
        return estimate, 100  # the first 100 names are all Cobalt

    monkeypatch.setattr(listing, "search_walk", short_walk)
    sorted_ = listing._load_page(paint_filter)
    assert (sorted_.items, sorted_.next_cursor) == (expected.items, expected.next_cursor)
    # Sorting read every match, so it knows how many there are.
    assert sorted_.total == PAINTS // 8 and not sorted_.total_is_estimate


def test_a_broad_search_reports_the_estimate_without_counting(big_shop, monkeypatch):
    """Beyond twice the counting limit the planner's estimate is the total, not a count."""
    paint_filter = PaintFilter(q="a paint")  # every description
    monkeypatch.setattr(listing, "count_matching", None)  # a count would fail
    page = listing._load_page(paint_filter)
    assert page.total_is_estimate and 0.5 * PAINTS <= page.total <= 2 * PAINTS
    assert len(page.items) == page.per_page and page.has_next


@pytest.mark.parametrize(
    "paint_filter",
    [PaintFilter(), PaintFilter(stock="in_stock"), PaintFilter(stock="in_stock", sort="-price")],
    ids=repr,
)
def test_a_filter_expected_to_match_many_is_not_counted(big_shop, paint_filter):
    """Counting the first 10,001 matches cost every page of a broad filter 10-13 ms."""
    sent = []

    def note(conn, cursor, statement, *args):
        sent.append(statement)

    event.listen(db.engine, "before_cursor_execute", note)
    try:
        page = listing._load_page(paint_filter)
    finally:
        event.remove(db.engine, "before_cursor_execute", note)
    assert page.total_is_estimate and len(page.items) == page.per_page
    assert not [sql for sql in sent if "count(" in sql.lower()], sent


@pytest.mark.parametrize(
    "paint_filter",
    [
        PaintFilter(),
        PaintFilter(q="crimson"),
        PaintFilter(q="crimson deep"),
        PaintFilter(q="a paint"),
        PaintFilter(stock="low_stock"),
    ],
    ids=repr,
)
def test_totals_are_exact_or_estimated_within_reason(big_shop, paint_filter):
    """Exact up to the counting limit; beyond it the estimate, or a count a sort made anyway."""
    where = paint_filter.conditions("postgresql")
    page = listing._load_page(paint_filter)
    true_total = db.session.scalar(select(db.func.count()).select_from(Paint).where(*where))
    if page.total_is_estimate:
        assert true_total > listing.EXACT_COUNT_LIMIT
        assert 0.5 * true_total <= page.total <= 2 * true_total
    else:
        assert page.total == true_total


@pytest.mark.parametrize("page", [1, 2, 300])
def test_a_narrow_search_counts_its_matches_as_it_sorts_them(big_shop, page, monkeypatch):
    paint_filter = PaintFilter(q="crimson deep", page=page)
    true_total = db.session.scalar(
        select(db.func.count()).select_from(Paint).where(*paint_filter.conditions("postgresql"))
    )
    counts = []
    real = listing.count_matching
    monkeypatch.setattr(
        listing, "count_matching", lambda *a, **k: counts.append(1) or real(*a, **k)
    )
    listed = listing._load_page(paint_filter)
    assert listed.total == true_total and not listed.total_is_estimate
    # Page 300 is past the last: nothing to count along, so it is counted apart.
    assert len(counts) == (page == 300) and bool(listed.items) == (page != 300)


def test_figures_read_the_running_totals_not_the_paints(big_shop):
    """The figures are sums of the running totals per brand and family (kept by triggers),
    so the one query they send reads those rows alone, however many paints there are.

    And it reads them once, through their index, even when the table's file is mostly
    empty pages, as a bulk load leaves it (1,000,000 paints left 2,000 pages for 144 rows):
    a plan reading the whole file once per part of the figures cost 14 ms with parallel
    workers, where reading it once through the index costs 1 ms.
    """
    for _ in range(300):  # row versions no VACUUM has freed, as during a bulk load
        db.session.execute(text("UPDATE paint_totals SET units = units"))
    db.session.execute(text("ANALYZE paint_totals"))
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
    [statement] = [sql for sql in statements if sql.startswith(("SELECT", "WITH"))]
    plan = plan_of(stats.FIGURES)
    db.session.rollback()
    assert "paint_totals" in statement and not re.search(r"on paints\b", plan), plan
    assert len(re.findall(r"on paint_totals\b", plan)) == 1 and "Gather" not in plan, plan


def test_seed_demo_leaves_the_visibility_map_set(tmp_path_factory):
    """Without VACUUM a deep page's index-only scan reads the table for every entry skipped."""
    with empty_database("postgresql", tmp_path_factory) as url:
        app = make_app(url)
        with app.app_context():
            upgrade()
            demo.seed_demo(3000)
            pages, visible = db.session.execute(
                text("SELECT relpages, relallvisible FROM pg_class WHERE relname = 'paints'")
            ).one()
            db.session.rollback()
            db.engine.dispose()
    assert pages > 0 and visible == pages


HISTORY = """
INSERT INTO history_entries (created_at, kind, changes)
SELECT now() - ((n + CASE WHEN n <= :recent THEN 0 ELSE 100000 END) || ' seconds')::interval,
       CASE WHEN n <= :recent THEN 'stock' ELSE 'import' END, '{}'
FROM generate_series(1, :entries) AS n
"""


@pytest.fixture(scope="module")
def long_history(big_shop):
    """100,000 imported entries, then the 10,000 newest: stock adjustments."""
    with big_shop.app_context():
        db.session.execute(text(HISTORY), {"entries": 110_000, "recent": 10_000})
        db.session.commit()
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE history_entries"))
    return big_shop


@pytest.mark.parametrize("after", [False, True])
def test_one_kind_of_the_history_is_read_from_its_own_index(long_history, after):
    """With the newest entries all stock adjustments, the imports' first page was read by
    stepping backwards over every one of them in the index of all entries by date."""
    history_filter = activity.HistoryFilter(kind="import")
    if after:
        cursor = activity.activity(history_filter).next_cursor
        history_filter = replace(history_filter, after=cursor)
    sent: list[tuple[str, dict]] = []

    def record(conn, cursor, statement, parameters, context, executemany):
        sent.append((statement, parameters))

    event.listen(db.engine, "before_cursor_execute", record)
    try:
        page = activity.activity(history_filter)
    finally:
        event.remove(db.engine, "before_cursor_execute", record)
    assert len(page.items) == 20 and {entry.kind for entry in page.items} == {"import"}
    plan = explained(*sent[-1])
    assert "ix_history_entries_kind_created_at_id" in plan and largest_sort(plan) == 0
