"""Bearer-token authentication for every API route."""

from flask import Response, g, request

from ..services import accounts
from .errors import error_response


def require_token() -> tuple[Response, int, dict[str, str]] | None:
    """Let the request through only with the token of an active user."""
    scheme, _, secret = request.headers.get("Authorization", "").partition(" ")
    user = accounts.user_for_token(secret.strip()) if scheme.lower() == "bearer" else None
    if user is None:
        return error_response(
            401,
            "unauthorized",
            "Send a valid API token as 'Authorization: Bearer <token>'.",
            headers={"WWW-Authenticate": 'Bearer realm="studio"'},
        )
    g.api_user = user
    return None
