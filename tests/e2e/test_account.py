"""An admin's password and sessions in Chromium: change the password, sign out everywhere."""

from collections.abc import Callable

from playwright.sync_api import Page, expect

from .conftest import PASSWORD, USERNAME
from .test_browser import flash, heading

NEW_PASSWORD = "another long passphrase"
SignIn = Callable[[Page], None]
Snap = Callable[[Page, str], None]


def signed_in_page(open_page: Callable[..., Page], password: str = PASSWORD) -> Page:
    page = open_page()
    page.goto("/login")
    sign_in_with(page, password)
    return page


def sign_in_with(page: Page, password: str) -> None:
    page.get_by_label("Username").fill(USERNAME)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()


def still_signed_in(page: Page) -> bool:
    page.goto("/admin/")
    return page.url.endswith("/admin/")


def change_password(page: Page, current: str, new: str) -> None:
    page.get_by_label("Current password").fill(current)
    page.get_by_label("New password", exact=True).fill(new)
    page.get_by_label("New password again").fill(new)
    page.get_by_role("button", name="Change password").click()


def test_an_admin_changes_their_password_and_signs_out_everywhere(
    open_page: Callable[..., Page], sign_in: SignIn, snap: Snap
) -> None:
    laptop, phone = signed_in_page(open_page), signed_in_page(open_page)

    laptop.get_by_role("link", name=USERNAME, exact=True).click()
    expect(heading(laptop)).to_have_text("Change your password")
    change_password(laptop, "not my password", NEW_PASSWORD)
    current = laptop.get_by_label("Current password")
    expect(current).to_have_attribute("aria-invalid", "true")
    expect(laptop.locator("#error-summary")).to_contain_text(
        "Current password is not your current password."
    )
    snap(laptop, "account-01-wrong-current-password")

    change_password(laptop, PASSWORD, NEW_PASSWORD)
    expect(flash(laptop)).to_have_text(
        "Your password is changed; every other session of yours has ended."
    )
    assert still_signed_in(laptop)
    assert not still_signed_in(phone)
    expect(phone.get_by_role("button", name="Sign in")).to_be_visible()

    # The next tests sign in with the usual password: put it back (the phone is out again).
    sign_in_with(phone, NEW_PASSWORD)
    laptop.goto("/account/password")
    change_password(laptop, NEW_PASSWORD, PASSWORD)
    expect(flash(laptop)).to_contain_text("Your password is changed")
    assert not still_signed_in(phone)
    sign_in(phone)

    phone.goto("/account/password")
    snap(phone, "account-02-password-page")
    phone.get_by_role("button", name="Sign out everywhere").click()
    expect(flash(phone)).to_have_text(
        "You are signed out everywhere: every session of yours has ended."
    )
    assert not still_signed_in(laptop)
