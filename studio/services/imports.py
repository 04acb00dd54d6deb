"""Staged CSV imports: a file is checked once, its rows wait server-side, a confirmation imports.

The admin's browser never carries the file back: the check keeps the clean rows in
`import_rows` under an upload that belongs to that admin, and the confirmation names the
upload. The import is INSERT ... SELECT from those rows (PostgreSQL adds the opening stock
movements in the same statement), so the rows do not travel through Python a second time.
On PostgreSQL a file of more than IMPORT_INLINE_ROWS lines is checked, and then imported,
by a thread of the worker, since neither fits in a request at 200,000 rows (see the
README's "Importing" for the figures); its page follows the progress. An upload's mode says
whether it adds paints (here) or updates existing ones or receives a delivery (the rows'
paints are matched at the check, and the preview and the writes are in bulk_updates).
"""

import csv
import io
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Flask, current_app
from sqlalchemy import (
    DateTime,
    Integer,
    String,
    and_,
    delete,
    func,
    insert,
    literal,
    select,
    update,
)
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import undefer

from ..database import limit_transaction, raise_time_limits
from ..extensions import db
from ..models import (
    IMPORT_MODES,
    VOCABULARY_KINDS,
    ImportRow,
    ImportUpload,
    Paint,
    StockMovement,
    User,
    VocabularyTerm,
    utcnow,
)
from ..resilience.faults import DatabaseUnavailable, cause
from . import bulk_updates, cached_reads, csv_io, history, transactions
from .errors import Conflict, NotFound, ServiceError, ValidationError
from .history import Actor
from .paints import ZERO_PRICE
from .planner import BULK_ROWS, refresh_statistics, vacuum_tables
from .validation import FieldError, clean_text

logger = logging.getLogger(__name__)
# The paint's columns a staged row has; an update or a delivery also has these.
STAGED_COLUMNS = [
    column.name for column in ImportRow.__table__.columns if column.name in Paint.__table__.c
]
DELIVERY_COLUMNS = ["quantity", "unit_cost"]
PREVIEW_ROWS = 20
CLASHES_SHOWN = 10
# The check stops while this much of its time is left, to store the rows it checked.
STAGING_RESERVE_SECONDS = 5.0
IMPORT_REASON = "CSV import"
# A background import inserts this many paints per statement and notes its progress after
# each (a few seconds apart), each statement limited to JOB_STATEMENT_SECONDS.
IMPORT_CHUNK_ROWS = 10_000
JOB_STATEMENT_SECONDS = 120
# A background check gives up after this long; it notes its progress every so many rows.
JOB_SECONDS = 600
PROGRESS_EVERY_ROWS = 10_000
# A refused file's problems kept to show (the page shows 500).
PROBLEMS_KEPT = 1000
# No progress for this long: the worker that imported it is gone, and nothing was imported.
STALLED_SECONDS = 60
# pg_advisory_xact_lock(JOB_LOCK, upload id) keeps two jobs of one upload apart.
JOB_LOCK = 0x5354


class FileTooLarge(ServiceError):
    status = 413
    code = "payload_too_large"


@dataclass(frozen=True)
class ImportLimits:
    """What one admin import may be: its size, its rows, its time, how long it waits."""

    max_bytes: int
    max_rows: int
    seconds: float
    upload_hours: float
    inline_rows: int

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "ImportLimits":
        return cls(
            max_bytes=config["IMPORT_MAX_BYTES"],
            max_rows=config["IMPORT_MAX_ROWS"],
            seconds=config["IMPORT_SECONDS"],
            upload_hours=config["IMPORT_UPLOAD_HOURS"],
            inline_rows=config["IMPORT_INLINE_ROWS"],
        )

    @property
    def size(self) -> str:
        """Return the size limit as people say it: "32 MB", "500 KB"."""
        for unit, name in ((2**20, "MB"), (2**10, "KB")):
            if self.max_bytes >= unit:
                return f"{self.max_bytes / unit:,.1f}".removesuffix(".0") + f" {name}"
        return f"{self.max_bytes:,} bytes"

    def too_large(self) -> str:
        return (
            f"is larger than {self.size}, the most one import takes. Split it into files of "
            f"at most {self.size} and {self.max_rows:,} paints."
        )


@dataclass(frozen=True)
class StagedUpload:
    """An upload as its admin sees it: its state, its progress, its first paints or problems."""

    id: int
    filename: str
    row_count: int
    created_at: datetime
    status: str
    progress: int
    stalled: bool
    error: str | None
    preview: Sequence[Mapping[str, Any]]
    # What a background check refused: a check to show, and how many problems in all.
    check: csv_io.ImportCheck | None = None
    problem_count: int = 0
    mode: str = "add"
    reference: str | None = None
    # For an update or a delivery: what confirming would change, page by page.
    changes: bulk_updates.Preview | None = None


def clean_mode(mode: Any, reference: Any) -> tuple[str, str | None]:
    """Return the import's mode and, for a delivery, its reference; ValidationError if wrong."""
    if mode not in IMPORT_MODES:
        raise ValidationError({"mode": f"must be one of {', '.join(IMPORT_MODES)}."})
    if mode != "receive":
        return mode, None
    try:
        reference = clean_text(reference, max_length=200)
    except FieldError as exc:
        raise ValidationError({"reference": str(exc)}) from None
    if reference is None:
        raise ValidationError(
            {"reference": "is required: the delivery note's number, recorded with each movement."}
        )
    return mode, reference


def stage_upload(
    raw: bytes,
    filename: str,
    user_id: int,
    limits: ImportLimits,
    mode: str = "add",
    reference: str | None = None,
) -> tuple[csv_io.ImportCheck | None, StagedUpload | None]:
    """Check a CSV file and, if it is clean, keep its rows for `user_id` to confirm.

    `mode` is what the file does (see clean_mode and csv_io.check_import). Returns the
    check and the staged upload (None when the file has errors). A file of more than
    `inline_rows` lines is checked in the background on PostgreSQL: then there is no
    check yet, and the upload's page follows it.
    """
    mode, reference = clean_mode(mode, reference)
    if len(raw) > limits.max_bytes:
        raise FileTooLarge(f"The file {limits.too_large()}", {"file": limits.too_large()})
    raise_time_limits(limits.seconds)
    _forget_expired(limits.upload_hours)
    if raw.count(b"\n") > limits.inline_rows and _is_postgresql():
        upload = _new_upload(
            user_id,
            filename,
            status="checking",
            content=raw,
            progress_at=utcnow(),
            mode=mode,
            reference=reference,
        )
        staged = _staged(upload, [])
        transactions.commit()
        _start(background_check, staged.id)
        return None, staged
    stop_at = time.monotonic() + limits.seconds - STAGING_RESERVE_SECONDS
    check = csv_io.check_import(raw, on_rows=_check_guard(limits, stop_at), mode=mode)
    if len(check.rows) > limits.max_rows:
        raise _too_many_rows(limits)
    if not check.ok:
        return check, None
    upload = _new_upload(
        user_id,
        filename,
        status="checked",
        row_count=len(check.rows),
        mode=mode,
        reference=reference,
    )
    _store_rows(upload.id, check.rows, mode)
    staged = _staged(upload, check.rows[:PREVIEW_ROWS], _changes(upload))
    transactions.commit()
    return check, staged


def _changes(upload: ImportUpload, page: int = 1) -> bulk_updates.Preview | None:
    waiting = upload.status in ("checked", "failed") or (
        upload.status == "importing" and _stalled(upload)
    )
    if upload.mode == "add" or not waiting:
        return None
    return bulk_updates.preview(upload.id, upload.mode, page)


def _new_upload(user_id: int, filename: str, **values: Any) -> ImportUpload:
    upload = ImportUpload(
        user_id=user_id, filename=filename[:255], progress=0, problem_count=0, **values
    )
    upload.row_count = upload.row_count or 0
    db.session.add(upload)
    db.session.flush()
    return upload


def background_check(app: Flask, upload_id: int) -> None:
    """Check an upload marked "checking", keep its rows if it is clean, or its problems.

    Run by a thread of the worker that took the file (see background_import for how its
    progress is shown and what happens if the worker dies).
    """
    with app.app_context():
        try:
            limit_transaction(JOB_STATEMENT_SECONDS)
            upload = db.session.scalar(
                select(ImportUpload)
                .where(ImportUpload.id == upload_id, ImportUpload.status == "checking")
                .options(undefer(ImportUpload.content))
            )
            if upload is None:
                return
            limits = ImportLimits.from_config(app.config)
            stop_at = time.monotonic() + JOB_SECONDS
            guard = _check_guard(limits, stop_at, lambda done: _note_progress(upload_id, done))
            check = csv_io.check_import(upload.content or b"", on_rows=guard, mode=upload.mode)
            if len(check.rows) > limits.max_rows:
                raise _too_many_rows(limits)
            upload.encoding, upload.delimiter = check.encoding, check.delimiter
            upload.content = None
            if check.ok:
                upload.status, upload.row_count = "checked", len(check.rows)
                _store_rows(upload_id, check.rows, upload.mode)
            else:
                upload.status, upload.problem_count = "refused", len(check.errors)
                upload.problems = json.dumps(check.errors[:PROBLEMS_KEPT])
            transactions.commit()
        except ServiceError as exc:  # the file refused as a whole: its page says why
            logger.info("upload %s refused: %s", upload_id, exc.fields or exc.message)
            _note_failure(upload_id, exc, "checking")
        except Exception as exc:  # the job must say why it stopped, whatever stopped it
            logger.warning("the check of upload %s failed: %s", upload_id, exc, exc_info=True)
            _note_failure(upload_id, exc, "checking")
        finally:
            db.session.remove()


def _start(job: Callable[[Flask, int], None], upload_id: int) -> None:
    """Run a job of this upload in a thread of this worker, in an app context of its own."""
    threading.Thread(
        target=job,
        args=(current_app._get_current_object(), upload_id),
        name=f"studio-import-{upload_id}",
        daemon=True,
    ).start()


def _check_guard(
    limits: ImportLimits, stop_at: float, on_progress: Callable[[int], None] | None = None
) -> Callable[[int], None]:
    """Return a progress listener that stops a check over the row limit or out of time."""
    checked = 0

    def on_rows(count: int) -> None:
        nonlocal checked
        checked += count
        if checked > limits.max_rows:
            raise _too_many_rows(limits)
        if time.monotonic() > stop_at:
            raise ValidationError(
                {
                    "file": f"took too long to check ({checked:,} rows so far); nothing was "
                    "kept. Split it into smaller files."
                }
            )
        if on_progress and checked % PROGRESS_EVERY_ROWS == 0:
            on_progress(checked)

    return on_rows


def _too_many_rows(limits: ImportLimits) -> ValidationError:
    return ValidationError(
        {
            "file": f"has more than {limits.max_rows:,} paints, the most one import takes. "
            f"Split it into files of at most {limits.max_rows:,} paints."
        }
    )


def _store_rows(upload_id: int, rows: Sequence[Mapping[str, Any]], mode: str = "add") -> None:
    """Keep the checked rows; those of an update or a delivery with the paints they find."""
    columns = STAGED_COLUMNS if mode == "add" else [*STAGED_COLUMNS, *DELIVERY_COLUMNS]
    if db.session.get_bind().dialect.name == "postgresql":
        _copy_rows(upload_id, rows, mode, columns)
    else:
        db.session.execute(
            insert(ImportRow),
            [
                {"upload_id": upload_id, "position": position, **_staged_values(row, mode, columns)}
                for position, row in enumerate(rows, 1)
            ],
        )
    if mode != "add":
        bulk_updates.match_paints(upload_id)


def _staged_values(row: Mapping[str, Any], mode: str, columns: Sequence[str]) -> dict[str, Any]:
    values = {column: row.get(column) for column in columns}
    if mode == "add":  # a new paint's stock and price; an update leaves out what it lacks
        values["stock"] = values["stock"] or 0
        values["price"] = ZERO_PRICE if values["price"] is None else values["price"]
    return values


def _copy_rows(
    upload_id: int, rows: Sequence[Mapping[str, Any]], mode: str, columns: Sequence[str]
) -> None:
    """Send the rows with COPY: 200,000 rows in about a second, where INSERTs take many.

    An empty cell is NULL to COPY's CSV format; the checked values have no empty strings.
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    for position, row in enumerate(rows, 1):
        values = _staged_values(row, mode, columns)
        writer.writerow([upload_id, position, *(values[column] for column in columns)])
    buffer.seek(0)
    columns = ", ".join(["upload_id", "position", *columns])
    statement = f"COPY import_rows ({columns}) FROM STDIN WITH (FORMAT csv)"
    connection = db.session.connection()
    driver = connection.connection.dbapi_connection
    try:
        with driver.cursor() as cursor:
            cursor.copy_expert(statement, buffer)
    except connection.dialect.loaded_dbapi.Error as exc:
        # As SQLAlchemy would have wrapped it: the retry and 503 rules know DBAPIError.
        raise DBAPIError.instance(
            statement, None, exc, connection.dialect.loaded_dbapi.Error
        ) from exc


def get_upload(upload_id: int, user_id: int, limits: ImportLimits, page: int = 1) -> StagedUpload:
    """Return the admin's own upload, with its first rows; NotFound for anyone else's.

    An update's or a delivery's upload comes with a page of what it would change.
    """
    upload = _find(upload_id, user_id, limits)
    if upload.mode != "add":
        return _staged(upload, [], _changes(upload, page))
    preview = db.session.execute(
        select(*(ImportRow.__table__.c[column] for column in STAGED_COLUMNS))
        .where(ImportRow.upload_id == upload.id)
        .order_by(ImportRow.position)
        .limit(PREVIEW_ROWS)
    ).mappings()
    return _staged(upload, [dict(row) for row in preview])


@dataclass(frozen=True)
class Imported:
    """What a confirmation did: imported now, imported before, or started in the background."""

    count: int
    already: bool = False
    started: bool = False
    mode: str = "add"
    # A delivery's units received.
    units: int = 0


def import_upload(upload_id: int, actor: Actor, limits: ImportLimits) -> Imported:
    """Import the admin's checked upload, all of it in one transaction, exactly once.

    A second confirmation (a double click, a retried request) waits for the first one's
    lock and then finds the upload imported, or being imported. Rows whose brand and code
    reached the inventory since the check are refused by name, and nothing is imported.
    On PostgreSQL an upload of more than `inline_rows` paints is imported by a thread of
    this worker; its page shows the progress (see `background_import`).
    """
    raise_time_limits(limits.seconds)
    upload = _find(upload_id, actor.user_id or 0, limits, lock=True)
    # Read before any commit or rollback, which would make the next read a query: after
    # a commit, a query that fails would answer a saved import as failed.
    count, status, mode, progress = upload.row_count, upload.status, upload.mode, upload.progress
    if status == "imported" or (status == "importing" and not _stalled(upload)):
        db.session.rollback()
        return Imported(
            progress if mode != "add" and status == "imported" else count,
            already=status == "imported",
            started=status == "importing",
            mode=mode,
        )
    if status not in ("checked", "failed", "importing"):
        db.session.rollback()
        raise Conflict("This file has not been checked clean; nothing was imported.")
    if mode == "add":
        _refuse_clashes(upload_id)
    else:
        bulk_updates.refuse_changed_paints(upload_id, mode)
    _refuse_retired_values(upload_id)
    if count <= limits.inline_rows or not _is_postgresql():
        done = _import_rows(upload, actor)
        _forget_rows(upload_id)
        return Imported(done.count, mode=mode, units=done.units)
    upload.status, upload.progress, upload.progress_at, upload.error = (
        "importing",
        0,
        utcnow(),
        None,
    )
    transactions.commit()
    _start(background_import, upload_id)
    return Imported(count, started=True, mode=mode)


def background_import(app: Flask, upload_id: int) -> None:
    """Import an upload marked "importing", in one transaction, noting the progress as it goes.

    The progress is written through a connection of its own, so the page sees it while
    the import's transaction is still open; "imported" commits with the paints, so the
    page never shows a success that did not happen. A worker that dies mid-way leaves the
    upload "importing" with no progress for STALLED_SECONDS: its page then offers to
    import it again. An advisory lock keeps a second job waiting until the first is over.
    """
    with app.app_context():
        try:
            limit_transaction(JOB_STATEMENT_SECONDS)
            db.session.execute(select(func.pg_advisory_xact_lock(JOB_LOCK, upload_id)))
            upload = db.session.scalar(
                select(ImportUpload).where(
                    ImportUpload.id == upload_id, ImportUpload.status == "importing"
                )
            )
            if upload is None:  # another job imported it, or it failed
                db.session.rollback()
                return
            username = db.session.scalar(select(User.username).where(User.id == upload.user_id))
            done = _import_rows(
                upload,
                Actor(upload.user_id, username),
                on_progress=lambda done: _note_progress(upload_id, done),
            )
            _forget_rows(upload_id)
            if done.count >= BULK_ROWS:
                vacuum_tables()
        except Exception as exc:  # the job must say why it stopped, whatever stopped it
            logger.warning("the import of upload %s failed: %s", upload_id, exc, exc_info=True)
            _note_failure(upload_id, exc, "importing")
        finally:
            db.session.remove()


def _import_rows(
    upload: ImportUpload, actor: Actor, on_progress: Callable[[int], None] | None = None
) -> Imported:
    """Apply the upload's rows IMPORT_CHUNK_ROWS at a time, mark it imported, commit.

    An added file counts its paints; an update or a delivery the paints it changed,
    which its `progress` keeps once imported (a repeated confirmation says it again).
    Each paint gets a history entry naming the file.
    """
    upload_id, mode, reference = upload.id, upload.mode, upload.reference or ""
    note = f"{IMPORT_REASON}: {upload.filename}"
    changed: list[int] = []
    units = 0
    try:
        for start in range(0, upload.row_count, IMPORT_CHUNK_ROWS):
            stop = start + IMPORT_CHUNK_ROWS
            if mode == "update":
                changed += bulk_updates.apply_update(upload_id, actor, note, start, stop)
            elif mode == "receive":
                paints, received = bulk_updates.apply_delivery(
                    upload_id, actor, note, reference, start, stop
                )
                changed, units = changed + paints, units + received
            else:
                _insert_paints(upload_id, actor, note, start, stop)
            if on_progress:
                on_progress(min(stop, upload.row_count))
    except IntegrityError:
        # Another admin added one of these codes after _refuse_clashes looked.
        db.session.rollback()
        raise _clash_error("") from None
    count = upload.row_count if mode == "add" else len(changed)
    upload.status, upload.imported_at, upload.progress = "imported", utcnow(), count
    if mode == "add":
        refresh_statistics()
    # Each paint changed (their cached copies too: nobody cached a paint just added).
    transactions.commit(cached_reads.paints_changed(*changed))
    return Imported(count, mode=mode, units=units)


def _note_progress(upload_id: int, done: int) -> None:
    with db.engine.begin() as connection:
        connection.execute(
            update(ImportUpload)
            .where(ImportUpload.id == upload_id)
            .values(progress=done, progress_at=utcnow())
        )


def _note_failure(upload_id: int, exc: Exception, status: str) -> None:
    """Say why a job stopped: a check becomes "refused", an import "failed" (to try again)."""
    if isinstance(exc, ValidationError) and exc.fields:
        reason = "The file " + "; ".join(exc.fields.values())
    elif isinstance(exc, ServiceError):
        reason = exc.message
    elif isinstance(exc, DBAPIError | DatabaseUnavailable):
        reason = f"The database stopped the import ({cause(exc)}); nothing was imported."
    else:
        reason = "The import failed on our side; nothing was imported."
    try:
        db.session.rollback()
        db.session.execute(
            update(ImportUpload)
            .where(ImportUpload.id == upload_id, ImportUpload.status == status)
            .values(
                status="refused" if status == "checking" else "failed",
                error=reason[:1000],
                progress=0,
                content=None,
            )
        )
        db.session.commit()
    except Exception:  # the upload stays "importing" and is offered again once stalled
        logger.exception("could not record the failure of upload %s", upload_id)


def _stalled(upload: ImportUpload) -> bool:
    """Return True if a background import has said nothing for STALLED_SECONDS."""
    last = upload.progress_at
    if last is None:
        return True
    if last.tzinfo is None:  # SQLite keeps no time zone
        last = last.replace(tzinfo=UTC)
    return utcnow() - last > timedelta(seconds=STALLED_SECONDS)


def _is_postgresql() -> bool:
    return db.session.get_bind().dialect.name == "postgresql"


def _find(upload_id: int, user_id: int, limits: ImportLimits, lock: bool = False) -> ImportUpload:
    query = select(ImportUpload).where(
        ImportUpload.id == upload_id,
        ImportUpload.user_id == user_id,
        ImportUpload.created_at >= _expiry(limits.upload_hours),
    )
    upload = db.session.scalar(query.with_for_update() if lock else query)
    if upload is None:
        raise NotFound(
            "This import does not exist or has expired; nothing was imported. Check the file again."
        )
    return upload


def _refuse_clashes(upload_id: int) -> None:
    clashes = db.session.execute(
        select(ImportRow.position, ImportRow.brand, ImportRow.color_code)
        .join(
            Paint,
            and_(Paint.brand == ImportRow.brand, Paint.color_code == ImportRow.color_code),
        )
        .where(ImportRow.upload_id == upload_id)
        .order_by(ImportRow.position)
        .limit(CLASHES_SHOWN + 1)
    ).all()
    if not clashes:
        return
    db.session.rollback()
    named = "; ".join(
        f"paint {position:,}: {brand} {code}" for position, brand, code in clashes[:CLASHES_SHOWN]
    )
    more = " and more" if len(clashes) > CLASHES_SHOWN else ""
    raise _clash_error(f" ({named}{more})")


def _refuse_retired_values(upload_id: int) -> None:
    """Refuse rows whose type or family left the lists (renamed, merged) since the check."""
    retired: list[str] = []
    for kind in VOCABULARY_KINDS:
        column = ImportRow.__table__.c[kind]
        listed = select(VocabularyTerm.id).where(
            VocabularyTerm.kind == kind, VocabularyTerm.name == column
        )
        values = db.session.execute(
            select(column)
            .where(ImportRow.upload_id == upload_id, column.is_not(None), ~listed.exists())
            .distinct()
            .limit(CLASHES_SHOWN)
        ).scalars()
        retired.extend(f'{kind} "{value}"' for value in values)
    if not retired:
        return
    db.session.rollback()
    raise Conflict(
        "Nothing was imported: since the file was checked, an admin renamed or merged "
        f"{', '.join(retired)} under Types & families. Check the file again.",
        {"file": "has types or colour families that are no longer in the lists."},
    )


def _clash_error(named: str) -> Conflict:
    return Conflict(
        "Nothing was imported: since the file was checked, paints with the same brand and "
        f"colour code were added to the inventory{named}. "
        "Remove those rows and check the file again.",
        {"file": "has paints that are now in the inventory."},
    )


def _insert_paints(upload_id: int, actor: Actor, note: str, start: int, stop: int) -> None:
    """Copy rows start+1..stop of the upload into paints, their opening stock into movements.

    Each new paint gets its import entry in the history, noting `note` (the file's name).
    """
    now = literal(utcnow(), DateTime(timezone=True))
    staged = ImportRow.__table__
    source = (
        select(*(staged.c[column] for column in STAGED_COLUMNS), now, now, literal(1))
        .where(staged.c.upload_id == upload_id, staged.c.position.between(start + 1, stop))
        .order_by(staged.c.position)
    )
    new_paints = insert(Paint.__table__).from_select(
        [*STAGED_COLUMNS, "created_at", "updated_at", "version"], source
    )
    movement_columns = [
        "paint_id",
        "delta",
        "stock_after",
        "kind",
        "reason",
        "user_id",
        "created_at",
    ]
    movement = (
        literal("import", String),
        literal(IMPORT_REASON, String),
        literal(actor.user_id, Integer),
        now,
    )
    movements = StockMovement.__table__
    if _is_postgresql():
        paint_columns = Paint.__table__.c
        inserted = new_paints.returning(
            paint_columns.id, *(paint_columns[name] for name in STAGED_COLUMNS)
        ).cte()
        moved = (
            insert(movements)
            .from_select(
                movement_columns,
                select(inserted.c.id, inserted.c.stock, inserted.c.stock, *movement).where(
                    inserted.c.stock > 0
                ),
            )
            .returning(movements.c.id)
            .cte()
        )
        # PostgreSQL runs every data-modifying WITH query of the statement.
        db.session.execute(
            history.new_paint_entries(select(inserted), actor, note, now, "postgresql").add_cte(
                moved
            )
        )
        return
    # SQLite lets one writer in at a time (BEGIN IMMEDIATE), so the new paints are
    # exactly those with an id above the largest one before.
    paints = Paint.__table__
    before = db.session.scalar(select(func.max(paints.c.id))) or 0
    db.session.execute(new_paints)
    db.session.execute(
        insert(movements).from_select(
            movement_columns,
            select(paints.c.id, paints.c.stock, paints.c.stock, *movement).where(
                paints.c.id > before, paints.c.stock > 0
            ),
        )
    )
    new = select(paints).where(paints.c.id > before)
    db.session.execute(history.new_paint_entries(new, actor, note, now, "sqlite"))


def _forget_rows(upload_id: int) -> None:
    """Drop an imported upload's rows; the upload itself stays, so a repeat is recognised.

    The import has committed: a failure here is only logged (the rows go with the
    upload when it expires).
    """
    try:
        limit_transaction(JOB_STATEMENT_SECONDS)
        db.session.execute(delete(ImportRow).where(ImportRow.upload_id == upload_id))
        transactions.commit()
    except (DBAPIError, DatabaseUnavailable) as exc:
        logger.warning("could not drop the rows of imported upload %s: %s", upload_id, exc)
        try:
            db.session.rollback()
        except Exception:  # the connection is gone; the session is reset all the same
            logger.debug("rollback after dropping import rows failed", exc_info=True)


def _forget_expired(upload_hours: float) -> None:
    """Delete every admin's uploads older than the limit, with their rows."""
    db.session.execute(
        delete(ImportUpload)
        .where(ImportUpload.created_at < _expiry(upload_hours))
        .execution_options(synchronize_session=False)
    )


def _expiry(upload_hours: float) -> datetime:
    return utcnow() - timedelta(hours=upload_hours)


def _staged(
    upload: ImportUpload,
    preview: Sequence[Mapping[str, Any]],
    changes: bulk_updates.Preview | None = None,
) -> StagedUpload:
    return StagedUpload(
        id=upload.id,
        filename=upload.filename,
        row_count=upload.row_count,
        created_at=upload.created_at,
        status=upload.status,
        progress=upload.progress,
        stalled=upload.status in ("checking", "importing") and _stalled(upload),
        error=upload.error,
        preview=preview,
        check=_refused_check(upload) if upload.status == "refused" else None,
        problem_count=upload.problem_count,
        mode=upload.mode,
        reference=upload.reference,
        changes=changes,
    )


def _refused_check(upload: ImportUpload) -> csv_io.ImportCheck:
    """Return what a background check refused, as the check itself would have said it."""
    errors = [(line, reason) for line, reason in json.loads(upload.problems or "[]")]
    if upload.error:
        errors.insert(0, (1, upload.error))
    return csv_io.ImportCheck(
        errors=errors, encoding=upload.encoding, delimiter=upload.delimiter or ","
    )
