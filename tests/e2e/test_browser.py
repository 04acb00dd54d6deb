"""The admin in Chromium: a shop's day from sign-in to sign-out, on SQLite and PostgreSQL."""

import csv
import io
import re
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from playwright.sync_api import FilePayload, Locator, Page, expect

from .conftest import BrowserProblems

PAINT = {
    "Name": "Verdigris Patina",
    "Brand": "Kimera Kolors",
    "Colour code": "KK-014",
    "Stock": "3",
    "Price": "5.20",
    "Description": "A weathered copper green for bronze statues.",
}
# Picked from the admins' lists (Types & families).
PAINT_CHOICES = {"Type": "Layer", "Colour family": "Green"}
SWATCH = "#2E8B57"
CLEAN_IMPORT = """\
name,brand,color_code,stock,price
Glaze One,Kimera Kolors,KK-101,4,2.50
Glaze Two,Kimera Kolors,KK-102,3,2.50
"""
# Line 3 (the header is line 1) asks for a negative stock.
BAD_IMPORT = CLEAN_IMPORT.replace("KK-102,3,", "KK-102,-3,")
SCRIPT_NAME = "<script>alert(1)</script>"
IMG_BRAND = '<img src=x onerror="alert(2)">'
Snap = Callable[[Page, str], None]
SignIn = Callable[[Page], None]
PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True}


def nav_link(page: Page, label: str) -> Locator:
    return page.get_by_role("navigation", name="Main").get_by_role("link", name=label, exact=True)


def go(page: Page, label: str) -> None:
    """Follow a link of the main navigation and check it is marked as the current page."""
    nav_link(page, label).click()
    expect(nav_link(page, label)).to_have_attribute("aria-current", "page")


def heading(page: Page) -> Locator:
    return page.get_by_role("heading", level=1)


def flash(page: Page) -> Locator:
    return page.locator(".flash")


def rows(page: Page) -> Locator:
    return page.locator("table.paints tbody tr")


def figures(page: Page) -> dict[str, Decimal]:
    """Return the dashboard's figures by their data-stat name, exact (the cards may shorten)."""
    pairs = page.locator("[data-stat]").evaluate_all(
        "nodes => nodes.map(node => [node.dataset.stat, node.dataset.value])"
    )
    return {name: Decimal(value) for name, value in pairs}


def changed(before: dict[str, Decimal], after: dict[str, Decimal]) -> dict[str, Decimal]:
    return {name: after[name] - before[name] for name in after if after[name] != before[name]}


def search(page: Page, text: str) -> None:
    """Search from the paints page and wait for the answer to load.

    Until the new page is in, the old one (or none at all) is what a locator counts.
    """
    page.get_by_role("searchbox", name="Search").fill(text)
    page.get_by_role("button", name="Apply").click()
    page.wait_for_url(lambda url: parse_qs(urlsplit(url).query).get("q") == [text])


def csv_file(name: str, text: str) -> FilePayload:
    return {"name": name, "mimeType": "text/csv", "buffer": text.encode()}


def check_import(page: Page, name: str, text: str) -> int:
    """Upload a CSV file on the import page; return the status of the answer."""
    page.get_by_label("CSV file").set_input_files(csv_file(name, text))
    with page.expect_response(lambda response: response.request.method == "POST") as answer:
        page.get_by_role("button", name="Check file").click()
    return answer.value.status


def assert_fits_width(page: Page) -> None:
    """Check the page fits the screen without scrolling sideways."""
    # Measure the page as shown: an element can be visible before the stylesheet has arrived, and
    # unstyled the desktop chart is wider than a phone (a loaded machine made that race real).
    page.wait_for_load_state("load")
    # A phone zooms out to show a page that is too wide, so compare with the screen, not the window.
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= page.viewport_size["width"], f"{page.url} is {width}px wide"


def add_the_paint(page: Page, snap: Snap) -> None:
    go(page, "New paint")
    for label, value in PAINT.items():
        page.get_by_label(label, exact=True).fill(value)
    for label, value in PAINT_CHOICES.items():
        page.get_by_label(label, exact=True).select_option(value)
    page.get_by_label("Pick the swatch colour").fill(SWATCH.lower())
    # static/admin.js copies the picker's colour into the text box.
    expect(page.get_by_label("Swatch colour", exact=True)).to_have_value(SWATCH)
    snap(page, "flow-03-new-paint")
    page.get_by_role("button", name="Add paint").click()
    expect(flash(page)).to_have_text("Added Verdigris Patina (Kimera Kolors).")
    expect(heading(page)).to_have_text("Verdigris Patina Kimera Kolors")
    expect(heading(page).get_by_role("img", name=f"colour {SWATCH}")).to_be_visible()
    snap(page, "flow-04-added")


def find_the_paint(page: Page, snap: Snap) -> None:
    """Find the paint by a search, then by filters, and open it."""
    go(page, "Paints")
    search(page, "verdigris")
    expect(rows(page)).to_have_count(1)
    expect(rows(page)).to_contain_text("Verdigris Patina")
    snap(page, "flow-06-search")
    page.get_by_role("link", name="Reset").click()
    expect(rows(page)).to_have_count(20)
    page.get_by_label("Brand", exact=True).select_option("Kimera Kolors")
    page.get_by_label("Stock", exact=True).select_option("Low stock")
    page.get_by_role("button", name="Apply").click()
    expect(rows(page)).to_have_count(1)
    expect(rows(page)).to_contain_text("Verdigris Patina")
    snap(page, "flow-07-filter")
    page.get_by_role("link", name="Verdigris Patina").click()


def adjust_its_stock(page: Page, snap: Snap) -> None:
    page.get_by_label("Change by").fill("9")
    page.get_by_label("Reason").fill("Delivery from Kimera")
    page.get_by_role("button", name="Apply").click()
    expect(flash(page)).to_have_text("Stock +9: now 12.")
    expect(page.locator("[data-stock]")).to_have_attribute("data-stock", "12")
    expect(page.locator("table.history tbody tr").first).to_contain_text("Delivery from Kimera")
    snap(page, "flow-08-stock-adjusted")


def export_the_brand(page: Page, snap: Snap) -> None:
    go(page, "Paints")
    page.get_by_label("Brand", exact=True).select_option("Kimera Kolors")
    page.get_by_role("button", name="Apply").click()
    snap(page, "flow-10-brand")
    with page.expect_download() as download:
        page.get_by_role("link", name="Export CSV").click()
    assert re.fullmatch(r"paints-\d{8}-\d{4}\.csv", download.value.suggested_filename)
    text = Path(download.value.path()).read_text("utf-8-sig")
    exported = list(csv.DictReader(io.StringIO(text)))
    assert [(row["name"], row["brand"]) for row in exported] == [
        ("Verdigris Patina", "Kimera Kolors")
    ]
    assert exported[0]["stock"] == "12" and exported[0]["color_preview"] == SWATCH


def import_a_bad_then_a_clean_file(page: Page, snap: Snap) -> None:
    go(page, "Import")
    snap(page, "flow-11-import")
    assert check_import(page, "bad.csv", BAD_IMPORT) == 422
    refused = page.get_by_role("region", name="1 problem found: nothing was imported")
    expect(refused.locator("tbody tr")).to_have_count(1)
    expect(refused.locator("tbody td").first).to_have_text("3")
    expect(refused.locator("tbody td").last).to_contain_text("stock")
    expect(page.get_by_role("button", name=re.compile("^Import"))).to_have_count(0)
    snap(page, "flow-12-import-refused")
    go(page, "Paints")
    search(page, "glaze")
    expect(page.get_by_text("No paints match these filters.")).to_be_visible()
    snap(page, "flow-13-nothing-imported")

    go(page, "Import")
    assert check_import(page, "clean.csv", CLEAN_IMPORT) == 200
    expect(page.get_by_role("region", name="Ready to import 2 paints")).to_be_visible()
    snap(page, "flow-14-import-preview")
    page.get_by_role("button", name="Import 2 paints").click()
    expect(flash(page)).to_have_text("Imported 2 paints.")
    expect(rows(page).filter(has_text="Glaze")).to_have_count(2)
    snap(page, "flow-15-imported")


def edit_on_a_stale_copy(page: Page, other: Page, sign_in: SignIn, snap: Snap) -> None:
    """Edit the paint while another admin, in another browser, saves it first."""
    search(page, "verdigris")
    page.get_by_role("link", name="Verdigris Patina").click()
    page.get_by_role("link", name="Edit", exact=True).click()
    expect(heading(page)).to_have_text("Edit Verdigris Patina")
    snap(page, "flow-16-edit")
    other.goto("/")
    sign_in(other)
    other.goto(page.url)
    other.get_by_label("Price").fill("6.10")
    other.get_by_role("button", name="Save changes").click()
    expect(flash(other)).to_have_text("Saved Verdigris Patina.")
    snap(other, "flow-17-saved-by-another-admin")

    page.get_by_label("Description").fill("Edited on a stale copy.")
    page.get_by_role("button", name="Save changes").click()
    # The other admin changed another field: both edits stay (conflicts: test_typed_input.py).
    expect(flash(page)).to_have_text("Saved Verdigris Patina.")
    expect(page.locator(".details").get_by_text("Edited on a stale copy.")).to_be_visible()
    # The history names the field this admin changed, not the other one's.
    latest = page.locator("table.history tbody tr").first
    expect(latest).to_contain_text(re.compile(r"Description .* → Edited on a stale copy\."))
    expect(latest).not_to_contain_text("Price")
    expect(page.locator("[data-price]")).to_have_attribute("data-price", "6.10")
    snap(page, "flow-18-edits-merged")


def delete_the_paint(page: Page, snap: Snap) -> None:
    page.get_by_role("link", name="Delete…").click()
    expect(heading(page)).to_have_text("Delete Verdigris Patina?")
    snap(page, "flow-20-delete")
    page.get_by_role("button", name="Delete paint").click()
    expect(flash(page)).to_have_text("Deleted Verdigris Patina.")
    snap(page, "flow-21-deleted")
    search(page, "verdigris")
    expect(page.get_by_text("No paints match these filters.")).to_be_visible()


def test_a_paint_from_creation_to_deletion(
    page: Page, open_page: Callable[..., Page], sign_in: SignIn, snap: Snap
) -> None:
    page.goto("/")
    expect(heading(page)).to_have_text("Sign in to studio")
    snap(page, "flow-01-login")
    sign_in(page)
    expect(heading(page)).to_have_text("Dashboard")
    before = figures(page)
    snap(page, "flow-02-dashboard")

    add_the_paint(page, snap)
    go(page, "Dashboard")
    expect(page.get_by_role("link", name="Verdigris Patina")).to_be_visible()
    added = {"paints": 1, "units": 3, "value": Decimal("15.60"), "low_stock": 1}
    assert changed(before, figures(page)) == added
    snap(page, "flow-05-dashboard-running-low")

    find_the_paint(page, snap)
    adjust_its_stock(page, snap)
    go(page, "Dashboard")
    adjusted = {"paints": 1, "units": 12, "value": Decimal("62.40"), "in_stock": 1}
    assert changed(before, figures(page)) == adjusted
    snap(page, "flow-09-dashboard-restocked")

    export_the_brand(page, snap)
    import_a_bad_then_a_clean_file(page, snap)
    edit_on_a_stale_copy(page, open_page(), sign_in, snap)
    delete_the_paint(page, snap)

    page.get_by_role("button", name="Sign out").click()
    expect(flash(page)).to_have_text("You are signed out.")
    expect(heading(page)).to_have_text("Sign in to studio")
    snap(page, "flow-22-signed-out")
    page.goto("/admin/paints")
    expect(heading(page)).to_have_text("Sign in to studio")
    snap(page, "flow-23-sign-in-required")


def test_markup_in_a_paint_shows_as_text(
    page: Page, sign_in: SignIn, snap: Snap, browser_problems: BrowserProblems
) -> None:
    page.goto("/")
    sign_in(page)
    go(page, "New paint")
    page.get_by_label("Name", exact=True).fill(SCRIPT_NAME)
    page.get_by_label("Brand", exact=True).fill(IMG_BRAND)
    page.get_by_label("Stock", exact=True).fill("1")
    page.get_by_label("Price").fill("1.00")
    page.get_by_label("Description").fill("<b>not bold</b>")
    page.get_by_role("button", name="Add paint").click()
    expect(heading(page)).to_have_text(f"{SCRIPT_NAME} {IMG_BRAND}")
    expect(page).to_have_title(f"{SCRIPT_NAME} ({IMG_BRAND}) · studio")
    expect(page.locator(".details").get_by_text("<b>not bold</b>")).to_be_visible()
    injected = page.locator("main script, main img, main b")
    expect(injected).to_have_count(0)
    snap(page, "xss-01-detail")

    go(page, "Dashboard")
    expect(page.get_by_role("link", name=SCRIPT_NAME)).to_be_visible()
    expect(injected).to_have_count(0)
    snap(page, "xss-02-dashboard")

    go(page, "Paints")
    page.get_by_label("Brand", exact=True).select_option(IMG_BRAND)
    page.get_by_role("button", name="Apply").click()
    expect(rows(page)).to_have_count(1)
    expect(rows(page)).to_contain_text(SCRIPT_NAME)
    expect(rows(page)).to_contain_text(IMG_BRAND)
    expect(injected).to_have_count(0)
    snap(page, "xss-03-list")

    page.get_by_role("link", name=SCRIPT_NAME).click()
    page.get_by_role("link", name="Edit", exact=True).click()
    expect(page.get_by_label("Name", exact=True)).to_have_value(SCRIPT_NAME)
    expect(page.get_by_label("Brand", exact=True)).to_have_value(IMG_BRAND)
    snap(page, "xss-04-edit")
    assert browser_problems.dialogs == []


def test_every_page_is_reachable_by_clicking(page: Page, sign_in: SignIn, snap: Snap) -> None:
    page.goto("/")
    sign_in(page)
    snap(page, "nav-01-dashboard")
    page.get_by_role("link", name=re.compile("^Low stock")).click()
    expect(page.get_by_label("Stock", exact=True)).to_have_value("low_stock")
    expect(nav_link(page, "Paints")).to_have_attribute("aria-current", "page")
    snap(page, "nav-02-low-stock")

    go(page, "Paints")
    expect(heading(page)).to_contain_text("Paints")
    page.get_by_role("link", name="Stock", exact=True).click()
    stock_header = page.get_by_role("columnheader", name="Stock")
    expect(stock_header).to_have_attribute("aria-sort", "ascending")
    page.get_by_role("link", name="Next →").click()
    expect(page.get_by_text("Page 2 of")).to_be_visible()
    snap(page, "nav-03-list-page-2")

    first = rows(page).first.get_by_role("link")
    name = first.inner_text()
    first.click()
    # The detail's heading names the brand after the paint.
    expect(heading(page)).to_contain_text(name)
    expect(nav_link(page, "Paints")).to_have_attribute("aria-current", "page")
    snap(page, "nav-04-detail")
    page.get_by_role("link", name="Edit", exact=True).click()
    expect(heading(page)).to_have_text(f"Edit {name}")
    snap(page, "nav-05-edit")
    page.get_by_role("link", name="Cancel").click()
    page.get_by_role("link", name="Delete…").click()
    expect(heading(page)).to_have_text(f"Delete {name}?")
    snap(page, "nav-06-delete")
    page.get_by_role("link", name="Keep it").click()
    expect(heading(page)).to_contain_text(name)

    go(page, "New paint")
    expect(heading(page)).to_have_text("New paint")
    snap(page, "nav-07-new-paint")
    go(page, "Import")
    expect(heading(page)).to_have_text("Import paints from CSV")
    snap(page, "nav-08-import")
    go(page, "Dashboard")
    page.get_by_role("link", name="See all").click()
    expect(page.get_by_label("Stock", exact=True)).to_have_value("low_stock")
    expect(page.get_by_role("columnheader", name="Stock")).to_have_attribute(
        "aria-sort", "ascending"
    )
    snap(page, "nav-09-running-low")
    page.get_by_role("link", name="studio", exact=True).click()
    expect(heading(page)).to_have_text("Dashboard")
    page.get_by_role("button", name="Sign out").click()
    expect(heading(page)).to_have_text("Sign in to studio")
    snap(page, "nav-10-signed-out")


def test_pages_fit_a_phone(open_page: Callable[..., Page], sign_in: SignIn, snap: Snap) -> None:
    page = open_page(**PHONE)
    page.goto("/")
    assert_fits_width(page)
    snap(page, "phone-01-login")
    sign_in(page)
    assert_fits_width(page)
    snap(page, "phone-02-dashboard")

    go(page, "Paints")
    for label in ("Dashboard", "Paints", "New paint", "Import"):
        expect(nav_link(page, label)).to_be_in_viewport()
    search(page, "Citadel")
    expect(rows(page).first).to_contain_text("Citadel")
    assert_fits_width(page)
    snap(page, "phone-03-list")

    rows(page).first.get_by_role("link").click()
    assert_fits_width(page)
    snap(page, "phone-04-detail")
    go(page, "New paint")
    assert_fits_width(page)
    snap(page, "phone-05-new-paint")


def test_a_rows_message_gives_way_after_a_while(
    open_page: Callable[..., Page], sign_in: SignIn, snap: Snap, browser_problems: BrowserProblems
) -> None:
    """The message of a quick -1/+1 stayed over the bottom of the window for good.

    On a phone it hid the bulk form's buttons and a row's own buttons under it.
    """
    page = open_page(**PHONE)
    page.clock.install()
    page.goto("/admin/paints?sort=name")
    sign_in(page)
    page.goto("/admin/paints?sort=name")
    live = page.locator("#list-live")
    page.locator("form[data-step]").first.get_by_role("button", name=re.compile(r"^\+1 ")).click()
    expect(live).to_contain_text("stock +1")
    page.clock.run_for(3_000)
    expect(live).to_contain_text("stock +1")
    page.clock.run_for(10_000)
    expect(live).to_be_empty()
    snap(page, "phone-06-row-message-gone")
    # A refusal stays until the next change: it must not be missed.
    page.goto("/admin/paints?stock=out_of_stock")
    browser_problems.refusals.add((page.url, 409))
    page.locator("form[data-step]").first.get_by_role("button", name=re.compile(r"^−1 ")).click()
    expect(live).to_contain_text("cannot go below 0")
    page.clock.run_for(30_000)
    expect(live).to_contain_text("cannot go below 0")
