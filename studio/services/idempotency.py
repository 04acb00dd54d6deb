"""Idempotency keys: a client's retry of a write gets the first answer instead of a second write.

The key is claimed in the same transaction as the write and the answer stored in it
too, so a key is on record exactly when its write committed. Two requests with one key
at once: the second waits on the unique index until the first commits, then replays it.
"""

import hashlib
import re
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.dialects import postgresql, sqlite

from ..extensions import db
from ..models import IdempotencyKey, utcnow
from .errors import Conflict, ServiceError, ValidationError

HEADER = "Idempotency-Key"
KEPT_FOR = timedelta(hours=24)
# Printable ASCII without spaces, as in the IETF draft's examples (UUIDs, random strings);
# no comma either: two Idempotency-Key headers arrive joined by one.
KEY_PATTERN = re.compile(r"[\x21-\x2b\x2d-\x7e]{1,255}")


class IdempotencyKeyReused(ServiceError):
    status = 422
    code = "idempotency_key_reused"


@dataclass(frozen=True)
class FirstAnswer:
    """The answer the first request with a key got."""

    status: int
    body: str
    location: str | None


def clean_key(value: str) -> str:
    """Return the key, or raise ValidationError naming the header."""
    if not KEY_PATTERN.fullmatch(value):
        raise ValidationError(
            {HEADER: "must be one key of 1 to 255 printable ASCII characters, no spaces or commas."}
        )
    return value


def fingerprint(method: str, path: str, body: bytes) -> str:
    """Return what identifies a request: its method, path and body."""
    digest = hashlib.sha256(f"{method} {path}\n".encode())
    digest.update(body)
    return digest.hexdigest()


def claim(user_id: int, key: str, request_hash: str) -> FirstAnswer | None:
    """Reserve the key in the current transaction; return the first answer if it has one."""
    db.session.execute(
        delete(IdempotencyKey).where(
            IdempotencyKey.user_id == user_id, IdempotencyKey.created_at < utcnow() - KEPT_FOR
        )
    )
    dialect = postgresql if db.session.get_bind().dialect.name == "postgresql" else sqlite
    claimed = db.session.execute(
        dialect.insert(IdempotencyKey)
        .values(user_id=user_id, key=key, request_hash=request_hash, created_at=utcnow())
        .on_conflict_do_nothing(index_elements=["user_id", "key"])
        .returning(IdempotencyKey.id)
    ).scalar()
    if claimed is not None:
        return None
    first = db.session.execute(
        select(IdempotencyKey).where(IdempotencyKey.user_id == user_id, IdempotencyKey.key == key)
    ).scalar_one()
    if first.request_hash != request_hash:
        raise IdempotencyKeyReused(
            f"{HEADER} {key!r} was used with another request; send a new key for a new request.",
            {HEADER: "was already used with another request."},
        )
    if first.status is None:  # claimed and answered in one transaction: not expected
        raise Conflict(f"The request with {HEADER} {key!r} has no answer on record.")
    return FirstAnswer(first.status, first.response_body or "", first.location)


def record(user_id: int, key: str, answer: FirstAnswer) -> None:
    """Keep the answer of the request that claimed the key, in its transaction."""
    db.session.execute(
        update(IdempotencyKey)
        .where(IdempotencyKey.user_id == user_id, IdempotencyKey.key == key)
        .values(status=answer.status, response_body=answer.body, location=answer.location)
    )
