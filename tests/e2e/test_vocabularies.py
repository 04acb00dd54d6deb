"""Types & families in Chromium: an admin keeps the lists and picks from them in the paint form."""

import re
from collections.abc import Callable

from playwright.sync_api import Page, expect

from .test_browser import flash, go, heading

Snap = Callable[[Page, str], None]
SignIn = Callable[[Page], None]


def families(page: Page):
    return page.get_by_role("region", name="Colour families")


def open_value(page: Page, name: str) -> None:
    go(page, "Types & families")
    families(page).get_by_role("link", name=name, exact=True).click()
    expect(heading(page)).to_have_text(f"Colour family: {name}")


def test_an_admin_keeps_the_families_list_and_picks_from_it(
    page: Page, sign_in: SignIn, snap: Snap
) -> None:
    page.goto("/")
    sign_in(page)
    go(page, "Types & families")
    expect(heading(page)).to_have_text("Types & families")
    expect(families(page).get_by_role("link", name="Blue", exact=True)).to_be_visible()

    families(page).get_by_label("New colour family").fill("  verdigris ")
    families(page).get_by_role("button", name="Add colour family").click()
    expect(flash(page)).to_have_text("Added verdigris to the colour families.")
    families(page).get_by_label("New colour family").fill("VERDIGRIS")
    families(page).get_by_role("button", name="Add colour family").click()
    field = families(page).get_by_label("New colour family")
    expect(field).to_have_attribute("aria-invalid", "true")
    expect(families(page).locator(".error")).to_have_text(
        "New colour family is already in the list as verdigris."
    )
    snap(page, "vocabularies-01-duplicate-refused")

    open_value(page, "verdigris")
    page.get_by_label("New name").fill("Verdigris")
    page.get_by_role("button", name="Rename").click()
    expect(flash(page)).to_have_text("Renamed verdigris to Verdigris; 0 paints changed.")

    go(page, "New paint")
    page.get_by_label("Name", exact=True).fill("Bronze Patina")
    page.get_by_label("Brand", exact=True).fill("Listed Paints")
    page.get_by_label("Type", exact=True).select_option("Wash")
    page.get_by_label("Colour family", exact=True).select_option("Verdigris")
    snap(page, "vocabularies-02-paint-form")
    page.get_by_role("button", name="Add paint").click()
    expect(flash(page)).to_have_text("Added Bronze Patina (Listed Paints).")
    expect(page.get_by_text("Verdigris", exact=True)).to_be_visible()

    open_value(page, "Verdigris")
    expect(page.get_by_text("1 paint has this colour family.")).to_be_visible()
    page.get_by_role("button", name="Delete Verdigris").click()
    expect(flash(page)).to_have_text(
        "Verdigris cannot be deleted: 1 paint has it. Merge it into another colour family "
        "instead, or change those paints first."
    )
    snap(page, "vocabularies-03-delete-refused")
    merge_into = page.get_by_label("Merge into", exact=True)
    # Each choice says how many paints it has: "Green (7 paints)".
    green = merge_into.locator("option", has_text=re.compile(r"^Green \(")).get_attribute("value")
    merge_into.select_option(green)
    page.get_by_role("button", name="Merge").click()
    expect(flash(page)).to_have_text("Merged Verdigris into Green; 1 paint changed.")
    expect(families(page).get_by_role("link", name="Verdigris")).to_have_count(0)
    snap(page, "vocabularies-04-merged")

    go(page, "Paints")
    options = page.get_by_label("Colour family", exact=True).locator("option")
    expect(options.filter(has_text="Verdigris")).to_have_count(0)
    page.get_by_role("searchbox", name="Search").fill("Bronze Patina")
    page.get_by_role("button", name="Apply").click()
    page.get_by_role("link", name="Bronze Patina").click()
    expect(page.get_by_text("Green", exact=True)).to_be_visible()
    page.get_by_role("link", name="Delete…").click()
    page.get_by_role("button", name="Delete paint").click()
    expect(flash(page)).to_have_text("Deleted Bronze Patina.")
