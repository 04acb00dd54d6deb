"""Pages that hold extreme values and long unbroken text, on a desktop and a phone screen."""

import re
from collections.abc import Callable

import pytest
from playwright.sync_api import Page, expect

from .test_accessibility import SCREENS
from .test_browser import SignIn, Snap, assert_fits_width, flash, go, heading, rows

LONG_NAME = "Nightlordsmidnightbluewithaveryslighttealundertone" * 4  # 200 letters, no space
LONG_BRAND = "Kolorwerkstattundpigmentmanufaktur" * 3  # 102 letters: cut to the limit below
HUGE_STOCK = 1_000_000_000
REASON = "Delivery note 4711 from the wholesaler, counted twice at the back door"


def add_extreme_paint(page: Page, screen: str) -> str:
    """Add a paint with the largest stock and the longest unbroken texts; return its brand."""
    brand = LONG_BRAND[:99] + screen[0]  # the brand's 100 letters, one list per screen
    go(page, "New paint")
    values = {
        "Name": LONG_NAME,
        "Brand": brand,
        "Colour code": "KW-" + "0123456789" * 4 + "-LONGCODE",  # 52 > 50: trimmed below
        "Stock": str(HUGE_STOCK),
        "Price": "99999.99",
        "Description": "Layer" * 600 + "\n" + "a " * 200,
    }
    values["Colour code"] = values["Colour code"][:50]
    for label, value in values.items():
        page.get_by_label(label, exact=True).fill(value)
    page.get_by_role("button", name="Add paint").click()
    expect(flash(page)).to_contain_text("Added")
    return brand


def assert_nothing_clipped(page: Page, selector: str) -> None:
    """Check each element shows all of its content (nothing cut off at its edge)."""
    clipped = page.locator(selector).evaluate_all(
        "nodes => nodes.filter(n => n.scrollWidth > n.clientWidth + 1).map(n => n.outerHTML)"
    )
    assert clipped == [], clipped


def check_dashboard(page: Page, snap: Snap, step: str) -> None:
    go(page, "Dashboard")
    assert_fits_width(page)
    assert_nothing_clipped(page, ".stat")
    units = page.locator('[data-stat="units"]')
    expect(units).to_contain_text(re.compile("^\\d\u00a0B"))  # a billion and more, shortened
    expect(units.locator("[title]")).to_have_attribute(
        "title", re.compile(r"^\d,\d{3},\d{3},\d{3}$")
    )
    # The other brands' bars stay visible beside the billion: the longest is cut short.
    brands = page.get_by_role("figure", name="Units per brand")
    expect(brands).to_contain_text("cut short")
    widths = brands.locator("svg:visible rect").evaluate_all(
        "nodes => nodes.map(n => n.getBBox().width)"
    )
    assert sorted(widths)[-2] > 20, widths
    snap(page, f"{step}-dashboard")


def check_history_on_a_phone(page: Page) -> None:
    """Every line of a movement is on screen: nothing is hidden off to the right."""
    page.get_by_label("Change by").fill("-1")
    page.get_by_label("Reason").fill(REASON)
    page.get_by_role("button", name="Apply").click()
    expect(flash(page)).to_contain_text("Stock -1")
    latest = page.locator("table.history tbody tr").first
    for label, text in (("Reason", REASON), ("By", "admin"), ("Changes", "999,999,999")):
        cell = latest.locator(f'td[data-label="{label}"]')
        expect(cell).to_contain_text(text)
        box = cell.bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= page.viewport_size["width"], label


def check_list_on_a_phone(page: Page) -> None:
    """Codes stay whole on one line, and the pager's links stay on one line."""
    heights = page.locator(".cell-sub .code").evaluate_all(
        "nodes => nodes.map(n => n.getBoundingClientRect().height)"
    )
    assert heights and max(heights) < 24, heights
    previous, following = page.locator(".pager .pager-link").all()
    top, other = previous.bounding_box(), following.bounding_box()
    assert top["y"] == other["y"] and max(top["height"], other["height"]) < 40


@pytest.mark.parametrize("screen", SCREENS)
def test_extreme_values_and_long_text_fit_the_screen(
    open_page: Callable[..., Page], sign_in: SignIn, snap: Snap, screen: str
) -> None:
    page = open_page(**SCREENS[screen])
    page.goto("/")
    sign_in(page)
    brand = add_extreme_paint(page, screen)
    step = f"layout-{screen}"
    detail = page.url
    check_dashboard(page, snap, step)
    page.goto(detail)
    expect(heading(page)).to_contain_text(brand)
    assert_fits_width(page)
    assert_nothing_clipped(page, ".details dd")
    snap(page, f"{step}-01-detail")
    if screen == "phone":
        check_history_on_a_phone(page)
        assert_fits_width(page)
        snap(page, f"{step}-02-history")
    page.get_by_role("link", name="Edit", exact=True).click()
    assert_fits_width(page)
    snap(page, f"{step}-03-edit")

    page.goto("/admin/paints?sort=-stock")
    expect(rows(page).first).to_contain_text(LONG_NAME[:40])
    assert_fits_width(page)
    # Price and stock stay on screen beside the long name.
    for cell in (rows(page).first.locator("td.num").first, rows(page).first.locator("td.num").last):
        box = cell.bounding_box()
        assert box["x"] + box["width"] <= page.viewport_size["width"]
    if screen == "phone":
        check_list_on_a_phone(page)
    snap(page, f"{step}-04-list")
    page.get_by_label("Brand", exact=True).select_option(brand)
    page.get_by_role("button", name="Apply").click()
    expect(rows(page)).to_have_count(1)
    assert_fits_width(page)

    page.goto("/admin/paints?sort=-stock")
    rows(page).first.get_by_role("link").click()
    page.get_by_role("link", name="Delete…").click()
    assert_fits_width(page)
    snap(page, f"{step}-05-delete")
    page.get_by_role("button", name="Delete paint").click()
    expect(flash(page)).to_contain_text("Deleted")
