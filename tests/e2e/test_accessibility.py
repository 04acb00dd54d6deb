"""Every page of the admin checked by axe-core in Chromium, on a desktop and a phone screen.

axe-core is the npm package pinned in tests/e2e/package.json (`npm ci` there installs it).
"""

import json
import os
import re
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from flask import render_template
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import Page, Route, expect
from werkzeug.exceptions import InternalServerError, TooManyRequests

from studio.errors import render_without_database
from tests.conftest import make_app

from .conftest import SCREENSHOTS, BrowserProblems
from .test_browser import PHONE, SignIn, Snap, check_import, flash, heading

AXE = Path(__file__).resolve().parent / "node_modules" / "axe-core" / "axe.min.js"
MISSING_AXE = "axe-core is not installed: run `npm ci` in tests/e2e to check accessibility"
BLOCKING = ("serious", "critical")
DESKTOP = {"viewport": {"width": 1280, "height": 900}}
SCREENS = {"desktop": DESKTOP, "phone": PHONE}


@pytest.fixture(scope="session")
def axe_source() -> str:
    if not AXE.exists():
        if os.environ.get("CI"):
            pytest.fail(MISSING_AXE, pytrace=False)
        pytest.skip(MISSING_AXE)
    return AXE.read_text("utf-8")


# Playwright's evaluate has no timeout of its own: a run that never settles fails the page.
AXE_RUN = """async () => await Promise.race([
    axe.run(document),
    new Promise((_, reject) => setTimeout(() => reject(new Error("axe ran over 60 s")), 60000)),
])"""


class Audit:
    """Runs axe on the page the browser shows and keeps what it found, per page."""

    def __init__(self, page: Page, source: str) -> None:
        self.page, self.source = page, source
        self.found: dict[str, list[dict]] = {}

    def check(self, name: str) -> None:
        # A page still navigating (after a click) can lose the script or the run: once more.
        for attempt in range(2):
            self.page.wait_for_load_state("load")
            try:
                # Through the DevTools protocol, so the page's CSP (no inline script) allows it.
                self.page.evaluate(self.source)
                result = self.page.evaluate(AXE_RUN)
                break
            except PlaywrightError:
                if attempt:
                    raise
        self.found[name] = [
            {
                "impact": violation["impact"],
                "rule": violation["id"],
                "help": violation["help"],
                "where": [" ".join(node["target"]) for node in violation["nodes"]][:5],
            }
            for violation in result["violations"]
        ]

    def save(self, name: str) -> None:
        """Write every finding, of any impact, beside the screenshots."""
        SCREENSHOTS.mkdir(exist_ok=True)
        (SCREENSHOTS / name).write_text(json.dumps(self.found, indent=1))

    def blocking(self) -> list[str]:
        return [
            f"{page}: {v['impact']} {v['rule']} ({v['help']}) at {', '.join(v['where'])}"
            for page, violations in self.found.items()
            for v in violations
            if v["impact"] in BLOCKING
        ]


@pytest.fixture
def audit(axe_source: str) -> Iterator[Callable[[Page], Audit]]:
    audits: list[Audit] = []

    def start(page: Page) -> Audit:
        audits.append(Audit(page, axe_source))
        return audits[-1]

    yield start


def refuse_login(page: Page) -> None:
    page.get_by_label("Username").fill("admin")
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Sign in").click()
    expect(flash(page)).to_have_text("Invalid username or password.")


def visit_every_page(page: Page, audit: Audit, sign_in: SignIn, problems: BrowserProblems) -> None:
    page.goto("/login")
    audit.check("sign-in")
    refuse_login(page)
    audit.check("sign-in refused")
    sign_in(page)
    audit.check("dashboard")
    page.goto("/admin/paints?brand=Citadel&stock=in_stock&sort=-price&per_page=20")
    audit.check("list with filters")
    page.goto("/admin/paints?per_page=1000&sort=colour")
    audit.check("list with refused filters (422)")
    use_the_row_and_bulk_actions(page, audit)
    page.goto("/admin/paints?sort=name")
    page.locator("table.paints tbody tr").first.get_by_role("link").click()
    audit.check("detail")
    detail = page.url
    page.get_by_label("Change by").fill("lots")
    page.get_by_role("button", name="Apply").click()
    audit.check("detail, stock change refused (422)")
    page.get_by_role("link", name="Edit", exact=True).click()
    audit.check("edit form")
    edit = page.url
    page.get_by_label("Name", exact=True).fill("")
    page.get_by_role("button", name="Save changes").click()
    audit.check("edit form refused (422)")
    edit_conflict(page, edit)
    audit.check("edit form in conflict (409)")
    page.goto(detail)
    page.get_by_role("link", name="Delete…").click()
    audit.check("delete")
    page.goto("/admin/paints/new")
    audit.check("new form")
    page.get_by_role("button", name="Add paint").click()
    audit.check("new form refused (422)")
    page.goto("/admin/paints/import")
    audit.check("import")
    page.get_by_role("button", name="Check file").click()
    audit.check("import without a file (422)")
    check_import(page, "bad.csv", "name,brand,stock\nGlaze,Kimera,-3\n")
    audit.check("import refused (422)")
    check_import(page, "clean.csv", f"name,brand,stock\nGlaze {uuid.uuid4().hex[:8]},Kimera,3\n")
    audit.check("import checked, to confirm")
    page.goto("/admin/reorder")
    audit.check("reorder list")
    page.goto("/admin/reorder?page=0")
    audit.check("reorder list with a refused page (422)")
    page.goto("/admin/performance?refresh=0")
    audit.check("performance")
    page.goto("/admin/vocabularies")
    audit.check("types and families")
    page.locator("form.term-add").first.get_by_role("button").click()
    audit.check("types and families, add refused")
    page.locator("table.terms a").first.click()
    audit.check("a type")
    page.goto("/admin/activity?user=admin")
    audit.check("activity by one admin")
    page.goto("/admin/activity?since=yesterday")
    problems.refusals.add((page.url, 400))
    audit.check("activity with refused filters (400)")
    page.goto("/account/password")
    audit.check("password and sessions")
    page.get_by_role("button", name="Change password").click()
    audit.check("password change refused (422)")
    page.goto("/admin/no-such-page")
    expect_not_found(problems, page)
    audit.check("404")


def use_the_row_and_bulk_actions(page: Page, audit: Audit) -> None:
    """The list's own controls: a row changed in place, a refused bulk action, a confirmation."""
    page.goto("/admin/paints?sort=name")
    steps = page.locator("form[data-step]").first
    steps.get_by_role("button", name=re.compile(r"^\+1 ")).click()
    expect(page.locator("#list-live")).to_contain_text("stock +1")
    audit.check("list, a row's stock changed in place")
    steps.get_by_role("button", name=re.compile(r"^−1 ")).click()
    expect(page.locator("#list-live")).to_contain_text("stock -1")
    page.get_by_role("button", name="Adjust stock").click()
    expect(flash(page)).to_contain_text("The selection is empty")
    audit.check("list, bulk action refused (422)")
    page.locator('input[name="ids"]').first.check()
    page.get_by_role("button", name="Delete selected…").click()
    audit.check("bulk delete, to confirm")


def expect_not_found(problems: BrowserProblems, page: Page) -> None:
    """Chromium logs the 404 page the test asks for as an error: it is the answer wanted."""
    problems.refusals.add((page.url, 404))


def edit_conflict(page: Page, edit: str) -> None:
    """Make the edit page answer 409: the same admin in another tab saves the same field first."""
    page.goto(edit)
    other = page.context.new_page()
    other.goto(edit)
    # A text of its own each time: saving the text already there would change nothing.
    other.get_by_label("Description").fill(f"Changed in the other tab ({uuid.uuid4().hex[:8]}).")
    other.get_by_role("button", name="Save changes").click()
    # Saved once its confirmation shows. The tab stays open until the test's context closes:
    # closing a page whose navigation is still settling can wait forever in Chromium.
    expect(flash(other)).to_be_visible()
    page.get_by_label("Description").fill("Changed here.")
    with page.expect_response(lambda response: response.request.method == "POST") as answer:
        page.get_by_role("button", name="Save changes").click()
    assert answer.value.status == 409


@pytest.mark.parametrize("screen", SCREENS)
def test_every_page_has_no_serious_accessibility_problem(
    open_page: Callable[..., Page],
    audit: Callable[[Page], Audit],
    sign_in: SignIn,
    browser_problems: BrowserProblems,
    live_server,
    screen: str,
) -> None:
    page = open_page(**SCREENS[screen])
    checked = audit(page)
    visit_every_page(page, checked, sign_in, browser_problems)
    checked.save(f"{live_server.backend}-axe-{screen}.json")
    assert checked.blocking() == [], "\n".join(checked.blocking())


def serve(status: int, html: str) -> Callable[[Route], None]:
    """Return a route handler that answers with this page."""
    return lambda route: route.fulfill(
        status=status, body=html, content_type="text/html; charset=utf-8"
    )


def failure_pages(tmp_path: Path) -> dict[str, tuple[int, str]]:
    """Render the pages studio shows when something fails, as it would send them."""
    app = make_app(f"sqlite:///{tmp_path / 'unused.db'}")
    with app.test_request_context("/admin/"):
        return {
            "database unavailable": (
                503,
                render_without_database("unavailable.html", seconds=2, outcome_unknown=False),
            ),
            "outcome unknown": (
                503,
                render_without_database("unavailable.html", seconds=2, outcome_unknown=True),
            ),
            "too many sign-ins (429)": (
                429,
                render_template("error.html", error=TooManyRequests()),
            ),
            "server error (500)": (500, render_template("error.html", error=InternalServerError())),
        }


@pytest.mark.parametrize("screen", SCREENS)
def test_failure_pages_have_no_serious_accessibility_problem(
    open_page: Callable[..., Page],
    audit: Callable[[Page], Audit],
    browser_problems: BrowserProblems,
    live_server,
    tmp_path: Path,
    screen: str,
) -> None:
    # The live server cannot lose its database on demand: these pages are served as studio
    # renders them, at an address of the live server, so its stylesheet applies.
    page = open_page(**SCREENS[screen])
    checked = audit(page)
    for name, (status, html) in failure_pages(tmp_path).items():
        page.route("**/admin/", serve(status, html))
        response = page.goto("/admin/")
        assert response.status == status
        browser_problems.refusals.add((page.url, status))
        checked.check(name)
        page.unroute("**/admin/")
    checked.save(f"{live_server.backend}-axe-failures-{screen}.json")
    assert checked.blocking() == [], "\n".join(checked.blocking())


def test_a_refused_form_puts_the_focus_on_what_to_correct(
    page: Page, sign_in: SignIn, snap: Snap
) -> None:
    page.goto("/login")
    refuse_login(page)
    # The message of a refused sign-in is read first.
    expect(flash(page)).to_be_focused()
    sign_in(page)

    page.goto("/admin/paints/new")
    expect(page.get_by_label("Name", exact=True)).not_to_have_attribute(
        "aria-invalid", re.compile("")
    )
    page.get_by_label("Stock", exact=True).fill("lots")
    page.get_by_role("button", name="Add paint").click()
    summary = page.locator("#error-summary")
    expect(summary).to_be_focused()
    snap(page, "a11y-01-refused-form")
    expect(summary.get_by_role("heading")).to_contain_text("nothing was saved")
    name, stock = page.get_by_label("Name", exact=True), page.get_by_label("Stock", exact=True)
    for wrong in (name, stock):
        expect(wrong).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_label("Brand", exact=True)).to_have_accessible_description(
        re.compile("Brand is required")
    )
    expect(stock).to_have_accessible_description(re.compile(r"^Stock .*Opening stock"))
    expect(page.get_by_label("Colour code")).not_to_have_attribute("aria-invalid", re.compile(""))
    # Each line of the summary leads to its field.
    summary.get_by_role("link", name=re.compile("^Stock")).click()
    expect(stock).to_be_focused()

    page.goto("/admin/paints?sort=name")
    page.locator("table.paints tbody tr").first.get_by_role("link").click()
    detail = page.url
    page.get_by_label("Change by").fill("0")
    page.get_by_label("Reason").fill("Count")
    page.get_by_role("button", name="Apply").click()
    expect(page.locator("#error-summary")).to_be_focused()
    expect(page.get_by_label("Change by")).to_have_attribute("aria-invalid", "true")
    snap(page, "a11y-02-refused-stock-change")
    # The refused change stays at the paint's own address, which opens again as the page.
    assert page.url == detail
    assert page.goto(page.url).status == 200
    expect(heading(page)).to_be_visible()


def luminance(rgb: str) -> float:
    """Return the relative luminance of a CSS rgb() colour (WCAG 2)."""
    channels = [int(part) / 255 for part in re.findall(r"\d+", rgb)[:3]]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(one: str, other: str) -> float:
    darker, lighter = sorted((luminance(one), luminance(other)))
    return (lighter + 0.05) / (darker + 0.05)


def test_form_controls_stand_out_from_their_background(page: Page, sign_in: SignIn) -> None:
    """WCAG 1.4.11: a control's border needs 3:1 against what surrounds it (axe does not check)."""
    page.goto("/login")
    sign_in(page)
    for path in ("/admin/paints/new", "/admin/paints"):
        page.goto(path)
        pairs = page.locator("main input:visible, main select, main textarea").evaluate_all(
            """nodes => nodes.filter(n => n.type !== 'color').map(n => [
                 n.id, getComputedStyle(n).borderTopColor,
                 getComputedStyle(n.closest('.card')).backgroundColor])"""
        )
        assert pairs
        for control, border, background in pairs:
            assert contrast(border, background) >= 3, (path, control, border, background)


def test_the_focus_moves_without_javascript_too(
    open_page: Callable[..., Page], sign_in: SignIn
) -> None:
    page = open_page(java_script_enabled=False)
    page.goto("/login")
    sign_in(page)
    page.goto("/admin/paints/new")
    page.get_by_role("button", name="Add paint").click()
    expect(page.locator("#error-summary")).to_be_focused()
