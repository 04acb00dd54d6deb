"""What a write retires: its paint and the listings it can change, not those of other paints."""

import re
import uuid

import pytest
from redis import Redis

from studio.services import cached_reads, listing, vocabularies
from studio.services.cached_reads import BRANDS, EVERY_PAINT, listing_scope, paint_written

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


def test_a_listing_depends_on_the_first_value_it_filters_by():
    assert listing_scope() == EVERY_PAINT
    by_brand = listing_scope(brand="Citadel")
    assert listing_scope(brand="Citadel", color_family="Blue") == by_brand
    assert listing_scope(color_family="Blue") != by_brand
    assert listing_scope(color_type="Blue") != listing_scope(color_family="Blue")


def test_a_write_moves_on_the_scopes_of_the_paint_as_it_was_and_as_it_is():
    before = {"brand": "Citadel", "color_family": "Blue", "color_type": None}
    after = {**before, "brand": "Vallejo"}
    moved = paint_written(1, before, after).generations
    assert moved == {
        EVERY_PAINT,
        BRANDS,
        listing_scope(brand="Citadel"),
        listing_scope(brand="Vallejo"),
        listing_scope(color_family="Blue"),
    }
    assert BRANDS not in paint_written(1, before, before).generations
    assert BRANDS in paint_written(None, None, before).generations


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
