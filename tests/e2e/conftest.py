"""Browser fixtures: Debian's Chromium, driven by Playwright, against the app on a real server."""

import os
import re
import shutil
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from flask_migrate import upgrade
from playwright.sync_api import (
    Browser,
    ConsoleMessage,
    Dialog,
    Page,
    Response,
    expect,
    sync_playwright,
)
from werkzeug.serving import WSGIRequestHandler, make_server

from studio.extensions import db
from studio.services import accounts, demo
from tests.conftest import empty_database, make_app

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
MISSING_CHROMIUM = (
    "Chromium is not installed: install Debian's chromium package "
    "(apt-get install chromium) to run the browser tests"
)
USERNAME, PASSWORD = "admin", "a long password"
DEMO_PAINTS = 60
SCREENSHOTS = Path(__file__).resolve().parent.parent / "screenshots"
# A refused form comes back as 401, 409 or 422 on purpose; Chromium logs any 4xx document
# as "Failed to load resource", which is the page's answer rather than an error in it.
REFUSAL_STATUSES = (401, 409, 422)
FAILED_LOAD = re.compile(r"Failed to load resource: the server responded with a status of (\d+)")


class QuietRequestHandler(WSGIRequestHandler):
    """Log failures only; a line per request would bury a failing test's output."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


@dataclass(frozen=True)
class LiveServer:
    backend: str
    url: str


@dataclass
class BrowserProblems:
    """What the test's pages reported: console errors, uncaught exceptions, dialogs."""

    console: list[tuple[str, str]] = field(default_factory=list)
    exceptions: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    refusals: set[tuple[str, int]] = field(default_factory=set)

    def watch(self, page: Page) -> None:
        page.on("console", self._on_console)
        page.on("pageerror", lambda error: self.exceptions.append(f"{page.url}: {error}"))
        page.on("dialog", self._on_dialog)
        page.on("response", self._on_response)

    def _on_console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.console.append((message.location.get("url", ""), message.text))

    def _on_dialog(self, dialog: Dialog) -> None:
        self.dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()

    def _on_response(self, response: Response) -> None:
        request = response.request
        if request.resource_type == "document" and response.status in REFUSAL_STATUSES:
            self.refusals.add((response.url, response.status))

    def report(self) -> list[str]:
        """Return every problem, leaving out the refused forms' own status."""
        found = [f"dialog {text}" for text in self.dialogs]
        found += [f"page error {text}" for text in self.exceptions]
        for url, text in self.console:
            status = FAILED_LOAD.match(text)
            if status and (url, int(status.group(1))) in self.refusals:
                continue
            found.append(f"console error {text} ({url})")
        return found


@pytest.fixture(scope="session")
def chromium_executable() -> str:
    path = shutil.which("chromium")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail(MISSING_CHROMIUM, pytrace=False)
        pytest.skip(MISSING_CHROMIUM)
    return path


@pytest.fixture(scope="session")
def browser(chromium_executable: str) -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium_executable, args=CHROMIUM_ARGS
        )
        yield browser
        browser.close()


@pytest.fixture(scope="session")
def live_server(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """The app on a fresh, migrated database with an admin and demo paints, on a free port."""
    with empty_database(backend, tmp_path_factory) as url:
        # Every browser test signs in from 127.0.0.1; the throttle has tests of its own.
        app = make_app(url, LOGIN_LIMIT_PER_IP="1000 per minute")
        with app.app_context():
            upgrade()
            accounts.create_user(USERNAME, PASSWORD)
            demo.seed_demo(DEMO_PAINTS)
        server = make_server(
            "127.0.0.1", 0, app, threaded=True, request_handler=QuietRequestHandler
        )
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield LiveServer(backend, f"http://127.0.0.1:{server.server_port}")
        finally:
            server.shutdown()
            thread.join()
            server.server_close()
            with app.app_context():
                db.engine.dispose()


@pytest.fixture
def browser_problems() -> BrowserProblems:
    return BrowserProblems()


@pytest.fixture
def open_page(
    browser: Browser, live_server: LiveServer, browser_problems: BrowserProblems
) -> Iterator[Callable[..., Page]]:
    """Open pages in new browser contexts; fail the test on any problem they report."""
    contexts = []

    def open_page(**context_options) -> Page:
        context = browser.new_context(base_url=live_server.url, **context_options)
        context.set_default_timeout(10_000)
        contexts.append(context)
        page = context.new_page()
        browser_problems.watch(page)
        return page

    yield open_page
    for context in contexts:
        context.close()
    problems = browser_problems.report()
    if problems:
        pytest.fail("The browser reported:\n" + "\n".join(problems), pytrace=False)


@pytest.fixture
def page(open_page: Callable[..., Page]) -> Page:
    return open_page()


@pytest.fixture
def snap(live_server: LiveServer) -> Callable[[Page, str], None]:
    """Save a full-page screenshot as tests/screenshots/<backend>-<step>.png."""
    SCREENSHOTS.mkdir(exist_ok=True)

    def snap(page: Page, step: str) -> None:
        page.screenshot(path=SCREENSHOTS / f"{live_server.backend}-{step}.png", full_page=True)

    return snap


@pytest.fixture
def sign_in() -> Callable[[Page], None]:
    """Sign in on the login page the browser is showing."""

    def sign_in(page: Page) -> None:
        page.get_by_label("Username").fill(USERNAME)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("button", name="Sign out")).to_be_visible()

    return sign_in
