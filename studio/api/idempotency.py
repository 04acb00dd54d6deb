"""The Idempotency-Key header on the API's creating writes."""

import functools
from collections.abc import Callable
from typing import Any

from flask import Response, g, make_response, request

from .. import signals
from ..extensions import db
from ..services import idempotency, transactions


def idempotent(view: Callable[..., Any]) -> Callable[..., Any]:
    """Answer a repeat of this write (same Idempotency-Key and body, 24 h) with its first answer.

    The same key with another body is refused with 422. Without the header nothing changes.
    """

    @functools.wraps(view)
    def wrapper(**kwargs: Any) -> Any:
        raw = request.headers.get(idempotency.HEADER)
        if raw is None:
            return view(**kwargs)
        key = idempotency.clean_key(raw)
        request_hash = idempotency.fingerprint(request.method, request.path, request.get_data())
        with transactions.one_transaction():
            first = idempotency.claim(g.api_user.id, key, request_hash)
            if first is not None:
                signals.idempotent_replay.send(view.__name__)
                return replay(first)
            response = make_response(view(**kwargs))
            if not 200 <= response.status_code < 300:
                # Only a write that happened is remembered (refusals are raised, not returned).
                db.session.rollback()
                return response
            answer = idempotency.FirstAnswer(
                response.status_code,
                response.get_data(as_text=True),
                response.headers.get("Location"),
            )
            idempotency.record(g.api_user.id, key, answer)
        return response

    return wrapper


def replay(first: idempotency.FirstAnswer) -> Response:
    response = Response(first.body, status=first.status, mimetype="application/json")
    response.headers["Idempotent-Replayed"] = "true"
    if first.location:
        response.headers["Location"] = first.location
    return response
