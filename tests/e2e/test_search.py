"""Search finds a paint by what is on its pot: part of its code, a hyphenated name, no accents."""

from collections.abc import Callable

import pytest
from playwright.sync_api import Page, expect

from .test_browser import go, heading, rows, search

Snap = Callable[[Page, str], None]
SignIn = Callable[[Page], None]


def add_paint(page: Page, name: str, brand: str, code: str) -> None:
    go(page, "New paint")
    page.get_by_label("Name", exact=True).fill(name)
    page.get_by_label("Brand", exact=True).fill(brand)
    page.get_by_label("Colour code", exact=True).fill(code)
    page.get_by_role("button", name="Add paint").click()
    expect(heading(page)).to_contain_text(name)


@pytest.fixture
def labelled_paints(page: Page, sign_in: SignIn) -> Page:
    """Two paints added as an admin adds them, once per server.

    Their names and codes are unlike the demo's and the imported files' (which other
    browser tests add to the same server), so each search finds these alone.
    """
    page.goto("/")
    sign_in(page)
    go(page, "Paints")
    search(page, "Labelled")
    if rows(page).count() < 2:
        add_paint(page, "Labelled Quillon Dusk", "Searchcraft", "SRC-909099")
        add_paint(page, "Labelled Café Crème", "Searchcraft", "SRC-909100")
    go(page, "Paints")
    return page


@pytest.mark.parametrize(
    ("typed", "found"),
    [
        ("909099", ["Labelled Quillon Dusk"]),
        ("SRC-9090", ["Labelled Quillon Dusk"]),
        ("src-909", ["Labelled Café Crème", "Labelled Quillon Dusk"]),
        ("quillon-dusk", ["Labelled Quillon Dusk"]),
        ("lab qui dus", ["Labelled Quillon Dusk"]),
        ("cafe creme", ["Labelled Café Crème"]),
    ],
)
def test_search_finds_codes_fragments_and_hyphenated_names(
    labelled_paints: Page, snap: Snap, typed: str, found: list[str]
) -> None:
    page = labelled_paints
    search(page, typed)
    expect(page.get_by_role("searchbox", name="Search")).to_have_value(typed)
    expect(rows(page)).to_have_count(len(found))
    for name in found:
        expect(rows(page).filter(has_text=name)).to_have_count(1)
    if typed == "909099":
        snap(page, "search-01-part-of-a-code")
