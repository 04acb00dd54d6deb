"""The paints list's row and bulk actions in Chromium, as an admin uses them."""

import re
from collections.abc import Callable

from playwright.sync_api import Page, expect

from .test_browser import PHONE, SignIn, Snap, assert_fits_width, check_import, flash, go, rows

BRAND = "Bulk Test Inks"
COUNT = 25
DELIVERY = "Delivery note DN-2291"


def import_the_brand(page: Page) -> None:
    lines = [f"Bulk Ink {number:02d},{BRAND},BTI-{number:02d},2,3.00" for number in range(COUNT)]
    go(page, "Import")
    assert (
        check_import(page, "bulk.csv", "name,brand,color_code,stock,price\n" + "\n".join(lines))
        == 200
    )
    page.get_by_role("button", name=f"Import {COUNT} paints").click()
    expect(page.get_by_text(re.compile(f"^Imported {COUNT} paints")).first).to_be_visible()


def test_an_admin_adjusts_25_rows_steps_one_and_deletes_two(
    page: Page, open_page: Callable[..., Page], sign_in: SignIn, snap: Snap
) -> None:
    page.goto("/")
    sign_in(page)
    import_the_brand(page)
    page.goto(f"/admin/paints?brand={BRAND.replace(' ', '+')}&per_page=50")
    expect(rows(page)).to_have_count(COUNT)

    # "/" outside a field goes to the search box.
    page.locator("h1").click()
    page.keyboard.press("/")
    expect(page.get_by_role("searchbox", name="Search")).to_be_focused()

    page.get_by_role("checkbox", name="Select every paint on this page").check()
    expect(page.locator("[data-selected-count]")).to_have_text(f"({COUNT} ticked)")
    page.get_by_label("Change stock by").fill("3")
    page.get_by_label("Reason").fill(DELIVERY)
    snap(page, "rows-01-selected")
    page.get_by_role("button", name="Adjust stock").click()
    expect(flash(page)).to_have_text(f"Stock +3 on {COUNT} paints.")
    expect(
        page.locator("[data-stock]").filter(has_text=re.compile(r"^\s*5 · low\s*$"))
    ).to_have_count(COUNT)
    details = rows(page).get_by_role("link").evaluate_all("links => links.map(link => link.href)")
    assert len(details) == COUNT
    for url in details:
        assert DELIVERY in page.context.request.get(url).text(), url

    # +1 changes the row in place: the page is not loaded again.
    page.evaluate("window.notReloaded = true")
    page.get_by_role("button", name="+1 Bulk Ink 00").click()
    first = rows(page).filter(has_text="Bulk Ink 00")
    expect(first.locator("[data-stock]")).to_have_text("6")
    expect(page.locator("#list-live")).to_have_text("Bulk Ink 00: stock +1, now 6.")
    assert page.evaluate("window.notReloaded") is True
    expect(page.get_by_role("button", name="+1 Bulk Ink 00")).to_be_focused()
    snap(page, "rows-02-stepped")

    page.get_by_role("checkbox", name="Select Bulk Ink 01").check()
    page.get_by_role("checkbox", name="Select Bulk Ink 02").check()
    page.get_by_role("button", name="Delete selected…").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Delete 2 paints?")
    expect(page.locator("[data-deleting] li")).to_have_count(2)
    snap(page, "rows-03-confirm-delete")
    page.get_by_role("button", name="Delete 2 paints").click()
    expect(flash(page)).to_have_text("Deleted 2 paints.")
    expect(rows(page)).to_have_count(COUNT - 2)
    expect(rows(page).filter(has_text="Bulk Ink 01")).to_have_count(0)

    phone = open_page(**PHONE)
    phone.goto("/")
    sign_in(phone)
    phone.goto(page.url)
    expect(rows(phone)).to_have_count(COUNT - 2)
    assert_fits_width(phone)
    snap(phone, "rows-04-phone")
