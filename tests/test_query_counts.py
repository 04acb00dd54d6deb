"""Pages cost a fixed number of SQL statements, however many paints and movements there are."""

import pytest

from studio.extensions import cache

from .test_cache import counting_statements


def fill(make_paint, count):
    first = None
    for number in range(count):
        paint = make_paint(
            stock=number % 9,
            color_family=("Red", "Blue", "Green", "Grey")[number % 4],
            brand=f"B{number % 5}",
        )
        first = first or paint
    return first


def cold_statements(client, path) -> int:
    """Statements of one request with nothing cached (the session user included)."""
    cache.clear()
    with counting_statements() as statements:
        assert client.get(path).status_code == 200
    return len(statements)


@pytest.mark.parametrize(
    "path",
    ["/admin/paints", "/admin/paints?q=paint&sort=-price", "/admin/", "/admin/paints/{id}"],
)
def test_admin_pages_cost_the_same_with_3_or_40_paints(admin, make_paint, path):
    paint = fill(make_paint, 3)
    few = cold_statements(admin.client, path.format(id=paint.id))
    fill(make_paint, 37)
    for _ in range(15):
        admin.post(
            f"/admin/paints/{paint.id}",
            {"delta": "1", "reason": "More history"},
            form_page=f"/admin/paints/{paint.id}",
        )
    many = cold_statements(admin.client, path.format(id=paint.id))
    assert few == many


@pytest.mark.parametrize(
    "path", ["/api/v1/paints?per_page=100", "/api/v1/paints/{id}/movements", "/api/v1/stats"]
)
def test_api_reads_cost_the_same_with_3_or_40_paints(api, make_paint, path):
    paint = fill(make_paint, 3)
    few = cold_statements(api, path.format(id=paint.id))
    fill(make_paint, 37)
    for _ in range(15):
        api.post(f"/api/v1/paints/{paint.id}/stock", json={"delta": 1, "reason": "More"})
    many = cold_statements(api, path.format(id=paint.id))
    assert few == many
