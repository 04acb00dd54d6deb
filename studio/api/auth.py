"""Bearer-token authentication for every API route."""

from collections.abc import Callable
from typing import Any

from flask import Response, current_app, g, request

from .. import signals
from ..services import accounts
from .errors import error_response


def prefetches(keys: Callable[..., list[str]]) -> Callable:
    """Declare the cache keys a view reads, so they come with the token's in one round trip."""

    def mark(view: Callable) -> Callable:
        view.cache_keys = keys
        return view

    return mark


def keys_for_this_view() -> list[str]:
    view: Any = current_app.view_functions.get(request.endpoint or "")
    keys = getattr(view, "cache_keys", None)
    return keys(**(request.view_args or {})) if keys else []


def require_token() -> tuple[Response, int, dict[str, str]] | None:
    """Let the request through only with the token of an active user."""
    scheme, _, secret = request.headers.get("Authorization", "").partition(" ")
    user = None
    if scheme.lower() == "bearer":
        user = accounts.user_for_token(secret.strip(), also_prefetch=keys_for_this_view())
    if user is None:
        return error_response(
            401,
            "unauthorized",
            "Send a valid API token as 'Authorization: Bearer <token>'.",
            headers={"WWW-Authenticate": 'Bearer realm="studio"'},
        )
    g.api_user = user
    signals.admin_identified.send("token")
    return None
