"""CSV export and the all-or-nothing CSV import of paints."""

import csv
import io
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select, tuple_

from ..extensions import db
from ..models import Paint
from .errors import ValidationError
from .paints import bulk_create_paints
from .validation import PAINT_FIELDS, REQUIRED_PAINT_FIELDS, validate_paint

CSV_COLUMNS = PAINT_FIELDS
REQUIRED_COLUMNS = REQUIRED_PAINT_FIELDS
# Spreadsheets run a cell that starts with one of these as a formula.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
MAX_IMPORT_ROWS = 1_000_000
LOOKUP_BATCH = 500
PROGRESS_EVERY = 1000


def _cell(value: Any) -> str:
    if value is None:
        return ""
    text = str(value)
    if isinstance(value, str) and text.startswith(FORMULA_STARTS):
        return "'" + text
    return text


def export_csv(paints: Iterable[Paint]) -> Iterator[str]:
    """Yield a CSV document of the paints, a line at a time."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    for paint in paints:
        writer.writerow([_cell(getattr(paint, column)) for column in CSV_COLUMNS])
        if buffer.tell() > 64 * 1024:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


@dataclass
class ImportCheck:
    """What a CSV file would import, and every reason it cannot."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    errors: list[tuple[int, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors and bool(self.rows)


def decode_csv(raw: bytes) -> str:
    """Return the file's text; UTF-8 (with or without a byte-order mark) is expected."""
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValidationError(
            {"file": f"is not UTF-8 text (bad byte at position {exc.start})."}
        ) from None


def check_import(text: str, on_rows: Callable[[int], None] | None = None) -> ImportCheck:
    """Validate every row of a CSV document; line numbers count the header as line 1.

    `on_rows` hears how many more rows were checked, every PROGRESS_EVERY rows.
    """
    check = ImportCheck()
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = reader.fieldnames or []
    problems = _header_problems(header)
    if problems:
        check.errors.append((1, problems))
        return check
    seen: dict[tuple[str, str], int] = {}
    try:
        for row in reader:
            line = reader.line_num
            if len(check.rows) >= MAX_IMPORT_ROWS:
                check.errors.append((line, f"the file has more than {MAX_IMPORT_ROWS} rows."))
                break
            _check_row(row, line, check, seen)
            if on_rows and (len(check.rows) + len(check.errors)) % PROGRESS_EVERY == 0:
                on_rows(PROGRESS_EVERY)
    except csv.Error as exc:
        check.errors.append((reader.line_num, f"the file is not valid CSV: {exc}."))
    _check_existing_codes(seen, check)
    if not check.rows and not check.errors:
        check.errors.append((1, "the file has no paints in it."))
    check.errors.sort()
    return check


def _header_problems(header: list[str]) -> str:
    names = [name.strip() for name in header]
    missing = [column for column in REQUIRED_COLUMNS if column not in names]
    unknown = [name for name in names if name not in CSV_COLUMNS]
    problems = []
    if missing:
        problems.append(f"missing column(s): {', '.join(missing)}")
    if unknown:
        problems.append(f"unknown column(s): {', '.join(unknown) or '(blank)'}")
    if len(set(names)) != len(names):
        problems.append("a column appears twice")
    return "; ".join(problems) + ("." if problems else "")


def _check_row(row: dict[str, Any], line: int, check: ImportCheck, seen: dict) -> None:
    if None in row:
        check.errors.append((line, "the row has more cells than the header."))
        return
    values = {key.strip(): value for key, value in row.items() if value not in (None, "")}
    try:
        cleaned = validate_paint(values, from_text=True)
    except ValidationError as exc:
        reasons = "; ".join(f"{name} {message}" for name, message in sorted(exc.fields.items()))
        check.errors.append((line, reasons))
        return
    code = cleaned.get("color_code")
    if code is not None:
        key = (cleaned["brand"], code)
        if key in seen:
            check.errors.append((line, f"color_code {code} of {key[0]} repeats line {seen[key]}."))
            return
        seen[key] = line
    check.rows.append(cleaned)


def _check_existing_codes(seen: dict[tuple[str, str], int], check: ImportCheck) -> None:
    keys = list(seen)
    for start in range(0, len(keys), LOOKUP_BATCH):
        batch = keys[start : start + LOOKUP_BATCH]
        existing = db.session.execute(
            select(Paint.brand, Paint.color_code).where(
                tuple_(Paint.brand, Paint.color_code).in_(batch)
            )
        )
        for brand, code in existing:
            check.errors.append(
                (seen[(brand, code)], f"color_code {code} of {brand} is already in the inventory.")
            )


def import_paints(text: str, user_id: int | None) -> int:
    """Import a clean CSV document in one transaction, or raise ValidationError naming lines."""
    return import_checked(check_import(text), user_id)


def import_checked(
    check: ImportCheck, user_id: int | None, on_batch: Callable[[int], None] | None = None
) -> int:
    """Import the rows of a checked file, all in one transaction; refuse a file with errors."""
    if not check.ok:
        lines = "; ".join(f"line {line}: {reason}" for line, reason in check.errors[:20])
        raise ValidationError({"file": lines}, "The file has errors; nothing was imported.")
    return bulk_create_paints(
        check.rows, kind="import", reason="CSV import", user_id=user_id, on_batch=on_batch
    )
