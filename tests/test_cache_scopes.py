"""What a write retires: its paint and the listings it can change, not those of other paints."""

import re
import time
import uuid

import pytest
from redis import Redis
from sqlalchemy import delete

from studio.extensions import db
from studio.models import Paint
from studio.services import cached_reads, listing, vocabularies
from studio.services.cache_scopes import BRANDS, CATALOGUE, listing_scope, paint_written
from studio.services.cached_reads import EVERY_PAINT

from .conftest import make_api
from .test_cache import api_for, committed_paint, counting_statements, redis_settings
from .test_vocabularies import term_id

CITADEL = "/api/v1/paints?brand=Citadel"
VALLEJO = "/api/v1/paints?brand=Vallejo"
VALLEJO_BLUE = "/api/v1/paints?brand=Vallejo&color_family=Blue"
BLUE = "/api/v1/paints?color_family=Blue"
EVERY = "/api/v1/paints?sort=-stock"
SEARCH = "/api/v1/paints?q=citadel"


def paint_queries(statements: list[str]) -> list[str]:
    return [sql for sql in statements if re.search(r"\bFROM paints\b", sql)]


def listed(api, path: str) -> dict[str, dict]:
    """Return the listing's paints by name, and whether answering it queried the paints."""
    with counting_statements() as statements:
        answer = api.get(path)
    assert answer.status_code == 200
    return {item["name"]: item for item in answer.get_json()["items"]}, bool(
        paint_queries(statements)
    )


@pytest.fixture
def shop(make_paint):
    """A Citadel blue paint and two Vallejo paints, one blue, one red."""
    return (
        make_paint(name="Citadel Blue", brand="Citadel", color_family="Blue", stock=5),
        make_paint(name="Vallejo Red", brand="Vallejo", color_family="Red", stock=5),
        make_paint(name="Vallejo Blue", brand="Vallejo", color_family="Blue", stock=5),
    )


def test_a_stock_adjustment_spares_the_listings_of_other_brands(api, shop):
    citadel, _, _ = shop
    paths = (CITADEL, VALLEJO, VALLEJO_BLUE, BLUE, EVERY, SEARCH)
    for path in paths:
        listed(api, path)
    answer = api.post(f"/api/v1/paints/{citadel.id}/stock", json={"delta": 7, "reason": "Count"})
    assert answer.status_code == 201
    for path in (VALLEJO, VALLEJO_BLUE):
        assert listed(api, path)[1] is False, f"{path} was retired by a Citadel paint's write"
    # Those a Citadel blue paint is on show its new stock at once.
    for path in (CITADEL, BLUE, EVERY, SEARCH):
        items, queried = listed(api, path)
        assert queried and items["Citadel Blue"]["stock"] == 12, path


@pytest.mark.parametrize("edit", ["version", "original"])
def test_a_brand_change_retires_the_listings_of_both_brands(api, shop, make_paint, edit):
    citadel, _, _ = shop
    make_paint(name="Army Painter Red", brand="Army Painter", color_family="Red")
    army_painter = "/api/v1/paints?brand=Army%20Painter"
    for path in (CITADEL, VALLEJO, army_painter):
        listed(api, path)
    body = {"version": 1} if edit == "version" else {"original": {"brand": "Citadel"}}
    answer = api.patch(f"/api/v1/paints/{citadel.id}", json={**body, "brand": "Vallejo"})
    assert answer.status_code == 200
    assert "Citadel Blue" not in listed(api, CITADEL)[0]
    assert "Citadel Blue" in listed(api, VALLEJO)[0]
    assert listed(api, army_painter)[1] is False


def test_a_deleted_paint_leaves_the_listings_of_its_brand(api, shop):
    citadel, _, _ = shop
    for path in (CITADEL, VALLEJO):
        listed(api, path)
    assert api.delete(f"/api/v1/paints/{citadel.id}").status_code == 204
    assert listed(api, CITADEL)[0] == {}
    assert listed(api, VALLEJO)[1] is False


def test_a_rename_in_the_lists_retires_every_listing_its_paints_are_on(api, shop):
    paths = (VALLEJO, "/api/v1/paints?color_family=Navy")
    for path in paths:
        listed(api, path)
    renamed, changed = vocabularies.rename_term(term_id("color_family", "Blue"), "Navy")
    assert (renamed, changed) == ("Navy", 2)
    # The Vallejo listing is not filtered by family, but shows the paints' new one.
    assert listed(api, VALLEJO)[0]["Vallejo Blue"]["color_family"] == "Navy"
    assert set(listed(api, paths[1])[0]) == {"Citadel Blue", "Vallejo Blue"}


def test_a_value_added_to_the_lists_retires_no_listing(api, shop):
    listed(api, VALLEJO)
    vocabularies.add_term("color_family", "Dark Green")
    assert listed(api, VALLEJO)[1] is False
    assert "Dark Green" in listing.filter_choices().color_families


def test_the_brands_offered_change_only_when_a_brand_may_appear_or_go(api, shop, make_paint):
    citadel, _, _ = shop
    assert listing.filter_choices().brands == ["Citadel", "Vallejo"]
    api.post(f"/api/v1/paints/{citadel.id}/stock", json={"delta": 1, "reason": "Count"})
    with counting_statements() as statements:
        listing.filter_choices()
    assert paint_queries(statements) == []
    make_paint(name="Scale75 Black", brand="Scale75")
    assert listing.filter_choices().brands == ["Citadel", "Scale75", "Vallejo"]


def test_the_brands_offered_are_read_from_the_running_totals(shop, make_paint):
    """SELECT DISTINCT brand over 1,000,000 paints took 2.5 s on each miss."""
    gone = make_paint(name="Old Ink", brand="Ghost Brand")
    db.session.execute(delete(Paint).where(Paint.id == gone.id))
    db.session.commit()
    with counting_statements() as statements:
        brands = listing.filter_choices().brands
    assert brands == ["Citadel", "Vallejo"]  # the brand whose paints are gone is not offered
    assert paint_queries(statements) == [] and any("paint_totals" in s for s in statements)


def test_a_stock_adjustment_retires_the_stock_listings_of_the_states_it_was_and_is_in(api, shop):
    citadel, _, _ = shop  # 5 in stock, at its reorder level 5: low
    low, out = (f"{CITADEL}&stock={state}" for state in ("low_stock", "out_of_stock"))
    listed(api, low), listed(api, out)
    api.post(f"/api/v1/paints/{citadel.id}/stock", json={"delta": 1, "reason": "Count"})
    assert listed(api, out)[1] is False
    assert listed(api, low)[0] == {}
    listed(api, f"{CITADEL}&stock=in_stock")
    api.post(f"/api/v1/paints/{citadel.id}/stock", json={"delta": 1, "reason": "Count"})
    assert listed(api, low)[1] is False and listed(api, out)[1] is False
    assert listed(api, f"{CITADEL}&stock=in_stock")[0]["Citadel Blue"]["stock"] == 7


def test_a_listing_is_in_the_scope_of_exactly_its_filters():
    assert listing_scope() == EVERY_PAINT
    scopes = {
        listing_scope(brand="Citadel"),
        listing_scope(brand="Citadel", color_family="Blue"),
        listing_scope(brand="Citadel", stock="low_stock"),
        listing_scope(color_family="Blue"),
        listing_scope(color_type="Blue"),
    }
    assert len(scopes) == 5
    assert listing_scope(brand="Citadel", color_family=None) == listing_scope(brand="Citadel")


def test_a_write_moves_on_every_combination_of_the_values_it_had_and_has():
    before = {"brand": "Citadel", "color_family": "Blue", "color_type": None}
    before.update(stock=5, reorder_level=2)
    after = {**before, "brand": "Vallejo"}
    moved = paint_written(1, before, after).generations
    for brand in ("Citadel", "Vallejo"):
        assert listing_scope(brand=brand, color_family="Blue", stock="in_stock") in moved
    assert listing_scope(brand="Citadel", stock="low_stock") not in moved
    assert {EVERY_PAINT, BRANDS, CATALOGUE} <= moved
    # 3 brand choices (none, either) x 2 families x 2 stock states (none, in stock).
    assert len(moved) == 3 * 2 * 2 + 2
    sold = paint_written(1, before, {**before, "stock": 0}).generations
    assert listing_scope(stock="out_of_stock") in sold
    assert listing_scope(stock="low_stock") not in sold
    assert BRANDS not in sold and CATALOGUE not in sold
    assert CATALOGUE not in paint_written(1, before, {**before, "reorder_level": 9}).generations
    assert CATALOGUE in paint_written(1, before, {**before, "price": 1}).generations
    assert {BRANDS, CATALOGUE} <= paint_written(None, None, before).generations
    assert CATALOGUE in paint_written(1, before, None).generations


def search_statements(statements: list[str]) -> list[str]:
    return [sql for sql in statements if "search_text" in sql and "LIKE" in sql]


def test_a_stock_adjustment_keeps_the_paints_a_search_found_and_shows_their_new_stock(api, shop):
    """At 1,000,000 paints finding a broad search's page costs tens of milliseconds; every
    adjustment used to retire every search and have it found again."""
    citadel, _, _ = shop
    assert set(listed(api, SEARCH)[0]) == {"Citadel Blue"}
    answer = api.post(f"/api/v1/paints/{citadel.id}/stock", json={"delta": 7, "reason": "Count"})
    assert answer.status_code == 201
    with counting_statements() as statements:
        items = api.get(SEARCH).get_json()["items"]
    assert [(item["name"], item["stock"]) for item in items] == [("Citadel Blue", 12)]
    assert search_statements(statements) == []


def test_a_searchs_ids_live_as_long_as_a_paint_not_a_listing(app, api, shop, monkeypatch):
    """Only the writes that retire them change them: found again every minute, a broad
    search cost the mix a few hundred milliseconds each time."""
    citadel, _, _ = shop
    monkeypatch.setitem(app.config, "LIST_CACHE_TTL", 1)
    monkeypatch.setitem(app.config, "PAINT_CACHE_TTL", 300)
    listed(api, SEARCH)
    api.post(f"/api/v1/paints/{citadel.id}/stock", json={"delta": 1, "reason": "Count"})
    time.sleep(1.2)  # the page and a listing's entries are gone by now
    with counting_statements() as statements:
        assert api.get(SEARCH).get_json()["items"][0]["stock"] == 6
    assert search_statements(statements) == []


@pytest.mark.parametrize(
    "change",
    [{"name": "Citadel Navy"}, {"price": "9.99"}, {"description": "a new pot"}],
)
def test_any_other_change_of_a_paint_retires_the_searches(api, shop, change):
    citadel, _, _ = shop
    sorted_search = f"{SEARCH}&sort=price"
    listed(api, SEARCH), listed(api, sorted_search)
    answer = api.patch(f"/api/v1/paints/{citadel.id}", json={"version": 1, **change})
    assert answer.status_code == 200
    for path in (SEARCH, sorted_search):
        with counting_statements() as statements:
            items = api.get(path).get_json()["items"]
        assert search_statements(statements), path
        assert items[0]["id"] == citadel.id and items[0]["version"] == 2


@pytest.mark.parametrize("path", [f"{SEARCH}&sort=-stock", f"{SEARCH}&stock=in_stock"])
def test_a_search_by_stock_is_found_again_after_a_stock_adjustment(api, shop, path):
    citadel, _, _ = shop
    listed(api, path)
    api.post(f"/api/v1/paints/{citadel.id}/stock", json={"delta": 7, "reason": "Count"})
    with counting_statements() as statements:
        api.get(path)
    assert search_statements(statements)


def test_a_search_whose_paint_was_deleted_meanwhile_is_found_again(api, shop):
    citadel, _, vallejo_blue = shop
    listed(api, "/api/v1/paints?q=blue")
    # The page is retired, its ids kept.
    api.post(f"/api/v1/paints/{vallejo_blue.id}/stock", json={"delta": 1, "reason": "Count"})
    # Deleted behind the cache's back: as if by a write that committed after this read
    # took the page's ids from the cache.
    db.session.execute(delete(Paint).where(Paint.id == citadel.id))
    db.session.flush()
    assert set(listed(api, "/api/v1/paints?q=blue")[0]) == {"Vallejo Blue"}


@pytest.fixture
def workers(committed_app, redis_url, extra_apps):
    """Two workers sharing the database and Redis (with their near caches)."""
    prefix = f"scopes-test-{uuid.uuid4().hex[:8]}:"
    yield [extra_apps(**redis_settings(redis_url, prefix)) for _ in range(2)]
    redis = Redis.from_url(redis_url)
    keys = list(redis.scan_iter(prefix + "*"))
    if keys:
        redis.delete(*keys)


def test_over_redis_a_write_on_one_worker_spares_other_brands_on_the_other(committed_app, workers):
    token = make_api(committed_app).token
    first, second = (api_for(worker, token) for worker in workers)
    citadel = committed_paint(name="Citadel Blue", brand="Citadel", color_family="Blue", stock=1)
    committed_paint(name="Vallejo Red", brand="Vallejo", color_family="Red", stock=1)
    for path in (CITADEL, VALLEJO, EVERY):
        assert second("get", path).status_code == 200
        assert workers[1].extensions[cached_reads.FILLS_KEY].settled()
    first("post", f"/api/v1/paints/{citadel}/stock", json={"delta": 4, "reason": "Delivery"})
    with workers[1].app_context(), counting_statements() as statements:
        assert second("get", VALLEJO).get_json()["items"][0]["name"] == "Vallejo Red"
    assert paint_queries(statements) == []
    for path in (CITADEL, EVERY):
        stocks = {item["name"]: item["stock"] for item in second("get", path).get_json()["items"]}
        assert stocks["Citadel Blue"] == 5


def test_a_generation_redis_lost_never_comes_back_to_a_number_it_had(
    committed_app, workers, redis_url
):
    token = make_api(committed_app).token
    first, second = (api_for(worker, token) for worker in workers)
    citadel = committed_paint(name="Citadel Blue", brand="Citadel", stock=1)
    assert second("get", CITADEL).status_code == 200
    with workers[1].app_context():
        stored = cached_reads.stored_key(listing_scope(brand="Citadel"))
        prefix = cached_reads.backend().prefix
    redis = Redis.from_url(redis_url)
    had = int(redis.get(prefix + stored))
    redis.delete(prefix + stored)
    first("post", f"/api/v1/paints/{citadel}/stock", json={"delta": 1, "reason": "Count"})
    assert int(redis.get(prefix + stored)) > had
    assert 0 < redis.ttl(prefix + stored) <= cached_reads.GENERATION_SECONDS
    assert second("get", CITADEL).get_json()["items"][0]["stock"] == 2
