"""How studio slows down guessing: sign-in limits, and when a refused client may try again.

Only failed sign-ins count, per (username, address) and per address, each limit in tiers
("5/minute;10/hour;20/day"), so the wait grows with the failures: a minute, an hour, a day.
Nothing is counted per username alone: a stranger failing for `bob` from other addresses
never refuses bob's correct password from his. The counts live in the limiter's storage
(`RATELIMIT_STORAGE_URI`: Redis when there is one), shared by every worker and instance.
"""

import logging
import math
import time
from datetime import datetime

from flask import Flask, Response, request
from flask_limiter.errors import RateLimitExceeded
from flask_limiter.util import get_remote_address
from werkzeug.exceptions import TooManyRequests

from .extensions import limiter

logger = logging.getLogger(__name__)
# For a 429 that did not come from the limiter and does not say when to come back.
DEFAULT_RETRY_SECONDS = 60
UNITS = ((3600, "hour"), (60, "minute"))


HOOKS = ("before_request_funcs", "after_request_funcs", "teardown_request_funcs")


def init_limiter(app: Flask, blueprint: str) -> None:
    """Bind the limiter, its request hooks running for `blueprint`'s requests alone.

    Only the sign-in pages are limited. Flask-Limiter hangs three hooks on the whole app,
    about a tenth of a cached API read's time in the worker; moved to the blueprint's scope
    (Flask's hook mappings, keyed by blueprint name) they cost every other request nothing.
    """
    app_wide = {hooks: list(getattr(app, hooks).get(None, ())) for hooks in HOOKS}
    limiter.init_app(app)
    for hooks, before in app_wide.items():
        scopes = getattr(app, hooks)
        added = [hook for hook in scopes.get(None, ()) if hook not in before]
        scopes[None] = before
        scopes.setdefault(blueprint, []).extend(added)


def address_key() -> str:
    """Return the limiter key of the client's address."""
    return "sign-in-address:" + get_remote_address()


def username_and_address_key() -> str:
    """Return the limiter key of the username typed, from the client's address."""
    username = request.form.get("username", "").strip().casefold()[:80]
    # An address holds no "/", so no username can reach another address's key.
    return f"sign-in:{get_remote_address()}/{username}"


def failed(response: Response) -> bool:
    """Return whether a sign-in was refused for its credentials (the limits count only those)."""
    return response.status_code == 401


def retry_after(exc: TooManyRequests) -> int:
    """Return the seconds until a refused request may succeed: when every limit it hit ends."""
    given = exc.retry_after
    if isinstance(given, datetime):
        return max(1, math.ceil(given.timestamp() - time.time()))
    if given is not None:
        return max(1, int(given))
    ends = []
    try:
        ends = [limit.window.reset_time for limit in limiter.current_limits if limit.breached]
    except Exception:  # the limiter's storage is away: the limit's own window is a fair guess
        logger.warning("could not read when a rate limit ends", exc_info=True)
    if ends:
        return max(1, math.ceil(max(ends) - time.time()))
    if isinstance(exc, RateLimitExceeded):
        return max(1, exc.limit.limit.get_expiry())
    return DEFAULT_RETRY_SECONDS


def describe_wait(seconds: int) -> str:
    """Return a wait in words, rounded up: "40 seconds", "2 minutes", "3 hours"."""
    # From one and a half of a unit on: "90 minutes" reads better than "2 hours".
    size, unit = next(
        ((size, unit) for size, unit in UNITS if seconds >= size * 1.5), (1, "second")
    )
    count = math.ceil(seconds / size)
    return f"{count} {unit}{'' if count == 1 else 's'}"
