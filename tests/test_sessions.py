"""Browser sessions end on the server: sign-out, sign out everywhere, a new password,
deactivation, and idle and absolute time limits end every copy of the cookie at once."""

import contextvars
import re
import uuid

import pytest
from redis import Redis
from sqlalchemy import func, select

from studio.auth import sessions
from studio.config import ConfigError
from studio.extensions import cache, db
from studio.models import Paint
from studio.services import accounts

from .conftest import PASSWORD, make_api, make_app, token_from
from .test_cache import counting_statements

NEW_PASSWORD = "a brand new passphrase"


class Clock:
    """The wall clock sessions read, moved on by the test instead of slept through."""

    def __init__(self) -> None:
        self.time = 1_800_000_000.0

    def __call__(self) -> float:
        return self.time

    def advance(self, minutes: float = 0, hours: float = 0) -> None:
        self.time += minutes * 60 + hours * 3600


@pytest.fixture
def clock(monkeypatch) -> Clock:
    moved = Clock()
    monkeypatch.setattr(sessions, "now", moved)
    return moved


def sign_in(client, username="alice", password=PASSWORD):
    page = client.get("/login").get_data(as_text=True)
    data = {"username": username, "password": password, "csrf_token": token_from(page)}
    response = client.post("/login", data=data)
    assert response.status_code == 302, response.get_data(as_text=True)
    return response


def signed_in_client(flask_app, username="alice", password=PASSWORD):
    client = flask_app.test_client()
    sign_in(client, username, password)
    assert signed_in(client)  # the browser follows to the dashboard
    return client


def copy_of(client, flask_app, into=None):
    """Return a client holding a copy of `client`'s session cookie (a stolen cookie)."""
    name = flask_app.config["SESSION_COOKIE_NAME"]
    thief = (into or flask_app).test_client()
    thief.set_cookie(name, client.get_cookie(name).value)
    return thief


def signed_in(client) -> bool:
    response = client.get("/admin/")
    assert response.status_code in (200, 302)
    return response.status_code == 200


def post_form(client, path, data):
    """POST with the CSRF token of the form's page, as a browser does."""
    token = token_from(client.get(path).get_data(as_text=True))
    return client.post(path, data={"csrf_token": token, **data})


def sign_out(client):
    return post_form_from(client, "/admin/", "/logout")


def post_form_from(client, page, path, data=None):
    token = token_from(client.get(page).get_data(as_text=True))
    return client.post(path, data={"csrf_token": token, **(data or {})})


def paint_count() -> int:
    db.session.expire_all()
    return db.session.scalar(select(func.count(Paint.id)))


# --- Sign-out ------------------------------------------------------------------------


def test_a_copy_of_the_cookie_taken_before_sign_out_is_refused_after_it(app, api):
    browser = signed_in_client(app)
    # The thief's copy even holds a form's CSRF token from before the sign-out.
    csrf = token_from(browser.get("/admin/paints/new").get_data(as_text=True))
    stolen = copy_of(browser, app)
    assert sign_out(browser).headers["Location"] == "/login"
    assert not signed_in(browser)
    response = copy_of(stolen, app).get("/admin/")
    assert response.status_code == 302 and response.headers["Location"].startswith("/login")
    before = paint_count()
    posted = copy_of(stolen, app).post(
        "/admin/paints/new", data={"csrf_token": csrf, "name": "Stolen", "brand": "B"}
    )
    assert posted.status_code == 302 and posted.headers["Location"].startswith("/login")
    assert paint_count() == before


def test_a_sessions_user_and_ended_sessions_are_read_in_one_statement(app, api):
    """Loaded on every signed-in page where the cache cannot keep it (several workers
    without Redis): two statements and an ORM object cost each page a round trip more."""
    laptop, phone, tablet = (signed_in_client(app) for _ in range(3))
    sign_out(phone), sign_out(tablet)
    user_id = str(api.user.id)
    cache.clear()
    db.session.expunge_all()  # as a request starts: nothing loaded yet
    with counting_statements() as statements:
        user = accounts.load_user(user_id)
    assert user is not None and user.username == "alice" and len(user.ended_sessions) == 2
    assert len([sql for sql in statements if "users" in sql or "ended_sessions" in sql]) == 1
    assert signed_in(laptop) and not signed_in(phone) and not signed_in(tablet)


def test_signing_out_leaves_the_users_other_sessions_alone(app, api):
    laptop, phone = signed_in_client(app), signed_in_client(app)
    sign_out(phone)
    assert signed_in(laptop) and not signed_in(phone)


def test_a_session_from_before_revocation_is_refused(app, api):
    """A cookie signed before studio stamped sessions (no id, no generation) signs in again."""
    client = app.test_client()
    with client.session_transaction() as session:
        session["_user_id"] = str(api.user.id)
        session["_fresh"] = True
    assert not signed_in(client)


def test_sign_out_everywhere_ends_every_session(app, api):
    laptop, phone = signed_in_client(app), signed_in_client(app)
    copy = copy_of(laptop, app)
    page = phone.get("/account/password").get_data(as_text=True)
    assert "Sign out everywhere" in page
    response = post_form_from(phone, "/account/password", "/logout/everywhere")
    assert response.headers["Location"] == "/login"
    assert not any(signed_in(client) for client in (laptop, phone, copy))
    assert signed_in(signed_in_client(app))  # signing in again works


def test_sign_out_everywhere_needs_a_session(client):
    assert client.post("/logout/everywhere").status_code == 400  # no CSRF token
    token = token_from(client.get("/login").get_data(as_text=True))
    response = client.post("/logout/everywhere", data={"csrf_token": token})
    assert response.headers["Location"].startswith("/login")


# --- Time limits ---------------------------------------------------------------------


def test_a_session_unused_for_the_idle_timeout_ends(app, api, clock):
    browser = signed_in_client(app)
    for _ in range(3):  # in use: each visit within 30 minutes of the last keeps it
        clock.advance(minutes=29)
        assert signed_in(browser)
    clock.advance(minutes=30)
    assert not signed_in(browser)


def test_the_idle_timeout_is_a_setting(app, api, clock, monkeypatch):
    monkeypatch.setitem(app.config, "SESSION_IDLE_MINUTES", 5)
    browser = signed_in_client(app)
    clock.advance(minutes=4)
    assert signed_in(browser)
    clock.advance(minutes=5)
    assert not signed_in(browser)


@pytest.mark.parametrize("hours", [12, 2])
def test_a_session_ends_at_its_absolute_lifetime_however_busy(app, api, clock, monkeypatch, hours):
    if hours != 12:
        monkeypatch.setitem(app.config, "SESSION_LIFETIME_HOURS", hours)
    browser = signed_in_client(app)
    for _ in range(hours * 3 - 1):
        clock.advance(minutes=20)
        assert signed_in(browser)
    clock.advance(minutes=20)
    assert not signed_in(browser)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("SESSION_IDLE_MINUTES", "0"),
        ("SESSION_IDLE_MINUTES", "half an hour"),
        ("SESSION_LIFETIME_HOURS", "-1"),
        # Signing out with these was a 500: the session's end was no date.
        ("SESSION_LIFETIME_HOURS", "100000000"),
        ("SESSION_IDLE_MINUTES", "1e308"),
    ],
)
def test_session_limits_must_be_positive_numbers_within_a_year(monkeypatch, tmp_path, name, value):
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=name):
        make_app(f"sqlite:///{tmp_path / 'x.db'}")


# --- Passwords -------------------------------------------------------------------------


def change_password(client, current=PASSWORD, new=NEW_PASSWORD, again=None):
    data = {"current_password": current, "new_password": new, "confirmation": again or new}
    return post_form(client, "/account/password", data)


def test_a_new_password_ends_other_sessions_and_keeps_this_one(app, api):
    here, elsewhere = signed_in_client(app), signed_in_client(app)
    copy_of_here = copy_of(here, app)
    response = change_password(here)
    assert response.status_code == 302
    assert "Your password is changed" in here.get(response.headers["Location"]).get_data(
        as_text=True
    )
    assert signed_in(here)
    assert not signed_in(elsewhere)
    # A copy taken before the change carries the old generation.
    assert not signed_in(copy_of_here)
    assert accounts.authenticate("alice", PASSWORD) is None
    assert accounts.authenticate("alice", NEW_PASSWORD) is not None


@pytest.mark.parametrize(
    ("current", "new", "again", "message"),
    [
        ("not my password", NEW_PASSWORD, None, "Current password is not your current password."),
        (PASSWORD, NEW_PASSWORD, "something else", "must be the same as the new password"),
        (PASSWORD, "short", None, "New password must be at least"),
        (PASSWORD, PASSWORD, None, "New password must differ from the current one."),
        ("", NEW_PASSWORD, None, "Current password is required."),
        ("x" * 1025, NEW_PASSWORD, None, "Current password is too long."),
        (PASSWORD, "x" * 1025, None, "New password must be at most 1024 characters."),
    ],
)
def test_a_refused_password_change_says_why_and_changes_nothing(
    app, api, current, new, again, message
):
    here, elsewhere = signed_in_client(app), signed_in_client(app)
    response = change_password(here, current, new, again)
    assert response.status_code == 422
    assert message in response.get_data(as_text=True)
    assert signed_in(here) and signed_in(elsewhere)
    assert accounts.authenticate("alice", PASSWORD) is not None


def test_guessing_the_current_password_is_throttled(app, api):
    here = signed_in_client(app)
    statuses = [change_password(here, current=f"guess {n}").status_code for n in range(6)]
    assert statuses == [422] * 5 + [429]


def test_the_password_page_needs_a_session(client):
    response = client.get("/account/password")
    assert response.status_code == 302 and response.headers["Location"].startswith("/login")


def test_change_password_command_prompts_twice_and_ends_every_session(app, api, runner):
    browser = signed_in_client(app)
    result = runner.invoke(
        args=["change-password", "alice"], input=f"{NEW_PASSWORD}\n{NEW_PASSWORD}\n"
    )
    assert result.exit_code == 0, result.output
    assert NEW_PASSWORD not in result.output  # typed hidden
    assert not signed_in(browser)
    assert accounts.authenticate("alice", NEW_PASSWORD) is not None


@pytest.mark.parametrize(
    ("username", "typed", "message"),
    [
        ("nobody", f"{NEW_PASSWORD}\n{NEW_PASSWORD}\n", "User nobody does not exist."),
        ("alice", "short\nshort\n", "at least"),
    ],
)
def test_change_password_command_refuses_bad_input(app, api, runner, username, typed, message):
    result = runner.invoke(args=["change-password", username], input=typed)
    assert result.exit_code != 0 and message in result.output
    assert accounts.authenticate("alice", PASSWORD) is not None


def test_change_password_command_reads_stdin(app, api, runner):
    result = runner.invoke(
        args=["change-password", "alice", "--password-stdin"], input=NEW_PASSWORD + "\n"
    )
    assert result.exit_code == 0, result.output
    assert accounts.authenticate("alice", NEW_PASSWORD) is not None


# --- Cost ----------------------------------------------------------------------------


def test_a_warm_request_reads_nothing_for_the_session(app, api, make_paint):
    browser = signed_in_client(app)
    paint = make_paint()
    for path in ("/admin/", "/admin/paints", f"/admin/paints/{paint.id}"):
        browser.get(path)
        with counting_statements() as statements:
            assert browser.get(path).status_code == 200
        # Only the (uncached) stock history may be read; never the user or their sessions.
        assert not [sql for sql in statements if re.search(r"FROM (users|ended_sessions)\b", sql)]


# --- Several instances sharing the database ------------------------------------------


@pytest.fixture(params=["redis", "WEB_CONCURRENCY", "STUDIO_INSTANCES"])
def instances(request, committed_app, extra_apps, monkeypatch):
    """Two app instances (or workers) on one database: the same user cached in each.

    Shared through Redis, or each in its own in-process cache, told how many processes
    serve (two workers of one instance, or two instances).
    """
    settings = {"SECRET_KEY": "shared-" + "k" * 32}
    prefix = None
    if request.param == "redis":
        redis_url = request.getfixturevalue("redis_url")
        prefix = f"studio-test-{uuid.uuid4().hex[:8]}:"
        settings.update(REDIS_URL=redis_url, CACHE_KEY_PREFIX=prefix)
    else:
        monkeypatch.delenv("REDIS_URL", raising=False)
        monkeypatch.setenv(request.param, "2")
    pair = [extra_apps(**settings) for _ in range(2)]
    make_api(committed_app)
    db.session.remove()
    yield pair
    if prefix:
        redis = Redis.from_url(settings["REDIS_URL"])
        keys = list(redis.scan_iter(prefix + "*"))
        if keys:
            redis.delete(*keys)


def run_command(flask_app, *args: str, typed: str | None = None):
    """Run a flask command on this instance, outside the test's own app context."""
    runner = flask_app.test_cli_runner()
    result = contextvars.Context().run(runner.invoke, args=list(args), input=typed)
    assert result.exit_code == 0, result.output
    return result.output


def end_on(first, browser, how: str) -> None:
    if how == "sign out":
        sign_out(browser)
    elif how == "sign out everywhere":
        post_form_from(browser, "/account/password", "/logout/everywhere")
    elif how == "new password":
        run_command(first, "change-password", "alice", "--password-stdin", typed=NEW_PASSWORD)
    else:
        run_command(first, "deactivate-admin", "alice")


@pytest.mark.parametrize("how", ["sign out", "sign out everywhere", "new password", "deactivate"])
def test_a_session_ended_on_one_instance_is_refused_at_once_by_the_other(instances, how):
    first, second = instances
    browser = signed_in_client(first)
    copy = copy_of(browser, first, into=second)
    for _ in range(2):  # the user is in the second instance's cache now
        assert signed_in(copy)
    end_on(first, browser, how)
    assert not signed_in(copy)


@pytest.mark.parametrize("how", [("revoke-token", "alice", "--all"), ("deactivate-admin", "alice")])
def test_a_token_revoked_on_one_instance_is_refused_at_once_by_the_other(instances, how):
    first, second = instances
    secret = run_command(first, "create-token", "alice").strip().splitlines()[-1]
    headers = {"Authorization": f"Bearer {secret}"}
    client = second.test_client()
    for _ in range(2):  # the token is in the second instance's cache now
        assert client.get("/api/v1/stats", headers=headers).status_code == 200
    run_command(first, *how)
    assert client.get("/api/v1/stats", headers=headers).status_code == 401


def test_an_ended_session_can_sign_in_again_at_the_first_try(app, api, clock):
    browser = signed_in_client(app)
    clock.advance(hours=1)
    # The page that finds the session ended shows a sign-in form whose token still works.
    page = browser.get("/login?next=/admin/paints").get_data(as_text=True)
    data = {"username": "alice", "password": "wrong password", "csrf_token": token_from(page)}
    refused = browser.post("/login", data=data)
    assert refused.status_code == 401
    data = {"username": "alice", "password": PASSWORD, "csrf_token": token_from(refused.text)}
    assert browser.post("/login", data=data).status_code == 302
    assert signed_in(browser)


def test_the_api_neither_reads_nor_answers_with_a_session_cookie(app, api, make_paint):
    """The API signs in by token alone: a browser's session cookie changes nothing there."""
    paint = make_paint()
    browser = signed_in_client(app)
    headers = {"Authorization": api.headers["Authorization"]}
    response = browser.get(f"/api/v1/paints/{paint.id}", headers=headers)
    assert response.status_code == 200
    assert "Set-Cookie" not in response.headers
    assert "Cookie" not in response.headers.get("Vary", "")
    # Without the token the cookie of a signed-in admin is no credential.
    assert browser.get(f"/api/v1/paints/{paint.id}").status_code == 401
    assert signed_in(browser)  # and the browser's session itself goes on
