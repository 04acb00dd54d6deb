"""Who may use studio: API tokens for scripts, a signed-in session for browsers."""

import re

import pytest

from studio.extensions import db
from studio.models import ApiToken
from studio.services import accounts

from .conftest import PASSWORD


def csrf_token(client, path="/login"):
    page = client.get(path).get_data(as_text=True)
    return re.search(r'name="csrf_token"[^>]*?value="([^"]+)"', page).group(1)


def sign_in(client, username="alice", password=PASSWORD, next_url=None):
    path = "/login" + (f"?next={next_url}" if next_url else "")
    data = {"username": username, "password": password, "csrf_token": csrf_token(client)}
    return client.post(path, data=data)


@pytest.mark.parametrize(
    "header",
    [None, "", "Bearer", "Bearer nonsense", "Basic YWxpY2U6cGFzcw==", "Bearer stu_" + "x" * 43],
)
def test_api_needs_a_valid_token(client, api, header):
    headers = {"Authorization": header} if header is not None else {}
    response = client.get("/api/v1/paints", headers=headers)
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "unauthorized"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize("path", ["/api/v1/stats", "/api/v1/openapi.json", "/api/v1/paints/1"])
def test_every_api_route_needs_a_token(client, path):
    assert client.get(path).status_code == 401


def test_token_is_stored_only_as_its_hash(api):
    stored = db.session.query(ApiToken).one()
    assert api.token not in stored.token_hash
    assert stored.token_hash == accounts.hash_token(api.token)


def test_revoked_token_stops_working(api):
    assert api.get("/api/v1/stats").status_code == 200
    assert accounts.revoke_tokens("alice") == 1
    assert api.get("/api/v1/stats").status_code == 401


def test_token_of_a_deactivated_user_stops_working(api):
    assert api.get("/api/v1/stats").status_code == 200
    accounts.deactivate_user("alice")
    assert api.get("/api/v1/stats").status_code == 401


def test_api_ignores_a_browser_session(client, api):
    assert sign_in(client).status_code == 302
    assert client.get("/api/v1/stats").status_code == 401


def test_admin_needs_sign_in(client):
    assert client.get("/").headers["Location"] == "/admin/"
    response = client.get("/admin/")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login?next=")


def test_sign_in_and_out(client, api):
    response = sign_in(client)
    assert response.status_code == 302 and response.headers["Location"] == "/admin/"
    assert "alice" in client.get("/admin/").get_data(as_text=True)
    assert accounts.find_user("alice").last_login_at is not None
    token = csrf_token(client, "/admin/")
    assert client.get("/logout").status_code == 405
    assert client.post("/logout", data={"csrf_token": token}).status_code == 302
    assert client.get("/admin/").status_code == 302


@pytest.mark.parametrize("path", ["/logout", "/logout/everywhere"])
def test_signing_out_tells_the_browser_to_drop_what_it_kept(client, api, path):
    sign_in(client)
    response = client.post(path, data={"csrf_token": csrf_token(client, "/admin/")})
    assert response.status_code == 302
    assert response.headers["Clear-Site-Data"] == '"cache", "storage"'
    # The page it leads to still says why.
    assert "signed out" in client.get(response.headers["Location"]).get_data(as_text=True)


@pytest.mark.parametrize(
    ("username", "password"), [("alice", "wrong password"), ("nobody", PASSWORD)]
)
def test_bad_sign_in_says_nothing_about_which_part_was_wrong(client, api, username, password):
    response = sign_in(client, username, password)
    assert response.status_code == 401
    page = response.get_data(as_text=True)
    assert "Invalid username or password." in page
    assert client.get("/admin/").status_code == 302


@pytest.mark.parametrize(
    ("next_url", "expected"),
    [
        ("/api/v1/stats", "/api/v1/stats"),
        ("https://evil.example/", "/admin/"),
        ("//evil.example/", "/admin/"),
        ("/\\evil.example", "/admin/"),
    ],
)
def test_sign_in_only_redirects_within_the_site(client, api, next_url, expected):
    assert sign_in(client, next_url=next_url).headers["Location"] == expected


def test_sign_in_without_csrf_token_is_refused(client, api):
    response = client.post("/login", data={"username": "alice", "password": PASSWORD})
    assert response.status_code == 400
    assert client.get("/admin/").status_code == 302


def test_sign_in_starts_a_new_session(client, api):
    with client.session_transaction() as session:
        session["planted"] = "by an attacker"
    sign_in(client)
    with client.session_transaction() as session:
        assert "planted" not in session


def test_deactivated_user_cannot_sign_in_and_loses_their_session(client, api):
    assert sign_in(client).status_code == 302
    assert client.get("/admin/").status_code == 200
    accounts.deactivate_user("alice")
    assert client.get("/admin/").status_code == 302
    assert sign_in(client).status_code == 401


@pytest.mark.parametrize(
    ("username", "password", "field"),
    [
        ("al", PASSWORD, "username"),
        ("alice smith", PASSWORD, "username"),
        ("bob", "short", "password"),
    ],
)
def test_bad_credentials_are_refused_when_creating_users(app, username, password, field):
    with pytest.raises(accounts.ValidationError) as caught:
        accounts.create_user(username, password)
    assert field in caught.value.fields


def test_password_is_hashed_with_scrypt(app, api):
    assert accounts.find_user("alice").password_hash.startswith("scrypt:")
