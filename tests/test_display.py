"""What the admin's pages tell people and assistive technology: errors, figures, money, charts."""

import re
from decimal import Decimal

import pytest

from studio.admin.charts import bar_chart
from studio.admin.formatting import compact
from studio.services.stats import Breakdown

from .conftest import token_from

NEW_PAINT = {"name": "Wash", "brand": "Citadel", "stock": "2", "price": "4.50"}


def attributes(page: str, name: str) -> dict[str, str]:
    """Return the attributes of the form control called `name` on the page."""
    tag = re.search(rf'<(?:input|textarea|select)\b[^>]*\bname="{name}"[^>]*>', page).group(0)
    return dict(re.findall(r'([\w-]+)="([^"]*)"', tag))


def ids(page: str) -> set[str]:
    return set(re.findall(r'\bid="([^"]+)"', page))


@pytest.mark.parametrize(
    "path",
    ["/admin/paints/new", "/admin/paints/{id}/edit", "/admin/paints/{id}", "/admin/paints/import"],
)
def test_clean_forms_announce_no_field_as_invalid(admin, make_paint, path):
    paint = make_paint()
    page = admin.get(path.format(id=paint.id)).get_data(as_text=True)
    assert "aria-invalid" not in page
    assert '="None"' not in page
    assert 'id="error-summary"' not in page
    for described in re.findall(r'aria-describedby="([^"]+)"', page):
        assert set(described.split()) <= ids(page)


def test_the_sign_in_page_announces_no_field_as_invalid(client):
    page = client.get("/login").get_data(as_text=True)
    assert "aria-invalid" not in page and '="None"' not in page


def test_a_refused_form_marks_its_wrong_fields_and_sums_them_up_first(admin):
    response = admin.post("/admin/paints/new", {**NEW_PAINT, "name": "", "stock": "lots"})
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    for wrong in ("name", "stock"):
        control = attributes(page, wrong)
        assert control["aria-invalid"] == "true"
        described = control["aria-describedby"].split()
        assert described and set(described) <= ids(page)
        assert re.search(rf'id="{described[0]}">[^<]*{wrong.title()}', page)
        assert f'href="#{wrong}"' in page  # the summary links to the field
    for right in ("brand", "price"):
        assert "aria-invalid" not in attributes(page, right)
    summary = re.search(r'<div class="error-summary[^"]*"[^>]*>', page).group(0)
    assert "autofocus" in summary and 'tabindex="-1"' in summary
    assert page.index("error-summary") < page.index('name="name"')


def test_a_refused_stock_change_stays_at_the_paints_address(admin, make_paint):
    paint = make_paint(stock=4)
    path = f"/admin/paints/{paint.id}"
    response = admin.post(path, {"delta": "x", "reason": "Sold"})
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert f'action="{path}"' in page  # the form posts to the page's own address
    assert attributes(page, "delta")["aria-invalid"] == "true"
    assert attributes(page, "delta")["value"] == "x" and 'href="#delta"' in page
    # Reloading the address the browser shows is a GET of the same page, not a 405.
    assert admin.get(path).status_code == 200


def test_the_paints_heading_names_its_brand(admin, make_paint):
    paint = make_paint(name="Abaddon Black", brand="Vallejo")
    page = admin.get(f"/admin/paints/{paint.id}").get_data(as_text=True)
    heading = re.search(r"<h1\b.*?</h1>", page, re.S).group(0)
    assert "Abaddon Black" in heading and "Vallejo" in heading
    assert "<title>Abaddon Black (Vallejo)" in page


def test_prices_and_the_value_carry_the_currency(app, admin, api, make_paint, monkeypatch):
    monkeypatch.setitem(app.config, "CURRENCY", "USD")
    paint = make_paint(price="1234.50", stock=2)
    assert "$1,234.50" in admin.get(f"/admin/paints/{paint.id}").get_data(as_text=True)
    assert "$1,234.50" in admin.get("/admin/paints").get_data(as_text=True)
    dashboard = admin.get("/admin/").get_data(as_text=True)
    assert re.search(r'data-stat="value" data-value="2469.00">\$2,469.00<', dashboard)
    body = api.get("/api/v1/stats").get_json()
    assert body["value"] == "2469.00" and body["currency"] == "USD"


def test_a_currency_without_a_symbol_is_written_out(app, admin, make_paint, monkeypatch):
    monkeypatch.setitem(app.config, "CURRENCY", "CHF")
    paint = make_paint(price="4.50")
    assert "CHF\u00a04.50" in admin.get(f"/admin/paints/{paint.id}").get_data(as_text=True)


def test_huge_figures_are_shortened_with_the_exact_value_kept(admin, make_paint):
    make_paint(stock=1_000_000_000, price="2.00")
    page = admin.get("/admin/").get_data(as_text=True)
    units = re.search(r'data-stat="units" data-value="1000000000">(.*?)</div>', page, re.S)
    assert 'title="1,000,000,000"' in units.group(1)
    assert '<span aria-hidden="true">1\u00a0B</span>' in units.group(1)
    assert '<span class="visually-hidden">1,000,000,000</span>' in units.group(1)
    assert "€2\u00a0B" in page and "€2,000,000,000.00" in page


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (0, "0"),
        (9_999, "9,999"),
        (12_500, "12.5\u00a0k"),
        (125_000, "125\u00a0k"),
        (999_950, "1\u00a0M"),
        (1_234_567, "1.2\u00a0M"),
        (1_000_000_000, "1\u00a0B"),
        (-25_000, "-25\u00a0k"),
        (Decimal("12345.67"), "12.3\u00a0k"),
        (Decimal("200000000000000000.00"), "200,000\u00a0T"),
    ],
)
def test_numbers_are_shortened_for_a_glance(value, shown):
    assert compact(value) == shown


def test_a_chart_says_when_it_shows_only_the_largest():
    rows = [Breakdown(f"Brand {n:02d}", 1, 100 - n) for n in range(40)]
    chart = bar_chart("Units per brand", rows, noun="brands")
    assert len(chart.bars) == 12
    held = sum(100 - n for n in range(12, 40))
    assert chart.note == f"Top 12 of 40 brands; the other 28 hold {held:,} units."
    assert bar_chart("Units per brand", rows[:12], noun="brands").note == ""


def test_a_chart_cuts_an_outlier_short_so_the_others_stay_visible():
    rows = [Breakdown("Huge", 1, 1_000_000_000), Breakdown("Small", 1, 40), Breakdown("Tiny", 1, 4)]
    chart = bar_chart("Units per brand", rows, noun="brands")
    huge, small, tiny = chart.bars
    assert huge.broken and not small.broken
    assert huge.width == small.width * 1.25 and tiny.width == small.width / 10
    assert (huge.shown, huge.full) == ("1\u00a0B", "1,000,000,000")
    assert "cut short" in chart.note


def test_the_dashboard_states_its_top_brands(admin, make_paint):
    for number in range(14):
        make_paint(brand=f"Brand {number:02d}", stock=number + 1)
    page = admin.get("/admin/").get_data(as_text=True)
    assert "Top 12 of 14 brands; the other 2 hold 3 units." in page
    make_paint(brand="Brand 14", stock=1)  # one more brand, not one more drawn
    page = admin.get("/admin/").get_data(as_text=True)
    assert "Top 12 of 15 brands; the other 3 hold 4 units." in page


def test_too_many_sign_ins_lead_back_to_signing_in(client, app):
    for _ in range(6):
        page = client.get("/login").get_data(as_text=True)
        data = {"username": "nobody", "password": "wrong password", "csrf_token": token_from(page)}
        response = client.post("/login", data=data)
    assert response.status_code == 429
    page = response.get_data(as_text=True)
    assert 'href="/login"' in page and "Back to sign in" in page
    assert "dashboard" not in page.lower()


def test_an_error_page_offers_the_dashboard_to_a_signed_in_admin(admin):
    page = admin.get("/admin/no-such-page").get_data(as_text=True)
    assert "Back to the dashboard" in page
