"""Admin users, their logins and their API tokens."""

import hashlib
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache as once

from flask_login import UserMixin
from sqlalchemy import and_, bindparam, delete, select, update
from werkzeug.security import check_password_hash, generate_password_hash

from ..extensions import db
from ..models import ApiToken, EndedSession, User, utcnow
from ..resilience.retry import retry_transient
from . import cached_reads, passwords, transactions
from .errors import Conflict, NotFound, ValidationError
from .history import Actor

MAX_PASSWORD_LENGTH = 1024
USERS, TOKENS = User.__table__, ApiToken.__table__
TOKEN_OWNER = select(
    USERS.c.id,
    USERS.c.username,
    USERS.c.is_active,
    USERS.c.session_generation,
    TOKENS.c.id.label("token_id"),
    TOKENS.c.name.label("token_name"),
).join_from(TOKENS, USERS, TOKENS.c.user_id == USERS.c.id)
ENDED = EndedSession.__table__
# A session's user and the sessions they ended that are still unexpired, in one statement:
# one row per ended session, or one with session_id NULL.
SESSION_OWNER = (
    select(
        USERS.c.id,
        USERS.c.username,
        USERS.c.is_active,
        USERS.c.session_generation,
        ENDED.c.session_id,
    )
    .outerjoin(
        ENDED,
        and_(ENDED.c.user_id == USERS.c.id, ENDED.c.expires_at > bindparam("now")),
    )
    .where(USERS.c.id == bindparam("user_id"))
)
USERNAME = re.compile(r"[A-Za-z0-9_.@-]{3,80}")
TOKEN_PREFIX = "stu_"


@once
def _dummy_hash() -> str:
    # Checked when the username is unknown, so a wrong name costs as long as a wrong password.
    return generate_password_hash(secrets.token_hex(16), method="scrypt")


@dataclass(frozen=True, eq=False)
class SignedInUser(UserMixin):
    """Who a session or token belongs to: small enough to cache, so no lookup hits the database."""

    id: int
    username: str
    is_active: bool = True
    # What a browser session is checked against (studio.auth.sessions); tokens ignore them.
    session_generation: int = 1
    ended_sessions: frozenset[str] = frozenset()
    # Signed in by an API token: the token's name, for the history of what it changes.
    token_name: str | None = None

    @property
    def actor(self) -> Actor:
        """Return who this is in the history of the changes they make."""
        return Actor(self.id, self.username, self.token_name)

    @classmethod
    def of(cls, user: User, ended_sessions: frozenset[str] = frozenset()) -> "SignedInUser":
        return cls(user.id, user.username, user.is_active, user.session_generation, ended_sessions)


def hash_token(token: str) -> str:
    """Return the SHA-256 of an API token, as stored."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def validate_credentials(username: str, password: str) -> None:
    """Raise ValidationError unless the username and password are acceptable."""
    errors = {}
    if not USERNAME.fullmatch(username or ""):
        errors["username"] = "must be 3 to 80 letters, digits or . _ @ -"
    shortest = passwords.min_length()
    if len(password or "") < shortest:
        errors["password"] = f"must be at least {shortest} characters."
    elif len(password) > MAX_PASSWORD_LENGTH:
        errors["password"] = f"must be at most {MAX_PASSWORD_LENGTH} characters."
    elif weakness := passwords.weakness(password, username or ""):
        errors["password"] = weakness
    if errors:
        raise ValidationError(errors)


def create_user(username: str, password: str) -> User:
    """Create an active admin."""
    validate_credentials(username, password)
    if find_user(username) is not None:
        raise Conflict(f"User {username} already exists.", {"username": "is taken."})
    user = User(username=username, password_hash=generate_password_hash(password, method="scrypt"))
    db.session.add(user)
    transactions.commit()
    return user


def set_password(user: User, password: str) -> int:
    """Replace the user's password and end all their sessions; return the new generation."""
    validate_credentials(user.username, password)
    password_hash = generate_password_hash(password, method="scrypt")
    return _next_generation(user.id, password_hash=password_hash)


def change_password(user_id: int, current: str, new: str) -> int:
    """Replace a signed-in user's password, given the current one; return the new generation.

    Every session of the user ends; the caller keeps its own by carrying the new generation.
    """
    user = db.session.get(User, user_id)
    if user is None or not user.is_active:
        raise NotFound("This account does not exist any more.")
    if not check_password_hash(user.password_hash, current or ""):
        raise ValidationError({"current_password": "is not your current password."})
    if new == current:
        raise ValidationError({"password": "must differ from the current one."})
    return set_password(user, new)


def end_all_sessions(user_id: int) -> int:
    """End every browser session of the user at once; return the new generation."""
    return _next_generation(user_id)


def _next_generation(user_id: int, **changes: str) -> int:
    # One UPDATE: two changes at once each move the generation on; neither is lost.
    generation = db.session.scalar(
        update(User)
        .where(User.id == user_id)
        .values(session_generation=User.session_generation + 1, **changes)
        .returning(User.session_generation)
    )
    if generation is None:
        raise NotFound("This account does not exist any more.")
    transactions.commit(cached_reads.forget(cached_reads.user_key(user_id)))
    return generation


def end_session(user_id: int, session_id: str, expires_at: datetime) -> None:
    """End one browser session: copies of its cookie are refused until `expires_at`."""
    db.session.execute(
        delete(EndedSession).where(
            EndedSession.user_id == user_id, EndedSession.expires_at <= utcnow()
        )
    )
    db.session.add(EndedSession(user_id=user_id, session_id=session_id, expires_at=expires_at))
    transactions.commit(cached_reads.forget(cached_reads.user_key(user_id)))


def find_user(username: str) -> User | None:
    """Return the user with this name, or None."""
    return db.session.scalar(select(User).where(User.username == username))


@retry_transient
def load_user(user_id: str) -> SignedInUser | None:
    """Return the active user with this id and their ended sessions, or None.

    Cached, so a warm request reads nothing (but see cached_reads.remember's `revocable`).
    """
    if not isinstance(user_id, str) or not user_id.isdigit() or len(user_id) > 9:
        return None

    def load() -> SignedInUser | None:
        rows = db.session.execute(SESSION_OWNER, {"user_id": int(user_id), "now": utcnow()}).all()
        if not rows or not rows[0].is_active:
            return None
        ended = frozenset(row.session_id for row in rows if row.session_id is not None)
        first = rows[0]
        return SignedInUser(
            first.id, first.username, first.is_active, first.session_generation, ended
        )

    return cached_reads.remember(
        cached_reads.user_key(int(user_id)), "AUTH_CACHE_TTL", load, revocable=True
    )


def deactivate_user(username: str) -> None:
    """Stop a user from signing in or using any of their tokens, at once."""
    user = find_user(username)
    if user is None:
        raise NotFound(f"User {username} does not exist.")
    user.is_active = False
    # Should the user come back, the sessions they had do not.
    user.session_generation = User.session_generation + 1
    hashes = db.session.scalars(select(ApiToken.token_hash).where(ApiToken.user_id == user.id))
    keys = [cached_reads.user_key(user.id), *(cached_reads.token_key(value) for value in hashes)]
    transactions.commit(cached_reads.forget(*keys))


def authenticate(username: str, password: str) -> SignedInUser | None:
    """Return the active user these credentials belong to, and note the login."""
    user = find_user(username) if USERNAME.fullmatch(username or "") else None
    if user is None:
        check_password_hash(_dummy_hash(), password or "")
        return None
    if not check_password_hash(user.password_hash, password or "") or not user.is_active:
        return None
    user.last_login_at = utcnow()
    signed_in = SignedInUser.of(user)
    transactions.commit()
    return signed_in


def create_token(username: str, name: str | None = None) -> tuple[ApiToken, str]:
    """Create an API token for the user; return it and the secret, shown only this once."""
    user = find_user(username)
    if user is None:
        raise NotFound(f"User {username} does not exist.")
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(user_id=user.id, name=name, token_hash=hash_token(secret))
    db.session.add(token)
    transactions.commit()
    return token, secret


def revoke_tokens(username: str, token_id: int | None = None) -> int:
    """Delete one of the user's tokens, or all of them; return how many went."""
    user = find_user(username)
    if user is None:
        raise NotFound(f"User {username} does not exist.")
    statement = delete(ApiToken).where(ApiToken.user_id == user.id)
    if token_id is not None:
        statement = statement.where(ApiToken.id == token_id)
    hashes = db.session.scalars(statement.returning(ApiToken.token_hash)).all()
    transactions.commit(cached_reads.forget(*(cached_reads.token_key(value) for value in hashes)))
    return len(hashes)


def list_tokens(username: str) -> list[ApiToken]:
    """Return the user's tokens (never their secrets)."""
    user = find_user(username)
    if user is None:
        raise NotFound(f"User {username} does not exist.")
    return list(db.session.scalars(select(ApiToken).where(ApiToken.user_id == user.id)))


@retry_transient
def user_for_token(secret: str, also_prefetch: Sequence[str] = ()) -> SignedInUser | None:
    """Return the active user owning this API token, or None (cached: one indexed lookup cold).

    `also_prefetch` names cache keys the request will read next, fetched with the token's.
    """
    if not secret.startswith(TOKEN_PREFIX) or len(secret) > 200:
        return None
    token_hash = hash_token(secret)
    if also_prefetch:
        cached_reads.prefetch(cached_reads.token_key(token_hash), *also_prefetch)

    def load() -> SignedInUser | None:
        # The owner's columns alone, in one Core query: no token or user enters the session.
        row = db.session.execute(TOKEN_OWNER.where(TOKENS.c.token_hash == token_hash)).first()
        if row is None or not row.is_active:
            return None
        # A token made without a name is still told apart from the admin's pages.
        token_name = row.token_name or f"token {row.token_id}"
        return SignedInUser(
            row.id, row.username, row.is_active, row.session_generation, token_name=token_name
        )

    return cached_reads.remember(
        cached_reads.token_key(token_hash), "AUTH_CACHE_TTL", load, revocable=True
    )
