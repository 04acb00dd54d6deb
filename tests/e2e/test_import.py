"""A large CSV import in Chromium: the limits shown first, checked, kept, confirmed once."""

import re

from playwright.sync_api import Page, expect

from studio.services import demo

from .test_browser import SignIn, Snap, go, nav_link

ROWS = 22_000
# Codes far above the demo paints the live server starts with, so none clashes.
FIRST_CODE = 5_000_000


def test_a_file_over_the_old_limit_is_checked_kept_and_imported_once(
    page: Page, sign_in: SignIn, snap: Snap
) -> None:
    content = demo.demo_csv(ROWS, start=FIRST_CODE)
    assert len(content) > 2 * 2**20
    page.goto("/admin/paints/import")
    sign_in(page)
    go(page, "Import")
    expect(page.get_by_text(re.compile(r"up to 200,000 paints and 32 MB per file"))).to_be_visible()
    page.get_by_label("CSV file").set_input_files(
        {"name": "big.csv", "mimeType": "text/csv", "buffer": content}
    )
    with page.expect_response(lambda response: response.request.method == "POST") as answer:
        page.get_by_role("button", name="Check file").click()
    # PostgreSQL checks a file this large in the background: the upload is answered with its
    # own page, which reloads itself until the check is done. SQLite checks it at once.
    assert answer.value.status in (200, 303)
    ready = page.get_by_role("region", name="Ready to import 22,000 paints from big.csv")
    expect(ready).to_be_visible(timeout=90_000)
    expect(ready.locator("tbody tr")).to_have_count(20)
    snap(page, "import-01-ready")
    confirm_url = page.get_by_role("button", name="Import 22,000 paints").evaluate(
        "button => button.form.action"
    )

    page.get_by_role("button", name="Import 22,000 paints").click()
    # And imports it in the background, its page showing the progress until the paints are in.
    done = page.get_by_text(re.compile(r"^Imported 22,000 paints")).first
    expect(done).to_be_visible(timeout=90_000)
    snap(page, "import-02-imported")

    # Back on the upload (a reload, the back button): it says it was imported, once.
    page.goto(confirm_url)
    expect(page.get_by_text("confirming it again imports nothing")).to_be_visible()
    expect(nav_link(page, "Import")).to_have_attribute("aria-current", "page")
    expect(page.get_by_role("button", name=re.compile("^Import"))).to_have_count(0)
    snap(page, "import-03-already-imported")


def test_a_preview_that_cannot_be_applied_shows_its_button_disabled(
    page: Page, sign_in: SignIn, snap: Snap
) -> None:
    """A disabled confirmation was drawn exactly as a live one, in the accent colour."""
    page.goto("/admin/paints/import")
    sign_in(page)
    page.get_by_label("Update existing paints (a price list)").check()
    page.get_by_label("CSV file").set_input_files(
        {
            "name": "none.csv",
            "mimeType": "text/csv",
            "buffer": b"brand,color_code,price\nNo,Z-1,1\n",
        }
    )
    page.get_by_role("button", name="Check file").click()
    confirm = page.get_by_role("button", name="Update 0 paints")
    expect(confirm).to_be_disabled()
    snap(page, "import-04-nothing-to-apply")

    def background(name: str) -> str:
        button = page.get_by_role("button", name=name)
        return button.evaluate("button => getComputedStyle(button).backgroundColor")

    assert background("Update 0 paints") != background("Check file")
