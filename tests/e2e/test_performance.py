"""The performance page in Chromium: found from the navigation, live, and readable on a phone."""

import re
from collections.abc import Callable

import pytest
from playwright.sync_api import Page, expect

from .test_browser import PHONE, SignIn, Snap, assert_fits_width, go, heading

VIEWPORTS = {"desktop": {}, "phone": PHONE}


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_performance_page_from_the_navigation(
    open_page: Callable[..., Page], sign_in: SignIn, snap: Snap, viewport: str
) -> None:
    page = open_page(**VIEWPORTS[viewport])
    page.goto("/")
    sign_in(page)
    go(page, "Performance")
    expect(heading(page)).to_have_text("Performance")
    expect(page.get_by_role("img", name=re.compile(r"^Pool in use: \d+ %$"))).to_be_visible()
    # Signing in landed on the dashboard: this worker counted that request.
    dashboard = page.locator('table.endpoints tr[data-endpoint="admin.dashboard"]')
    expect(dashboard.locator("[data-count]")).to_have_text(re.compile(r"^[1-9][\d,]*$"))
    expect(
        page.get_by_role("img", name=re.compile(r"^Resident memory: now [\d,]+ MiB"))
    ).to_be_visible()
    if viewport == "desktop":
        # The page reloads itself (a meta refresh, which the CSP allows): its time moves on.
        updated = page.get_by_text(re.compile(r"^Updates every 5 s · as of "))
        expect(updated).not_to_have_text(updated.inner_text(), timeout=10_000)
        expect(heading(page)).to_have_text("Performance")

    page.get_by_role("link", name="Pause updates").click()
    expect(page).to_have_url(re.compile(r"/admin/performance\?refresh=0$"))
    expect(page.locator('meta[http-equiv="refresh"]')).to_have_count(0)
    expect(page.get_by_role("link", name="Resume updates")).to_be_visible()
    assert_fits_width(page)
    snap(page, f"performance-{viewport}")
