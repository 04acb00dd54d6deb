"""Browser sessions that end on the server: revocable, with idle and absolute time limits.

The signed cookie carries who signed in, a random session id, the user's session
generation at sign-in, when the session started and when it was last used. Every request
checks them against the user as the cached lookup returns it (accounts.load_user), so a
warm request reads nothing more from the database:

- signing out records the session's id as ended: a copy of the cookie is refused;
- signing out everywhere, a new password and deactivation move the generation on;
- a session unused for SESSION_IDLE_MINUTES, or older than SESSION_LIFETIME_HOURS, ends.
"""

import secrets
import time
from collections.abc import MutableMapping
from datetime import UTC, datetime
from typing import Any

from flask import Flask, Request, current_app, session
from flask.sessions import SecureCookieSessionInterface
from flask_login import current_user

from ..services import accounts
from ..services.accounts import SignedInUser

SESSION_ID, GENERATION, STARTED, SEEN = "_sid", "_generation", "_started", "_seen"
# What an ended session loses: who it was, never the CSRF token of a form being shown.
SIGNED_IN_KEYS = ("_user_id", "_fresh", "_id", SESSION_ID, GENERATION, STARTED, SEEN)
# The last use is written into the cookie at most this often, not on every request.
SEEN_GRANULARITY_SECONDS = 60
# The JSON API signs in by token alone.
TOKEN_ONLY_PATHS = "/api/"


class CookieSessionsOutsideApi(SecureCookieSessionInterface):
    """Flask's signed cookie sessions, except under the API, which reads no cookie at all.

    A browser's session means nothing to the API; not opening (and saving) one spares
    each API request the signing serializer and the cookie, and its session is Flask's
    null session, which refuses to be written.
    """

    def open_session(self, app: Flask, request: Request) -> Any:
        if request.path.startswith(TOKEN_ONLY_PATHS):
            return self.null_session_class()
        return super().open_session(app, request)


def now() -> float:
    """Return the wall-clock time in seconds (a cookie outlives processes; tests set it)."""
    return time.time()


def start(cookie: MutableMapping[str, Any], user: SignedInUser) -> None:
    """Stamp a freshly signed-in session with its own id, the user's generation and the time."""
    moment = int(now())
    cookie[SESSION_ID] = secrets.token_urlsafe(24)
    cookie[GENERATION] = user.session_generation
    cookie[STARTED] = cookie[SEEN] = moment


def load_user(user_id: str) -> SignedInUser | None:
    """Return the session's user while the session is current (Flask-Login's user loader)."""
    user = accounts.load_user(user_id)
    moment = int(now())
    if user is None or not is_current(session, user, moment):
        for key in SIGNED_IN_KEYS:
            session.pop(key, None)
        return None
    if moment - session[SEEN] >= min(SEEN_GRANULARITY_SECONDS, idle_seconds() / 10):
        session[SEEN] = moment
    return user


def is_current(cookie: MutableMapping[str, Any], user: SignedInUser, moment: int) -> bool:
    """Tell whether this session is neither ended, nor idle too long, nor too old."""
    session_id, started, seen = cookie.get(SESSION_ID), cookie.get(STARTED), cookie.get(SEEN)
    if not isinstance(session_id, str) or not isinstance(started, int):
        return False
    if not isinstance(seen, int):
        return False
    return (
        cookie.get(GENERATION) == user.session_generation
        and session_id not in user.ended_sessions
        and moment - started < lifetime_seconds()
        and moment - seen < idle_seconds()
    )


def end() -> None:
    """End the current session: every copy of its cookie is refused from now on."""
    if current_user.is_authenticated:
        expires = datetime.fromtimestamp(session[STARTED] + lifetime_seconds(), UTC)
        accounts.end_session(current_user.id, session[SESSION_ID], expires)


def keep(generation: int) -> None:
    """Keep the current session valid under the user's new generation (after a new password)."""
    session[GENERATION] = generation


def idle_seconds() -> float:
    return current_app.config["SESSION_IDLE_MINUTES"] * 60


def lifetime_seconds() -> float:
    return current_app.config["SESSION_LIFETIME_HOURS"] * 3600
