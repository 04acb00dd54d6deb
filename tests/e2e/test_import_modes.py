"""A delivery and a price list through the import in Chromium: previewed, then applied once."""

import csv
import io
import re
from collections.abc import Callable
from decimal import Decimal

from playwright.sync_api import Page, expect

from studio.services import demo

from ..conftest import ON_POSTGRESQL
from .test_accessibility import Audit, audit, axe_source  # noqa: F401 (fixtures)
from .test_browser import PHONE, SignIn, Snap, assert_fits_width

PAINTS = 2_000
RISE = Decimal("0.25")
DESKTOP = {"width": 1280, "height": 720}
DELIVERED = 40
# Codes far above the demo paints and the other import tests', so none clashes.
FIRST_CODE = 8_000_000


def send(page: Page, mode: str, name: str, content: bytes, reference: str = "") -> None:
    page.goto("/admin/paints/import")
    page.get_by_label(mode).check()
    if reference:
        page.get_by_label("Delivery note reference").fill(reference)
    page.get_by_label("CSV file").set_input_files(
        {"name": name, "mimeType": "text/csv", "buffer": content}
    )
    page.get_by_role("button", name="Check file").click()


def table(header: list[str], rows: list[list[object]]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer).writerows([header, *rows])
    return buffer.getvalue().encode()


# The rules are tested on both databases in tests/test_import_modes.py; in the browser, the
# database the shop runs on.
@ON_POSTGRESQL
def test_a_delivery_and_a_price_list_are_previewed_and_applied(
    open_page: Callable[..., Page],
    sign_in: SignIn,
    snap: Snap,
    audit: Callable[[Page], Audit],  # noqa: F811
) -> None:
    page = open_page(viewport=DESKTOP)
    page.goto("/admin/paints/import")
    sign_in(page)
    paints = list(demo.demo_paints(PAINTS, start=FIRST_CODE))
    send(page, "Add new paints", "paints.csv", demo.demo_csv(PAINTS, start=FIRST_CODE))
    page.get_by_role("button", name=f"Import {PAINTS:,} paints").click()
    expect(page.get_by_text(f"Imported {PAINTS:,} paints.")).to_be_visible(timeout=60_000)
    checker = audit(page)

    # A delivery note of 40 pots of different paints, 3 of each, and one unknown code.
    received = paints[:DELIVERED]
    rows = [[paint["brand"], paint["color_code"], 3, "1.10"] for paint in received]
    rows.append(["Tamiya", "XF-NOPE", 2, ""])
    delivery = table(["brand", "color_code", "quantity", "unit_cost"], rows)
    send(page, "Receive stock (a delivery)", "delivery.csv", delivery, reference="DN-4711")
    preview = page.get_by_role("region", name=re.compile("^Delivery delivery.csv"))
    expect(preview).to_contain_text("Reference: DN-4711")
    expect(preview).to_contain_text("Row 41: Tamiya XF-NOPE")
    first = received[0]
    expect(preview.locator("tbody tr").first).to_contain_text(
        f"{first['stock']} → {first['stock'] + 3}"
    )
    snap(page, "import-modes-01-delivery-preview")
    checker.check("delivery preview")
    page.get_by_role(
        "button", name=f"Receive {DELIVERED * 3} units into {DELIVERED} paints"
    ).click()
    expect(
        page.get_by_text(f"Received {DELIVERED * 3} units into {DELIVERED} paints.")
    ).to_be_visible()

    # Each of the 40 paints shows its delivery, with the note's reference, in its history.
    for paint in received:
        page.goto(f"/admin/paints?q={paint['color_code']}")
        page.get_by_role("link", name=paint["name"]).first.click()
        timeline = page.get_by_role("region", name="History table")
        expect(timeline.get_by_text("DN-4711").first).to_be_visible()
        expect(timeline).to_contain_text(f"{paint['stock']} → {paint['stock'] + 3}")

    # A price list of all 2,000 paints, each 0.25 dearer.
    prices = [[p["brand"], p["color_code"], str(p["price"] + RISE)] for p in paints]
    send(
        page,
        "Update existing paints (a price list)",
        "prices.csv",
        table(["brand", "color_code", "price"], prices),
    )
    preview = page.get_by_role("region", name=re.compile("^Price list prices.csv"))
    expect(preview).to_contain_text(f"{PAINTS:,} paints to update")
    expect(preview).to_contain_text("page 1 of 20")
    expect(preview.locator("tbody tr").first).to_contain_text(
        f"price: €{first['price']} → €{first['price'] + RISE}"
    )
    snap(page, "import-modes-02-price-list-preview")
    checker.check("price list preview")
    page.get_by_role("link", name="Next rows").click()
    expect(page.get_by_text("page 2 of 20")).to_be_visible()
    # On a phone's width the preview fits the screen.
    page.set_viewport_size(PHONE["viewport"])
    assert_fits_width(page)
    snap(page, "import-modes-03-phone-preview")
    page.set_viewport_size(DESKTOP)
    page.get_by_role("button", name=f"Update {PAINTS:,} paints").click()
    expect(page.get_by_text(f"Updated {PAINTS:,} paints.")).to_be_visible(timeout=60_000)
    page.get_by_role("searchbox").fill(first["color_code"])
    page.keyboard.press("Enter")
    expect(page.get_by_text(str(first["price"] + RISE)).first).to_be_visible()
    snap(page, "import-modes-04-applied")
    assert checker.blocking() == []
