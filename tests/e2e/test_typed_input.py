"""What an admin types is kept: a decimal comma, and an edit made while others change the paint."""

from collections.abc import Callable

from playwright.sync_api import Locator, Page, expect

from .test_browser import flash, go, heading

Snap = Callable[[Page, str], None]
SignIn = Callable[[Page], None]


# The form's own alert: a performance alert banner may also be on the page.
def form_alert(page: Page) -> Locator:
    return page.locator("main form").get_by_role("alert")


def type_into(page: Page, label: str, text: str) -> None:
    """Type key by key, as a person does (fill() would bypass what the input does with keys)."""
    field = page.get_by_label(label, exact=True)
    field.clear()
    field.press_sequentially(text)


def add_paint(page: Page, name: str, price: str, stock: str) -> None:
    go(page, "New paint")
    page.get_by_label("Name", exact=True).fill(name)
    page.get_by_label("Brand", exact=True).fill("Comma Colours")
    type_into(page, "Stock", stock)
    type_into(page, "Price", price)
    page.get_by_role("button", name="Add paint").click()
    expect(heading(page)).to_contain_text(name)


def test_a_decimal_comma_is_kept(page: Page, sign_in: SignIn, snap: Snap) -> None:
    page.goto("/")
    sign_in(page)
    add_paint(page, "Comma Ochre", "4,50", "10")
    expect(flash(page)).to_have_text("Added Comma Ochre (Comma Colours).")
    expect(page.locator("[data-price]")).to_have_attribute("data-price", "4.50")
    expect(page.locator("[data-price]")).to_contain_text("4.50")
    snap(page, "numbers-01-price-with-a-comma")

    type_into(page, "Change by", "5,0")
    page.get_by_label("Reason").fill("Delivery")
    page.get_by_role("button", name="Apply").click()
    expect(flash(page)).to_have_text("Stock +5: now 15.")
    expect(page.locator("[data-stock]")).to_have_attribute("data-stock", "15")

    type_into(page, "Change by", "5,000")
    page.get_by_label("Reason").fill("Delivery")
    page.get_by_role("button", name="Apply").click()
    expect(page.locator("#delta-error, .error").first).to_contain_text(
        'Change by "5,000" could mean 5000 or 5'
    )
    expect(page.locator("[data-stock]")).to_have_attribute("data-stock", "15")
    snap(page, "numbers-02-ambiguous-change-refused")


def test_an_unclear_price_is_refused_with_how_to_write_it(
    page: Page, sign_in: SignIn, snap: Snap
) -> None:
    page.goto("/")
    sign_in(page)
    go(page, "New paint")
    page.get_by_label("Name", exact=True).fill("Unclear Umber")
    page.get_by_label("Brand", exact=True).fill("Comma Colours")
    type_into(page, "Price", "4,500")
    page.get_by_role("button", name="Add paint").click()
    message = 'Price "4,500" could mean 4500 or 4.5: write 4500 without a separator'
    expect(form_alert(page)).to_contain_text(message)
    expect(page.get_by_label("Price")).to_have_value("4,500")
    snap(page, "numbers-03-ambiguous-price-refused")


def open_edit(page: Page, paint_url: str) -> None:
    page.goto(paint_url)
    page.get_by_role("link", name="Edit", exact=True).click()
    expect(heading(page)).to_contain_text("Edit")


def sell(page: Page, paint_url: str, units: int) -> None:
    page.goto(paint_url)
    page.get_by_label("Change by").fill(f"-{units}")
    page.get_by_label("Reason").fill("Sold over the counter")
    page.get_by_role("button", name="Apply").click()
    expect(flash(page)).to_contain_text(f"Stock -{units}")


def test_edits_merge_with_what_others_did_meanwhile(
    page: Page, open_page: Callable[..., Page], sign_in: SignIn, snap: Snap
) -> None:
    page.goto("/")
    sign_in(page)
    add_paint(page, "Merge Magenta", "4.50", "10")
    paint_url = page.url
    other = open_page()
    other.goto("/")
    sign_in(other)

    # A sale elsewhere does not block a price edit, and is not undone by it.
    open_edit(page, paint_url)
    sell(other, paint_url, 3)
    type_into(page, "Price", "4,95")
    page.get_by_label("Description").fill("Typed while a sale happened.")
    page.get_by_role("button", name="Save changes").click()
    expect(flash(page)).to_have_text("Saved Merge Magenta.")
    expect(page.locator("[data-price]")).to_have_attribute("data-price", "4.95")
    expect(page.locator("[data-stock]")).to_have_attribute("data-stock", "7")
    expect(page.locator(".details").get_by_text("Typed while a sale happened.")).to_be_visible()

    # Another admin edits another field: both edits stay.
    open_edit(page, paint_url)
    open_edit(other, paint_url)
    other.get_by_label("Colour code").fill("MM-01")
    other.get_by_role("button", name="Save changes").click()
    expect(flash(other)).to_have_text("Saved Merge Magenta.")
    page.get_by_label("Name", exact=True).fill("Merge Magenta II")
    page.get_by_role("button", name="Save changes").click()
    expect(flash(page)).to_have_text("Saved Merge Magenta II.")
    expect(page.locator("dd.code, dd.mono").first).to_have_text("MM-01")

    # Both change the price: refused, the typed values kept, the current one shown.
    open_edit(page, paint_url)
    open_edit(other, paint_url)
    type_into(other, "Price", "5,20")
    other.get_by_role("button", name="Save changes").click()
    expect(flash(other)).to_have_text("Saved Merge Magenta II.")
    type_into(page, "Price", "4,80")
    page.get_by_label("Description").fill("My words, kept through a conflict.")
    with page.expect_response(lambda response: response.request.method == "POST") as answer:
        page.get_by_role("button", name="Save changes").click()
    assert answer.value.status == 409
    expect(form_alert(page)).to_contain_text("Someone else changed this paint")
    expect(page.locator("#price-error, .field.has-error .error").first).to_contain_text(
        "it is now 5.20 (it was 4.95 when this edit began)"
    )
    expect(page.get_by_label("Price")).to_have_value("4,80")
    expect(page.get_by_label("Description")).to_have_value("My words, kept through a conflict.")
    snap(page, "edits-01-conflict-on-price")

    page.get_by_role("button", name="Save changes").click()
    expect(flash(page)).to_have_text("Saved Merge Magenta II.")
    expect(page.locator("[data-price]")).to_have_attribute("data-price", "4.80")
    kept = page.locator(".details").get_by_text("My words, kept through a conflict.")
    expect(kept).to_be_visible()
    snap(page, "edits-02-saved-after-looking")
