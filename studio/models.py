"""Database models of the paint inventory."""

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from flask_login import UserMixin
from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    Computed,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    Numeric,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .extensions import db

MOVEMENT_KINDS = ("initial", "adjustment", "import", "correction", "delivery")
# What an upload does: add new paints, update existing ones, or receive a delivery.
IMPORT_MODES = ("add", "update", "receive")
# What a history entry records: a paint created, edited, deleted, imported or its stock
# moved; or a type or family renamed or merged, which changes many paints at once.
HISTORY_KINDS = ("create", "edit", "delete", "import", "stock", "rename", "merge")
IMPORT_STATUSES = ("checking", "refused", "checked", "importing", "imported", "failed")
# The paint fields whose values come from a list the admins keep (VocabularyTerm).
VOCABULARY_KINDS = ("color_type", "color_family")
CENT = Decimal("0.01")


def utcnow() -> datetime:
    """Return the current time in UTC."""
    return datetime.now(UTC)


class Money(TypeDecorator[Decimal]):
    """Numeric(10, 2) on PostgreSQL; whole cents in an INTEGER on SQLite.

    SQLite has no decimal type and would keep prices as binary floats, so sums of
    prices would drift; cents keep every figure exact on both databases.
    """

    impl = Numeric(10, 2)
    cache_ok = True
    precision = 10

    def load_dialect_impl(self, dialect: Dialect) -> Any:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(Integer())
        return dialect.type_descriptor(Numeric(self.precision, 2))

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None or dialect.name != "sqlite":
            return value
        return int((Decimal(value) * 100).to_integral_value())

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        if dialect.name == "sqlite":
            return (Decimal(value) / 100).quantize(CENT)
        return Decimal(value).quantize(CENT)


class MoneyTotal(Money):
    """A sum of many prices times stock: Numeric(18, 2), whole cents on SQLite as Money."""

    impl = Numeric(18, 2)
    cache_ok = True
    precision = 18


# What a search matches (see studio.search): name, brand, code and description, folded to
# lower case without accents by studio_fold(); coalesce and || because concat_ws is not
# immutable.
SEARCH_TEXT_SQL = (
    "studio_fold(name || ' ' || brand || ' ' || coalesce(color_code, '') || ' ' "
    "|| coalesce(description, ''))"
)


# A paint is at or below its reorder level when this is 0 or less (see services.levels).
AT_OR_BELOW_LEVEL_SQL = text("stock - reorder_level <= 0")
ABOVE_LEVEL_SQL = text("stock - reorder_level > 0")


def _postgresql_only(index: Index) -> Index:
    """Return the index, made on PostgreSQL alone (SQLite searches without indexes)."""
    index.info["dialects"] = ("postgresql",)
    return index.ddl_if(dialect="postgresql")


class PaintFields:
    """The columns an admin fills in: a paint's, and a checked import row's waiting for it."""

    name: Mapped[str] = mapped_column(String(200))
    brand: Mapped[str] = mapped_column(String(100))
    color_code: Mapped[str | None] = mapped_column(String(50))
    color_type: Mapped[str | None] = mapped_column(String(50))
    color_family: Mapped[str | None] = mapped_column(String(50))
    image_url: Mapped[str | None] = mapped_column(String(500))
    stock: Mapped[int] = mapped_column(default=0)
    price: Mapped[Decimal] = mapped_column(Money(), default=Decimal("0.00"))
    description: Mapped[str | None] = mapped_column(Text)
    color_preview: Mapped[str | None] = mapped_column(String(7))
    # The paint is low (and on the reorder list) at or below this stock. The services fill
    # it from LOW_STOCK_THRESHOLD; the server default is that setting's own default.
    reorder_level: Mapped[int] = mapped_column(server_default="5")
    # How many to order when it is; none: enough to bring the stock above the level.
    reorder_quantity: Mapped[int | None]


class Paint(PaintFields, db.Model):
    __tablename__ = "paints"

    id: Mapped[int] = mapped_column(primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )
    version: Mapped[int] = mapped_column(default=1)
    # Kept by the database on every write. Stored on PostgreSQL, so that checking a trigram
    # match reads it instead of folding the text again; virtual (computed when read) on
    # SQLite, which cannot add a stored column to a table. Never loaded with a paint.
    search_text: Mapped[str | None] = mapped_column(
        Text, Computed(SEARCH_TEXT_SQL, persisted=True), deferred=True
    )

    movements: Mapped[list["StockMovement"]] = relationship(
        back_populates="paint", passive_deletes=True, lazy="raise"
    )

    __mapper_args__ = {"version_id_col": version}
    __table_args__ = (
        CheckConstraint("stock >= 0", name="stock_not_negative"),
        CheckConstraint("price >= 0", name="price_not_negative"),
        CheckConstraint("reorder_level >= 0", name="reorder_level_not_negative"),
        CheckConstraint("reorder_quantity >= 1", name="reorder_quantity_positive"),
        # NULLs are distinct in a unique constraint, so only set codes must be unique.
        UniqueConstraint("brand", "color_code"),
        Index("ix_paints_brand_stock", "brand", "stock"),
        Index("ix_paints_color_family_color_type", "color_family", "color_type"),
        # One per sort order of the listing, ending in the id that breaks ties, so any
        # page is read in index order; they also serve the stock and date filters.
        Index("ix_paints_name_id", "name", "id"),
        Index("ix_paints_brand_id", "brand", "id"),
        # Prices follow the brand, so "one brand by price" would otherwise walk most of
        # the price index before meeting that brand's paints.
        Index("ix_paints_brand_price_id", "brand", "price", "id"),
        # A type belongs to one brand or a few, and so to their prices: "Base, cheapest
        # first" would walk the price index past every cheaper brand (migration 0015).
        Index("ix_paints_color_type_price_id", "color_type", "price", "id"),
        Index("ix_paints_color_type_brand_id", "color_type", "brand", "id"),
        # A family's names share its colour words, so its paints come in runs by name.
        Index("ix_paints_color_family_name_id", "color_family", "name", "id"),
        Index("ix_paints_stock_id", "stock", "id"),
        Index("ix_paints_price_id", "price", "id"),
        Index("ix_paints_created_at_id", "created_at", "id"),
        # The paints at or below their own reorder level (a few percent of a shop; see
        # services.levels): in the reorder list's order, and in stock order for the list's
        # low-stock filter (its count, and its pages sorted by stock). On PostgreSQL the
        # first carries what the brand totals add up, so they are read from it alone.
        Index(
            "ix_paints_reorder_brand_name_id",
            "brand",
            "name",
            "id",
            postgresql_include=["stock", "reorder_level", "reorder_quantity"],
            postgresql_where=AT_OR_BELOW_LEVEL_SQL,
            sqlite_where=AT_OR_BELOW_LEVEL_SQL,
        ),
        Index(
            "ix_paints_reorder_stock_id",
            "stock",
            "id",
            postgresql_where=AT_OR_BELOW_LEVEL_SQL,
            sqlite_where=AT_OR_BELOW_LEVEL_SQL,
        ),
        # The paints above their level ("in stock") in stock order: otherwise that filter
        # sorted by stock walked past every paint out of stock or low first (migration 0014).
        Index(
            "ix_paints_above_level_stock_id",
            "stock",
            "id",
            postgresql_where=ABOVE_LEVEL_SQL,
            sqlite_where=ABOVE_LEVEL_SQL,
        ),
        # Search (studio.search): trigrams find a fragment of 3 or more characters
        # anywhere, and a shorter one at the start of a word.
        _postgresql_only(
            Index(
                "ix_paints_search",
                "search_text",
                postgresql_using="gin",
                postgresql_ops={"search_text": "gin_trgm_ops"},
            )
        ),
        # A broad search walks the name order testing each paint's text: from this index
        # alone (studio.services.listing.search_walk).
        _postgresql_only(
            Index("ix_paints_name_id_search", "name", "id", postgresql_include=["search_text"])
        ),
    )

    def __repr__(self) -> str:
        return f"<Paint {self.id} {self.brand} {self.name!r}>"


class PaintTotals(db.Model):
    """Running figures of one brand and colour family: kept by triggers on paints.

    Every insert, update and delete of paints adds its difference to its groups, in the
    same transaction (see migration 0012). A group may have several rows, so that two
    writers never wait for each other's commit; its figures are their sum. A paint
    without a family counts under '' (NULL would not equal itself in the triggers' lookups).
    """

    __tablename__ = "paint_totals"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True
    )
    brand: Mapped[str] = mapped_column(String(100))
    color_family: Mapped[str] = mapped_column(String(50))
    paints: Mapped[int] = mapped_column(BigInteger)
    units: Mapped[int] = mapped_column(BigInteger)
    value: Mapped[Decimal] = mapped_column(MoneyTotal())
    # Above their reorder level, low (in stock, at or below it) and out of stock.
    in_stock: Mapped[int] = mapped_column(BigInteger)
    low_stock: Mapped[int] = mapped_column(BigInteger)
    out_of_stock: Mapped[int] = mapped_column(BigInteger)

    # A writer finds its group's rows by it.
    __table_args__ = (Index("ix_paint_totals_brand_color_family", "brand", "color_family"),)


class StockMovement(db.Model):
    __tablename__ = "stock_movements"

    id: Mapped[int] = mapped_column(primary_key=True)
    paint_id: Mapped[int] = mapped_column(ForeignKey("paints.id", ondelete="CASCADE"))
    delta: Mapped[int]
    stock_after: Mapped[int]
    kind: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str | None] = mapped_column(String(200))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    paint: Mapped[Paint] = relationship(back_populates="movements", lazy="raise")
    user: Mapped["User | None"] = relationship(lazy="joined")

    __table_args__ = (
        CheckConstraint("stock_after >= 0", name="stock_after_not_negative"),
        CheckConstraint(
            "kind IN ({})".format(", ".join(f"'{kind}'" for kind in MOVEMENT_KINDS)),
            name="kind_known",
        ),
        # A paint's history is read newest first.
        Index("ix_stock_movements_paint_id_id", "paint_id", "id"),
        Index("ix_stock_movements_user_id", "user_id"),
    )

    @property
    def username(self) -> str | None:
        """Return the name of the admin who moved the stock, if they still exist."""
        return self.user.username if self.user else None


class HistoryEntry(db.Model):
    """One change to the inventory: when, who, what kind, and each field's old and new value.

    No foreign keys: an entry outlives the paint it names (deleted paints keep their
    history) and the admin who made it, so both are also kept as text. A rename of a type
    or family is one entry for the shop (no paint), however many paints it changed.
    """

    __tablename__ = "history_entries"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True
    )
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    kind: Mapped[str] = mapped_column(String(20))
    user_id: Mapped[int | None]
    username: Mapped[str | None] = mapped_column(String(80))
    # Set when the change came through the API: the name of the admin's token.
    token_name: Mapped[str | None] = mapped_column(String(100))
    paint_id: Mapped[int | None]
    paint_brand: Mapped[str | None] = mapped_column(String(100))
    paint_name: Mapped[str | None] = mapped_column(String(200))
    paint_code: Mapped[str | None] = mapped_column(String(50))
    # {"field": [old, new]}, prices as strings ("4.50"); null for a value not set.
    changes: Mapped[dict[str, Any]] = mapped_column(JSON)
    # The stock change's reason, the import's file, or how many paints a rename changed.
    note: Mapped[str | None] = mapped_column(String(300))

    __table_args__ = (
        CheckConstraint(
            "kind IN ({})".format(", ".join(f"'{kind}'" for kind in HISTORY_KINDS)),
            name="kind_known",
        ),
        # Every listing is newest first, by (created_at, id): a paint's timeline, and the
        # Activity page by admin, by kind and by date, each one range of one index.
        Index("ix_history_entries_paint_id_created_at_id", "paint_id", "created_at", "id"),
        Index("ix_history_entries_user_id_created_at_id", "user_id", "created_at", "id"),
        Index("ix_history_entries_kind_created_at_id", "kind", "created_at", "id"),
        Index("ix_history_entries_created_at_id", "created_at", "id"),
    )


class User(UserMixin, db.Model):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(80), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    is_active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Carried in every session signed in since it last moved on; moving it on (sign out
    # everywhere, a new password, deactivation) ends every one of them at once.
    session_generation: Mapped[int] = mapped_column(default=1, server_default="1")

    def __repr__(self) -> str:
        return f"<User {self.username}>"


class EndedSession(db.Model):
    """A signed-out browser session: a copy of its cookie is refused until it expires."""

    __tablename__ = "ended_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    # The random id the session carried (studio.auth.sessions), not the cookie itself.
    session_id: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (Index("ix_ended_sessions_user_id_expires_at", "user_id", "expires_at"),)


class ApiToken(db.Model):
    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str | None] = mapped_column(String(100))
    # SHA-256 of the token: a stolen table gives no usable credential.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    user: Mapped[User] = relationship(lazy="joined", innerjoin=True)


class IdempotencyKey(db.Model):
    """A client's Idempotency-Key and the answer its request got, kept for 24 hours."""

    __tablename__ = "idempotency_keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(255))
    # SHA-256 of the method, path and body: the same key with another request is refused.
    request_hash: Mapped[str] = mapped_column(String(64))
    status: Mapped[int | None]
    response_body: Mapped[str | None] = mapped_column(Text)
    location: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    __table_args__ = (
        UniqueConstraint("user_id", "key"),
        # Each claim forgets the admin's keys older than a day: found through this index.
        Index("ix_idempotency_keys_user_id_created_at", "user_id", "created_at"),
    )


class CacheEpoch(db.Model):
    """A reset of the whole cache: written when a write's invalidation could not reach Redis.

    Cache keys carry the newest epoch's id; every worker polls it, so a write Redis
    missed stops being served stale within seconds, whoever wrote it and whether or
    not that worker lives.
    """

    __tablename__ = "cache_epochs"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True
    )
    reason: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class VocabularyTerm(db.Model):
    """One allowed value of a paint's type or colour family, in its canonical spelling.

    Paints keep the spelling itself (not an id), so listing, search, CSV and figures read
    it as before; the paint services accept only values in this list (see
    studio.services.vocabularies).
    """

    __tablename__ = "vocabulary_terms"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))
    name: Mapped[str] = mapped_column(String(50))
    # The name case-folded with its spaces collapsed: "Blue", "blue" and " BLUE " are one.
    match_key: Mapped[str] = mapped_column(String(200))

    __table_args__ = (
        CheckConstraint(
            "kind IN ({})".format(", ".join(f"'{kind}'" for kind in VOCABULARY_KINDS)),
            name="kind_known",
        ),
        UniqueConstraint("kind", "match_key"),
    )

    def __repr__(self) -> str:
        return f"<VocabularyTerm {self.kind} {self.name!r}>"


class ImportUpload(db.Model):
    """A CSV file an admin sent: being checked, refused, or checked and waiting for that admin.

    Its rows wait in import_rows, so the confirmation names the upload instead of
    sending the file back; uploads older than IMPORT_UPLOAD_HOURS are forgotten.
    """

    __tablename__ = "import_uploads"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    filename: Mapped[str] = mapped_column(String(255))
    row_count: Mapped[int]
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # (checking -> refused or) checked -> importing -> imported, or failed. A large file is
    # checked and imported in the background. "imported" commits with the paints: a second
    # confirmation finds it and imports nothing.
    status: Mapped[str] = mapped_column(String(20), default="checked")
    # A background job's rows checked or paints inserted so far, and when it last said so.
    progress: Mapped[int] = mapped_column(default=0)
    progress_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    imported_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    error: Mapped[str | None] = mapped_column(String(1000))
    # The file as sent, while a background check needs it.
    content: Mapped[bytes | None] = mapped_column(LargeBinary, deferred=True)
    # How the check read the file, and what it refused ([[line, reason], ...] as JSON).
    encoding: Mapped[str | None] = mapped_column(String(30))
    delimiter: Mapped[str | None] = mapped_column(String(1))
    problems: Mapped[str | None] = mapped_column(Text)
    problem_count: Mapped[int] = mapped_column(default=0)
    # One of IMPORT_MODES; a delivery's reference (its delivery note) is each movement's reason.
    mode: Mapped[str] = mapped_column(String(10), default="add", server_default="add")
    reference: Mapped[str | None] = mapped_column(String(200))

    __table_args__ = (
        CheckConstraint(
            "status IN ({})".format(", ".join(f"'{status}'" for status in IMPORT_STATUSES)),
            name="status_known",
        ),
        CheckConstraint(
            "mode IN ({})".format(", ".join(f"'{mode}'" for mode in IMPORT_MODES)),
            name="mode_known",
        ),
        Index("ix_import_uploads_user_id", "user_id"),
        Index("ix_import_uploads_created_at", "created_at"),
    )


class ImportRow(PaintFields, db.Model):
    """One checked row of an upload, with the paint's columns as it will be inserted.

    A row that updates a paint or receives a delivery leaves empty (NULL) what the file
    does not change, and notes the paint its brand and code matched at the check, with
    that paint's version then.
    """

    __tablename__ = "import_rows"

    upload_id: Mapped[int] = mapped_column(
        ForeignKey("import_uploads.id", ondelete="CASCADE"), primary_key=True
    )
    # The row's place in the file (1 for the first paint), which is the order of import.
    position: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    name: Mapped[str | None] = mapped_column(String(200))
    stock: Mapped[int | None] = mapped_column()
    price: Mapped[Decimal | None] = mapped_column(Money())
    reorder_level: Mapped[int | None] = mapped_column(server_default="5")
    quantity: Mapped[int | None] = mapped_column()
    unit_cost: Mapped[Decimal | None] = mapped_column(Money())
    paint_id: Mapped[int | None] = mapped_column()
    paint_version: Mapped[int | None] = mapped_column()


class PaintOrderChange(db.Model):
    """How many writes have changed one sort order of the paints (PostgreSQL triggers).

    Every insert or delete of paints counts for every order; an update counts for the
    orders of the columns it sets. Each order's count is spread over a few slots, picked
    by the writer's connection, so concurrent writers rarely wait on one row; the count
    is the sum of its slots. Page anchors (below) hold only while it has not moved.
    """

    __tablename__ = "paint_order_changes"

    sort_column: Mapped[str] = mapped_column(String(20), primary_key=True)
    slot: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    changes: Mapped[int] = mapped_column(BigInteger, default=0)


class PaintPageAnchor(db.Model):
    """Every Nth paint of one listing order over all paints, to start deep pages near.

    `position` counts the paints up to and including this one in that order; the key
    columns of the order are copied from the paint. An anchor serves only while the
    order's change count is still `changes_at_build` (see studio.services.anchors).
    """

    __tablename__ = "paint_page_anchors"

    sort: Mapped[str] = mapped_column(String(20), primary_key=True)
    position: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    paint_id: Mapped[int] = mapped_column()
    name: Mapped[str] = mapped_column(String(200))
    brand: Mapped[str] = mapped_column(String(100))
    price: Mapped[Decimal] = mapped_column(Money())
    stock: Mapped[int] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    changes_at_build: Mapped[int] = mapped_column(BigInteger)
