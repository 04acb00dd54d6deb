"""The reorder list in Chromium: stock falls to a paint's level; the list and its CSV show it."""

import csv
import io
import re
from collections.abc import Callable
from pathlib import Path

from playwright.sync_api import Page, expect

from .test_browser import PHONE, SignIn, Snap, assert_fits_width, flash, go, heading

BRAND = "Reorder Test Supplies"


def test_a_paint_falls_to_its_level_and_is_ordered_from_the_list(
    page: Page, open_page: Callable[..., Page], sign_in: SignIn, snap: Snap
) -> None:
    page.goto("/")
    sign_in(page)
    go(page, "New paint")
    for label, value in {
        "Name": "Quick Seller",
        "Brand": BRAND,
        "Stock": "9",
        "Price": "3.00",
        "Reorder level": "6",
    }.items():
        page.get_by_label(label, exact=True).fill(value)
    page.get_by_role("button", name="Add paint").click()
    expect(flash(page)).to_have_text(f"Added Quick Seller ({BRAND}).")

    go(page, "Reorder")
    expect(page.get_by_role("row", name=re.compile(BRAND))).to_have_count(0)
    page.go_back()
    page.get_by_label("Change by").fill("-4")
    page.get_by_label("Reason").fill("Sold at the counter")
    page.get_by_role("button", name="Apply").click()
    expect(flash(page)).to_have_text("Stock -4: now 5.")
    expect(page.locator("[data-stock] .badge")).to_have_text("5 · low")

    go(page, "Reorder")
    page.get_by_role("link", name=BRAND, exact=True).click()
    expect(heading(page)).to_contain_text("Reorder list")
    group = page.get_by_role("region", name=re.compile(f"^{BRAND}"))
    line = group.locator("tbody tr")
    expect(line).to_have_count(1)
    expect(line).to_contain_text("Quick Seller")
    # No reorder quantity: enough to bring 5 back above the level of 6.
    expect(line.locator("[data-suggested]")).to_have_text("2")
    snap(page, "reorder-01-list")

    with page.expect_download() as download:
        page.get_by_role("link", name=f"Download CSV of {BRAND}").click()
    name = download.value.suggested_filename
    assert re.fullmatch(r"reorder-reorder-test-supplies-\d{8}-\d{4}\.csv", name), name
    text = Path(download.value.path()).read_text("utf-8-sig")
    ordered = list(csv.DictReader(io.StringIO(text)))
    assert [(row["brand"], row["name"], row["suggested_quantity"]) for row in ordered] == [
        (BRAND, "Quick Seller", "2")
    ]

    phone = open_page(**PHONE)
    phone.goto("/")
    sign_in(phone)
    phone.goto(page.url)
    expect(phone.get_by_role("region", name=re.compile(f"^{BRAND}"))).to_contain_text(
        "Quick Seller"
    )
    assert_fits_width(phone)
    snap(phone, "reorder-02-phone")
