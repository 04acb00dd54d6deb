"""The Activity page as an admin uses it: filtered by admin, at a desktop's and a phone's width."""

import re
from collections.abc import Callable

from playwright.sync_api import Page, expect

from .conftest import DEMO_PAINTS
from .test_accessibility import DESKTOP
from .test_browser import PHONE, SignIn, Snap, assert_fits_width, flash, go, rows


def count(page: Page) -> int:
    """Return how many entries the Activity page's heading says match."""
    return int(page.locator("h1 .count").inner_text().replace(",", ""))


def test_the_activity_page_filtered_by_admin(
    open_page: Callable[..., Page], sign_in: SignIn, snap: Snap
) -> None:
    page = open_page(**DESKTOP)
    page.goto("/")
    sign_in(page)
    go(page, "Paints")
    rows(page).first.get_by_role("link").click()
    reason = "Delivery note 88 from the wholesaler"
    page.get_by_label("Change by").fill("3")
    page.get_by_label("Reason").fill(reason)
    page.get_by_role("button", name="Apply").click()
    expect(flash(page)).to_contain_text("Stock +3")

    go(page, "Activity")
    entries = page.locator("table.activity tbody tr")
    everyone = count(page)
    page.get_by_label("Admin").select_option("admin")
    page.get_by_role("button", name="Apply").click()
    expect(page).to_have_url(re.compile(r"user=admin"))
    expect(entries.first).to_contain_text(reason)
    # The demo paints were added by no admin: the filter leaves them out.
    assert everyone - count(page) >= DEMO_PAINTS
    by = entries.locator('td[data-label="By"]').all_inner_texts()
    assert by and all(text.startswith("admin") for text in by), by
    export = page.get_by_role("link", name="Export CSV")
    expect(export).to_have_attribute("href", re.compile(r"/admin/activity\.csv\?user=admin"))
    assert_fits_width(page)
    snap(page, "activity-desktop-by-admin")

    # At a phone's width each entry is a card whose lines stay on the screen.
    page.set_viewport_size(PHONE["viewport"])
    assert_fits_width(page)
    for label in ("Paint", "Changes", "Reason", "By"):
        box = entries.first.locator(f'td[data-label="{label}"]').bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE["viewport"]["width"], label
    snap(page, "activity-phone-by-admin")
