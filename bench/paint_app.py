"""What the two Flask-SQLAlchemy references share: studio's tables, the token check, the JSON.

bench/naive.py (NullPool, the seeds' "before") and bench/peer.py (QueuePool, the seeds'
"after") answer studio's GET /api/v1/paints/<id> with the same JSON fields, so every
detail scenario drives them alike; only the pool and the paint lookup differ.
"""

import hashlib
import os
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any

from flask import Flask, abort, request
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import ForeignKey, Numeric, String, Text, select
from sqlalchemy.engine import make_url
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


db = SQLAlchemy(model_class=Base)


class Paint(db.Model):
    __tablename__ = "paints"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    brand: Mapped[str] = mapped_column(String(100))
    color_code: Mapped[str | None] = mapped_column(String(50))
    color_type: Mapped[str | None] = mapped_column(String(50))
    color_family: Mapped[str | None] = mapped_column(String(50))
    image_url: Mapped[str | None] = mapped_column(String(500))
    stock: Mapped[int]
    price: Mapped[Decimal] = mapped_column(Numeric(10, 2))
    description: Mapped[str | None] = mapped_column(Text)
    color_preview: Mapped[str | None] = mapped_column(String(7))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    version: Mapped[int]


class User(db.Model):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    is_active: Mapped[bool]


class ApiToken(db.Model):
    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    token_hash: Mapped[str] = mapped_column(String(64))


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def paint_json(paint: Paint) -> dict[str, Any]:
    """Return a paint as studio's API shows it."""
    return {
        "id": paint.id,
        "name": paint.name,
        "brand": paint.brand,
        "color_code": paint.color_code,
        "color_type": paint.color_type,
        "color_family": paint.color_family,
        "image_url": paint.image_url,
        "stock": paint.stock,
        "price": f"{paint.price:.2f}",
        "description": paint.description,
        "color_preview": paint.color_preview,
        "created_at": iso(paint.created_at),
        "updated_at": iso(paint.updated_at),
        "version": paint.version,
    }


def check_token() -> None:
    """Refuse the request unless its bearer token belongs to an active user."""
    scheme, _, secret = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        abort(401)
    token_hash = hashlib.sha256(secret.strip().encode()).hexdigest()
    query = (
        select(User.id)
        .join(ApiToken, ApiToken.user_id == User.id)
        .where(ApiToken.token_hash == token_hash, User.is_active)
    )
    if db.session.scalar(query) is None:
        abort(401)


def create_app(name: str, engine_options: dict[str, Any], get_paint: Callable) -> Flask:
    """Build an app on DATABASE_URL (PostgreSQL, no SSL on loopback) serving `get_paint`."""
    app = Flask(name)
    url = make_url(os.environ["DATABASE_URL"]).set(drivername="postgresql+psycopg2")
    app.config["SQLALCHEMY_DATABASE_URI"] = url.render_as_string(hide_password=False)
    app.config["SQLALCHEMY_ENGINE_OPTIONS"] = {
        **engine_options,
        "connect_args": {"sslmode": os.environ.get("DATABASE_SSLMODE", "disable")},
    }
    db.init_app(app)
    app.add_url_rule("/api/v1/paints/<int:paint_id>", view_func=get_paint)
    return app
