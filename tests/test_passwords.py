"""Passwords: new ones at least PASSWORD_MIN_LENGTH (12) characters and not easy to guess;
any composition allowed, typed into a masked field and checked exactly as typed."""

import re

import pytest

from studio.services import accounts

from .conftest import token_from


def refusal(username: str, password: str) -> str:
    """Return what creating this admin is refused with, for the password field."""
    with pytest.raises(accounts.ValidationError) as caught:
        accounts.create_user(username, password)
    assert accounts.find_user(username) is None
    return caught.value.fields["password"]


@pytest.mark.parametrize(
    "password", ["password", "12345678", "Xk9#mQ2vLp8", "correct hor", "a" * 11]
)
def test_a_password_under_12_characters_is_refused_naming_the_field(app, password):
    assert refusal("bob", password) == "must be at least 12 characters."


@pytest.mark.parametrize(
    "password",
    [
        "password1234",  # a common password with digits added
        "Password1234!",
        "qwertyuiop12",  # a keyboard row
        "123456789012",
        "aaaaaaaaaaaa",
        "iloveyou2024",
        "bobbobbob123",  # the username, repeated
    ],
)
def test_a_long_but_common_password_is_refused_naming_the_field(app, password):
    message = refusal("bob", password)
    assert message.startswith("is too easy to guess")
    assert "a few words that do not belong together make a strong one." in message


@pytest.mark.parametrize("password", ["password", "12345678", "iloveyou"])
def test_common_passwords_are_refused_where_shorter_ones_are_allowed(app, monkeypatch, password):
    monkeypatch.setitem(app.config, "PASSWORD_MIN_LENGTH", 8)
    assert refusal("bob", password).startswith("is too easy to guess (this is a top-")


@pytest.mark.parametrize(
    "password", ["xK9#mQ2vLp8z", "correct horse battery", "walnut ink tuesday", "Ünïcödé ≠ ascii"]
)
def test_a_long_uncommon_password_of_any_composition_is_accepted(app, password):
    accounts.create_user("bob", password)
    assert accounts.authenticate("bob", password) is not None


def test_a_changed_password_is_checked_too(app, api):
    with pytest.raises(accounts.ValidationError) as caught:
        accounts.set_password(accounts.find_user("alice"), "password1234")
    assert caught.value.fields["password"].startswith("is too easy to guess")


def test_only_the_first_72_characters_are_estimated(app):
    # zxcvbn refuses longer input; what follows only adds to a password's strength.
    accounts.create_user("bob", "walnut ink tuesday " * 50)
    with pytest.raises(accounts.ValidationError):
        accounts.create_user("carol", "a" * 72 + "xK9#mQ2vLp8z")


def test_the_sign_in_form_masks_the_password_and_lets_password_managers_fill_it(client):
    page = client.get("/login").get_data(as_text=True)
    field = re.search(r"<input[^>]*\bname=\"password\"[^>]*>", page).group(0)
    assert 'type="password"' in field and 'autocomplete="current-password"' in field
    assert "paste" not in page.lower()


def test_a_password_is_checked_exactly_as_typed(app):
    typed = "  Walnut Ink Tuesday  "
    accounts.create_user("bob", typed)
    assert accounts.authenticate("bob", typed) is not None
    for altered in (typed.strip(), typed.lower(), typed[:12]):
        assert accounts.authenticate("bob", altered) is None
    client = app.test_client()
    page = client.get("/login").get_data(as_text=True)
    data = {"username": "bob", "password": typed, "csrf_token": token_from(page)}
    assert client.post("/login", data=data).status_code == 302
