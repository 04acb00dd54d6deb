"""CSV export and the all-or-nothing CSV import of paints."""

import codecs
import csv
import io
import json
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import and_, or_, select

from ..extensions import db
from ..models import Paint
from .errors import ValidationError
from .history import Actor
from .paints import bulk_create_paints
from .validation import (
    MAX_STOCK,
    PAINT_FIELDS,
    REQUIRED_PAINT_FIELDS,
    FieldError,
    clean_int,
    clean_price,
    clean_text,
    validate_paint,
)

CSV_COLUMNS = PAINT_FIELDS
# What a supplier's order needs of each paint, then the suggested quantity.
REORDER_PAINT_COLUMNS = (
    "brand",
    "color_code",
    "name",
    "color_type",
    "stock",
    "reorder_level",
    "reorder_quantity",
)
REQUIRED_COLUMNS = REQUIRED_PAINT_FIELDS
# Spreadsheets run a cell that starts with one of these as a formula.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
# Excel reads a CSV file as UTF-8 only after this mark; other tools and the import skip it.
BOM = "\ufeff"
DELIMITERS = {",": "commas", ";": "semicolons"}
MAX_IMPORT_ROWS = 1_000_000
LOOKUP_BATCH = 500
PROGRESS_EVERY = 1000
SHOWN_LENGTH = 40
SAVE_AS_CSV = (
    'In Excel choose File > Save As > "CSV UTF-8 (Comma delimited)"; in LibreOffice '
    'choose Save As "Text CSV" with the character set "Unicode (UTF-8)".'
)
OPTIONAL_COLUMNS = [column for column in CSV_COLUMNS if column not in REQUIRED_COLUMNS]
EXPECTED_HEADER = (
    f"Its first line names the columns, separated by commas or semicolons: "
    f"{' and '.join(REQUIRED_COLUMNS)} are required, {', '.join(OPTIONAL_COLUMNS)} optional "
    f"(an export has them all)."
)
# The paint a row updates or receives is found by its brand and code.
KEY_COLUMNS = ("brand", "color_code")
RECEIVE_COLUMNS = ("brand", "color_code", "quantity", "unit_cost")


@dataclass(frozen=True)
class Layout:
    """The columns a file of one import mode needs and may have, and how to say so."""

    required: tuple[str, ...]
    allowed: tuple[str, ...]
    expected: str


LAYOUTS = {
    "add": Layout(REQUIRED_COLUMNS, CSV_COLUMNS, EXPECTED_HEADER),
    "update": Layout(
        KEY_COLUMNS,
        CSV_COLUMNS,
        "Its first line names the columns, separated by commas or semicolons: brand and "
        "color_code find the paint, and at least one more column says what to change "
        f"({', '.join(column for column in CSV_COLUMNS if column not in KEY_COLUMNS)}).",
    ),
    "receive": Layout(
        RECEIVE_COLUMNS[:3],
        RECEIVE_COLUMNS,
        "Its first line names the columns, separated by commas or semicolons: brand, "
        "color_code and quantity are required, unit_cost optional.",
    ),
}
OTHER_DELIMITERS = {"\t": "tabs", "|": "vertical bars", **DELIMITERS}
WORKBOOK_STARTS = (b"PK\x03\x04", b"\xd0\xcf\x11\xe0")
UTF16_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
# A well-formed multi-byte UTF-8 character, unlikely in Windows-1252 text.
UTF8_CHARACTER = re.compile(
    rb"[\xc2-\xdf][\x80-\xbf]|[\xe0-\xef][\x80-\xbf]{2}|[\xf0-\xf4][\x80-\xbf]{3}"
)


def _cell(value: Any) -> str:
    """Return the value as a cell a spreadsheet shows as text and never runs as a formula.

    A quote in front makes it text. A value that already starts with quotes before a formula
    character gets one more, so that the import, which takes exactly one off such a cell,
    reads back every value written here; a quote before anything else is left alone.
    """
    if value is None:
        return ""
    text = str(value)
    if isinstance(value, str) and text.lstrip("'").startswith(FORMULA_STARTS):
        return "'" + text
    return text


def _uncell(text: str) -> str:
    """Return the value `_cell` wrote as this cell."""
    if text.startswith("'") and text.lstrip("'").startswith(FORMULA_STARTS):
        return text[1:]
    return text


def export_csv(paints: Iterable[Paint]) -> Iterator[str]:
    """Yield a CSV document of the paints, a line at a time, after a byte-order mark."""
    rows = ([getattr(paint, column) for column in CSV_COLUMNS] for paint in paints)
    return export_table(CSV_COLUMNS, rows)


def export_reorder_csv(lines: Iterable[Any]) -> Iterator[str]:
    """Yield the reorder list (reorder.ReorderLine items) as a CSV document to order with."""
    rows = (
        [
            *(getattr(line.paint, column) for column in REORDER_PAINT_COLUMNS),
            line.suggested_quantity,
        ]
        for line in lines
    )
    return export_table((*REORDER_PAINT_COLUMNS, "suggested_quantity"), rows)


def export_table(columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> Iterator[str]:
    """Yield a CSV document of the rows, 64 KB at a time, after a byte-order mark.

    Every cell is written as `_cell` makes it, never as a formula.
    """
    buffer = io.StringIO()
    buffer.write(BOM)
    writer = csv.writer(buffer)
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_cell(value) for value in row])
        if buffer.tell() > 64 * 1024:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


@dataclass
class ImportCheck:
    """What a CSV file would import, every reason it cannot, and how it was read."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    errors: list[tuple[int, str]] = field(default_factory=list)
    # "UTF-8", "UTF-8 with BOM" or "Windows-1252"; None when the check was given text.
    encoding: str | None = None
    delimiter: str = ","

    @property
    def ok(self) -> bool:
        return not self.errors and bool(self.rows)

    @property
    def how_read(self) -> str:
        """Say how the file was read, e.g. "Read as Windows-1252, separated by semicolons." """
        separated = f"separated by {DELIMITERS[self.delimiter]}"
        if self.encoding is None:
            return f"Read with the columns {separated}."
        return f"Read as {self.encoding}, {separated}."


# How much of a file's start tells UTF-16 without a byte-order mark from a stray NUL.
UTF16_SAMPLE_BYTES = 4096


def decode_csv(raw: bytes) -> str:
    """Return the file's text: UTF-8 with or without a byte-order mark, or Windows-1252."""
    return _decode(raw)[0]


def _decode(raw: bytes) -> tuple[str, str]:
    if raw.startswith(WORKBOOK_STARTS):
        raise _unreadable("is an Excel workbook, not a CSV file.")
    if raw.startswith(UTF16_BOMS) or _mostly_nul(raw[:UTF16_SAMPLE_BYTES]):
        raise _unreadable('is UTF-16 text (Excel\'s "Unicode Text"), not UTF-8 or Windows-1252.')
    if b"\x00" in raw:
        line = raw.count(b"\n", 0, raw.index(b"\x00")) + 1
        raise _unreadable(f"holds a NUL character (line {line}), which no CSV file has.")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        # One bad byte in a UTF-8 file would turn every accent into two letters.
        if UTF8_CHARACTER.search(raw):
            raise _unreadable(f"mixes UTF-8 with another (line {line}).") from None
    else:
        if text.startswith(BOM):
            return text[1:], "UTF-8 with BOM"
        return text, "UTF-8"
    try:
        return raw.decode("cp1252"), "Windows-1252"
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise _unreadable(f"is neither UTF-8 nor Windows-1252 text (line {line}).") from None


def _mostly_nul(sample: bytes) -> bool:
    # UTF-16 without its mark: every other byte of Latin text is NUL, not one stray byte.
    return sample.count(b"\x00") * 4 >= len(sample) > 0


def _unreadable(reason: str) -> ValidationError:
    return ValidationError({"file": f"{reason} {SAVE_AS_CSV}"})


def check_import(
    source: bytes | str, on_rows: Callable[[int], None] | None = None, mode: str = "add"
) -> ImportCheck:
    """Validate every row of a CSV file; line numbers count the header as line 1.

    `mode` is what the file is for: "add" new paints (every row must be new), "update"
    existing ones (brand, color_code and the fields to change; an empty cell changes
    nothing), or "receive" a delivery (brand, color_code, quantity, optional unit_cost).
    Whether an update's or a delivery's paints exist is for the import to say.

    `source` is the file as uploaded (bytes, decoded here by `decode_csv`'s rules, which
    raises ValidationError naming the `file` when it is neither UTF-8 nor Windows-1252) or
    its text. The check says what it read in `encoding` (None for text) and `delimiter`
    (`,` or `;`, whichever the header line has more of: column names contain neither).
    `on_rows` hears how many more rows were checked, every PROGRESS_EVERY rows.
    """
    layout = LAYOUTS[mode]
    check = ImportCheck()
    if isinstance(source, bytes):
        text, check.encoding = _decode(source)
    else:
        text = source.removeprefix(BOM)
    first_line = re.split(r"\r\n|\r|\n", text, maxsplit=1)[0]
    check.delimiter = ";" if first_line.count(";") > first_line.count(",") else ","
    if not text.strip():
        check.errors.append((1, f"the file is empty. {layout.expected}"))
        return check
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=check.delimiter)
    # Column names are read as Excel users type them, in any case.
    reader.fieldnames = [name.strip().lower() for name in reader.fieldnames or []]
    problems = _header_problems(reader.fieldnames, first_line, check.delimiter, layout)
    if problems:
        check.errors.append((1, problems))
        return check
    if mode == "add":
        _check_rows(reader, check, on_rows)
    else:
        _check_keyed_rows(reader, check, on_rows, mode)
    if not check.rows and not check.errors:
        check.errors.append((1, "the file has its header line but no paints after it."))
    check.errors.sort()
    return check


def _check_rows(
    reader: csv.DictReader, check: ImportCheck, on_rows: Callable[[int], None] | None
) -> None:
    codes: dict[tuple[str, str], int] = {}
    uncoded: dict[tuple[str, str, str], int] = {}
    try:
        for row in reader:
            line = reader.line_num
            if len(check.rows) >= MAX_IMPORT_ROWS:
                check.errors.append((line, f"the file has more than {MAX_IMPORT_ROWS} rows."))
                break
            _check_row(row, line, check, codes, uncoded)
            if on_rows and (len(check.rows) + len(check.errors)) % PROGRESS_EVERY == 0:
                on_rows(PROGRESS_EVERY)
    except csv.Error as exc:
        check.errors.append((reader.line_num, f"the file is not valid CSV: {exc}."))
    _check_existing_codes(codes, check)
    _check_existing_uncoded(uncoded, check)


def _header_problems(names: list[str], first_line: str, delimiter: str, layout: Layout) -> str:
    missing = [column for column in layout.required if column not in names]
    unknown = [name for name in names if name not in layout.allowed]
    problems = []
    if missing:
        problems.append(f"missing column(s): {', '.join(missing)}")
    if unknown:
        shown = ", ".join(_shown(name) for name in unknown[:5]) + (", …" if unknown[5:] else "")
        problems.append(f"unknown column(s): {shown}")
    if len(set(names)) != len(names):
        problems.append("a column appears twice")
    if not problems and layout.required == KEY_COLUMNS and set(names) <= set(KEY_COLUMNS):
        problems.append("no column to change besides brand and color_code")
    if not problems:
        return ""
    return f"{'; '.join(problems)}. {_header_hint(names, first_line, delimiter, layout)}"


def _header_hint(names: list[str], first_line: str, delimiter: str, layout: Layout) -> str:
    for other, described in OTHER_DELIMITERS.items():
        cells = [cell.strip().strip('"').lower() for cell in first_line.split(other)]
        if other != delimiter and all(column in cells for column in layout.required):
            return (
                f"The columns are separated by {described}: save the file as CSV, "
                f"separated by commas or semicolons. {SAVE_AS_CSV}"
            )
    if not any(name in layout.allowed for name in names):
        return (
            "None of these is a column name: if the first line is a paint, add a line above "
            f"it that names the columns. {layout.expected}"
        )
    return layout.expected


def _shown(value: str) -> str:
    """Return the value quoted for a message: control characters escaped, a long one cut."""
    if len(value) > SHOWN_LENGTH:
        value = f"{value[: SHOWN_LENGTH - 1]}…"
    return json.dumps(value, ensure_ascii=False)


def _uncoded_key(brand: str, name: str, color_type: str | None) -> tuple[str, ...]:
    """Return what makes two paints without a code the same paint: case and spaces do not count."""
    return tuple(" ".join(text.split()).casefold() for text in (brand, name, color_type or ""))


def _described(brand: str, name: str, color_type: str | None) -> str:
    kind = f", color_type {_shown(color_type)}" if color_type else ""
    return f"name {_shown(name)} of {_shown(brand)}{kind} without a color_code"


def _check_row(
    row: dict[str, Any],
    line: int,
    check: ImportCheck,
    codes: dict[tuple[str, str], int],
    uncoded: dict[tuple[str, str, str], int],
) -> None:
    if None in row:
        check.errors.append((line, "the row has more cells than the header."))
        return
    values = {key: _uncell(value) for key, value in row.items() if value not in (None, "")}
    try:
        cleaned = validate_paint(values, from_text=True)
    except ValidationError as exc:
        check.errors.append((line, _row_problems(exc, values)))
        return
    code = cleaned.get("color_code")
    if code is not None:
        key = (cleaned["brand"], code)
        if key in codes:
            check.errors.append((line, f"color_code {code} of {key[0]} repeats line {codes[key]}."))
            return
        codes[key] = line
    else:
        same = (cleaned["brand"], cleaned["name"], cleaned.get("color_type"))
        first = uncoded.setdefault(_uncoded_key(*same), line)
        if first != line:
            check.errors.append((line, f"{_described(*same)} repeats line {first}."))
            return
    check.rows.append(cleaned)


def _check_keyed_rows(
    reader: csv.DictReader,
    check: ImportCheck,
    on_rows: Callable[[int], None] | None,
    mode: str,
) -> None:
    """Check the rows of an update or a delivery: each names one paint, once."""
    clean = _clean_update if mode == "update" else _clean_delivery
    keys: dict[tuple[str, str], int] = {}
    try:
        for row in reader:
            line = reader.line_num
            if len(check.rows) >= MAX_IMPORT_ROWS:
                check.errors.append((line, f"the file has more than {MAX_IMPORT_ROWS} rows."))
                break
            if None in row:
                check.errors.append((line, "the row has more cells than the header."))
                continue
            values = {key: _uncell(value) for key, value in row.items() if value not in (None, "")}
            try:
                cleaned = clean(values)
            except ValidationError as exc:
                check.errors.append((line, _row_problems(exc, values)))
                continue
            key = (cleaned["brand"], cleaned["color_code"])
            if key in keys:
                check.errors.append(
                    (line, f"color_code {key[1]} of {key[0]} repeats line {keys[key]}.")
                )
                continue
            keys[key] = line
            check.rows.append(cleaned)
            if on_rows and (len(check.rows) + len(check.errors)) % PROGRESS_EVERY == 0:
                on_rows(PROGRESS_EVERY)
    except csv.Error as exc:
        check.errors.append((reader.line_num, f"the file is not valid CSV: {exc}."))


def _clean_update(values: dict[str, str]) -> dict[str, Any]:
    """Return an update's fields; an empty cell is left out, so it changes nothing."""
    errors: dict[str, str] = {}
    cleaned: dict[str, Any] = {}
    try:
        cleaned = validate_paint(values, partial=True, from_text=True)
    except ValidationError as exc:
        errors.update(exc.fields)
    for column in KEY_COLUMNS:
        # When another cell was refused there is no cleaned row: the cell itself says.
        present = cleaned.get(column) if cleaned else (values.get(column) or "").strip()
        if column not in errors and not present:
            errors[column] = "is required to find the paint."
    if errors:
        raise ValidationError(errors)
    return cleaned


def _clean_delivery(values: dict[str, str]) -> dict[str, Any]:
    """Return a delivery row's brand, code, quantity (1 or more) and unit cost."""
    cleaned: dict[str, Any] = {}
    errors: dict[str, str] = {}
    rules: dict[str, Callable[[Any], Any]] = {
        "brand": lambda value: clean_text(value, max_length=100, required=True),
        "color_code": lambda value: clean_text(value, max_length=50, required=True),
        "quantity": lambda value: clean_int(value, minimum=1, maximum=MAX_STOCK, from_text=True),
        "unit_cost": lambda value: None if value is None else clean_price(value, from_text=True),
    }
    for column, rule in rules.items():
        try:
            cleaned[column] = rule(values.get(column))
        except FieldError as exc:
            errors[column] = str(exc)
    if errors:
        raise ValidationError(errors)
    return cleaned


def _row_problems(exc: ValidationError, values: dict[str, str]) -> str:
    """Return each field's problem after the value the file has, unless it quotes it already."""
    problems = []
    for name, message in sorted(exc.fields.items()):
        shown = _shown(values[name]) if values.get(name) else ""
        # An empty value, or one the message quotes already, is not repeated.
        value = f" {shown}" if shown not in message else ""
        problems.append(f"{name}{value} {message}")
    return "; ".join(problems)


def _check_existing_codes(seen: dict[tuple[str, str], int], check: ImportCheck) -> None:
    """Refuse rows whose brand and code the inventory has, LOOKUP_BATCH codes a query.

    Each brand's codes are asked for as `brand = … AND color_code IN (…)`, which the
    (brand, color_code) unique index answers; a list of (brand, code) pairs took 50 ms a
    batch at 200,000 paints on PostgreSQL.
    """
    pairs = sorted(seen)
    for start in range(0, len(pairs), LOOKUP_BATCH):
        codes_by_brand: dict[str, list[str]] = {}
        for brand, code in pairs[start : start + LOOKUP_BATCH]:
            codes_by_brand.setdefault(brand, []).append(code)
        wanted = or_(
            *(
                and_(Paint.brand == brand, Paint.color_code.in_(codes))
                for brand, codes in codes_by_brand.items()
            )
        )
        for brand, code in db.session.execute(select(Paint.brand, Paint.color_code).where(wanted)):
            check.errors.append(
                (seen[(brand, code)], f"color_code {code} of {brand} is already in the inventory.")
            )


def _check_existing_uncoded(seen: dict[tuple[str, str, str], int], check: ImportCheck) -> None:
    """Refuse rows without a code whose paint the inventory has, also without a code.

    One pass over the inventory's paints without a code, compared here: SQL's lower() is
    ASCII-only on SQLite, and no index serves a case-insensitive name on either database.
    """
    if not seen:
        return
    query = select(Paint.brand, Paint.name, Paint.color_type).where(Paint.color_code.is_(None))
    for same in db.session.execute(query.execution_options(yield_per=LOOKUP_BATCH * 10)):
        line = seen.pop(_uncoded_key(*same), None)
        if line is not None:
            check.errors.append((line, f"{_described(*same)} is already in the inventory."))


def import_paints(text: str, actor: Actor | None) -> int:
    """Import a clean CSV document in one transaction, or raise ValidationError naming lines."""
    return import_checked(check_import(text), actor)


def import_checked(
    check: ImportCheck, actor: Actor | None, on_batch: Callable[[int], None] | None = None
) -> int:
    """Import the rows of a checked file, all in one transaction; refuse a file with errors."""
    if not check.ok:
        lines = "; ".join(f"line {line}: {reason}" for line, reason in check.errors[:20])
        raise ValidationError({"file": lines}, "The file has errors; nothing was imported.")
    return bulk_create_paints(
        check.rows, kind="import", reason="CSV import", actor=actor, on_batch=on_batch
    )
