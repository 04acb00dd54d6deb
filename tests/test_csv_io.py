"""The CSV format: what export writes import reads back; Excel's files and their messages."""

import csv
import io
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from studio.extensions import db
from studio.models import Paint
from studio.services import csv_io, listing, vocabularies
from studio.services.errors import ValidationError
from studio.services.validation import MAX_PRICE, MAX_STOCK, SPACES

# Starts a spreadsheet would run as a formula, with and without quotes the admin typed.
STARTS = ["", "'", "''", "' ", "=", "'=", "''=", "+", "'+", "-", "'-", "@", "'@"]
SPECIALS = ['"', "'", ",", ";", "=", "-", "+", "@", " ", "é", "€"]
IMAGE_URLS = ["https://example.com/a.png", 'https://example.com/a,b;c?q="x"&d=-1']


def texts(codec: str, max_size: int, multiline: bool = False) -> st.SearchStrategy[str]:
    """Text as a field keeps it: trimmed, not empty, control characters only in descriptions."""
    letters = st.characters(codec=codec, exclude_categories=("Cc", "Cs"))
    specials = st.sampled_from(SPECIALS + (["\n", "\r\n", "\r", "\t"] if multiline else []))
    body = st.lists(st.one_of(letters, specials), max_size=max_size).map("".join)
    return st.builds(
        lambda start, rest: (start + rest).strip(SPACES), st.sampled_from(STARTS), body
    ).filter(bool)


def paints(codec: str) -> st.SearchStrategy[dict]:
    return st.fixed_dictionaries(
        {
            "name": texts(codec, 60),
            "brand": texts(codec, 30),
            "color_code": st.none() | texts(codec, 20),
            "stock": st.integers(0, MAX_STOCK),
            "price": st.decimals(min_value=0, max_value=MAX_PRICE, places=2),
            "reorder_level": st.integers(0, MAX_STOCK),
            "reorder_quantity": st.none() | st.integers(1, MAX_STOCK),
            "color_preview": st.none() | st.from_regex(r"#[0-9A-F]{6}", fullmatch=True),
            "image_url": st.none() | st.sampled_from(IMAGE_URLS),
            "description": st.none() | texts(codec, 200, multiline=True),
        }
    )


def same_name(paint: dict) -> str:
    return " ".join(paint["name"].split()).casefold()


def same_code(paint: dict) -> tuple:
    return (paint["brand"], paint["color_code"] or ("no code", same_name(paint)))


def resaved(text: str, delimiter: str) -> str:
    """Return the CSV text written again with another delimiter, as Excel in Europe saves it."""
    buffer = io.StringIO()
    csv.writer(buffer, delimiter=delimiter).writerows(csv.reader(io.StringIO(text, newline="")))
    return buffer.getvalue()


def fields(row: dict) -> dict:
    return {column: row.get(column) for column in csv_io.CSV_COLUMNS}


READ_AS = {"utf-8-sig": "UTF-8 with BOM", "utf-8": "UTF-8", "cp1252": "Windows-1252"}


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_what_export_writes_import_reads_back(app, data):
    encoding = data.draw(st.sampled_from(sorted(READ_AS)), label="encoding")
    delimiter = data.draw(st.sampled_from([",", ";"]), label="delimiter")
    codec = "cp1252" if encoding == "cp1252" else "utf-8"
    wanted = data.draw(
        st.lists(paints(codec), min_size=1, max_size=5, unique_by=(same_name, same_code)),
        label="paints",
    )
    text = "".join(csv_io.export_csv(Paint(**paint) for paint in wanted))
    if delimiter == ";":
        text = resaved(text, delimiter)
    raw = text.encode() if encoding == "utf-8-sig" else text.removeprefix("\ufeff").encode(codec)
    # Bytes that are also UTF-8 are read as UTF-8: a Windows-1252 file has them only as
    # mojibake such as "Ã©".
    assume(encoding != "cp1252" or not csv_io.UTF8_CHARACTER.search(raw))

    check = csv_io.check_import(raw)

    assert check.errors == []
    assert [fields(row) for row in check.rows] == [fields(paint) for paint in wanted]
    read_as = "UTF-8" if raw.isascii() else READ_AS[encoding]
    assert (check.encoding, check.delimiter) == (read_as, delimiter)


def test_the_issues_values_come_back_through_the_pages(admin, make_paint):
    make_paint(name="'Ere we go", brand="Citadel", color_code="-003", description="=1+1")
    make_paint(name="'=SUM(A1)", brand="Citadel", color_code="@home", price="1234.50")
    exported = admin.get("/admin/paints/export.csv").get_data()
    db.session.query(Paint).delete()

    check = csv_io.check_import(exported)

    assert exported.startswith(b"\xef\xbb\xbfname,brand,") and check.errors == []
    assert [(row["name"], row["color_code"]) for row in check.rows] == [
        ("'=SUM(A1)", "@home"),
        ("'Ere we go", "-003"),
    ]
    assert check.rows[1]["description"] == "=1+1" and check.rows[0]["price"] == Decimal("1234.50")


def test_a_windows_1252_file_separated_by_semicolons_is_read_and_said_so(admin):
    raw = "name;brand;price\r\nCafé crème;Vallejo;4.50\r\nEuro € red;Citadel;3\r\n".encode("cp1252")
    response = admin.post(
        "/admin/paints/import",
        {"file": (io.BytesIO(raw), "excel.csv")},
        content_type="multipart/form-data",
    )
    page = response.get_data(as_text=True)
    assert response.status_code == 200 and "Ready to import 2 paints" in page
    assert "Read as Windows-1252, separated by semicolons." in page
    assert "Café crème" in page and "Euro € red" in page


@pytest.mark.parametrize(
    ("raw", "encoding", "delimiter"),
    [
        (b"name,brand\nA,B\n", "UTF-8", ","),
        (b"\xef\xbb\xbfname,brand\r\nA,B\r\n", "UTF-8 with BOM", ","),
        ("name;brand;description\nÉclat;B;a, b and c\n".encode(), "UTF-8", ";"),
        ("\ufeffname;brand\nA;Bé\n".encode(), "UTF-8 with BOM", ";"),
        ("Name ; BRAND\nA;B\n".encode("cp1252"), "UTF-8", ";"),
        ("name,brand\nCafé,B\n".encode("cp1252"), "Windows-1252", ","),
    ],
)
def test_import_reads_utf8_with_or_without_bom_and_windows_1252(app, raw, encoding, delimiter):
    check = csv_io.check_import(raw)
    assert check.errors == [] and len(check.rows) == 1
    assert (check.encoding, check.delimiter) == (encoding, delimiter)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"PK\x03\x04\x14\x00", "is an Excel workbook, not a CSV file."),
        ("name,brand\nA,B\n".encode("utf-16"), "is UTF-16 text"),
        ("name,brand\nA,B\n".encode("utf-16-le"), "is UTF-16 text"),
        # One stray NUL in a UTF-8 file was called UTF-16 ("Unicode Text").
        (b"name,brand\nA,B\nA\x00B,Citadel\n", "holds a NUL character (line 3)"),
        ("name,brand\nCafé,B\n".encode() + b"Cr\xe8me,B\n", "mixes UTF-8 with another (line 3)"),
        (b"name,brand\nA,B\nC\x81,D\n", "is neither UTF-8 nor Windows-1252 text (line 3)"),
    ],
)
def test_an_unreadable_file_says_how_to_save_it(app, raw, message):
    with pytest.raises(ValidationError) as refused:
        csv_io.check_import(raw)
    said = refused.value.fields["file"]
    assert message in said and '"CSV UTF-8 (Comma delimited)"' in said


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"", "the file is empty. Its first line names the columns"),
        (b"\xef\xbb\xbf\r\n\r\n", "the file is empty."),
        (b"name,brand\r\n", "the file has its header line but no paints after it."),
        (b"name\tbrand\tstock\nA\tB\t1\n", "The columns are separated by tabs"),
        (b"name|brand\nA|B\n", "The columns are separated by vertical bars"),
        (b"Abaddon Black,Citadel,21-25\n", "None of these is a column name"),
        (b"name,colour\nA,B\n", 'missing column(s): brand; unknown column(s): "colour".'),
    ],
)
def test_an_empty_file_or_a_bad_header_says_what_is_expected(app, raw, message):
    check = csv_io.check_import(raw)
    assert [line for line, _ in check.errors] == [1] and not check.rows
    reason = check.errors[0][1]
    assert message in reason
    if "separated by" not in message and "no paints" not in message:
        assert "name and brand are required" in reason


def test_a_row_error_shows_the_value_cut_short(app):
    check = csv_io.check_import(f'name,brand,stock,price\n{"x" * 250},B,1,1\nOk,B,4 pots,"4,5x"\n')
    reasons = dict(check.errors)
    assert f'name "{"x" * 39}…" must be at most 200 characters' in reasons[2]
    assert 'stock "4 pots"' in reasons[3] and 'price "4,5x"' in reasons[3]


def test_a_row_error_is_shown_as_text_on_the_page(admin):
    raw = b'name,brand,price\n"<b>Bold</b>",B,"<script>alert(1)</script>"\n'
    response = admin.post(
        "/admin/paints/import",
        {"file": (io.BytesIO(raw), "paints.csv")},
        content_type="multipart/form-data",
    )
    page = response.get_data(as_text=True)
    assert response.status_code == 422 and "<script>alert(1)</script>" not in page
    assert "price &#34;&lt;script&gt;alert(1)&lt;/script&gt;&#34; must be a number" in page


def test_rows_without_a_code_that_repeat_each_other_are_refused_naming_both_lines(app):
    text = (
        "name,brand,color_code\n"
        "Dark Bone,Citadel,\n"
        "Dark Bone,Vallejo,\n"
        "Dark Bone,Citadel,DB-1\n"
        " dark  BONE ,CITADEL,\n"
    )
    check = csv_io.check_import(text)
    assert check.errors == [
        (5, 'name "dark  BONE" of "CITADEL" without a color_code repeats line 2.')
    ]


def test_a_row_without_a_code_that_the_inventory_has_is_refused(app, make_paint):
    make_paint(name="Dark Bone", brand="Citadel", color_code=None)
    make_paint(name="Flat Red", brand="Vallejo", color_code="70.957")
    text = "name,brand\nDARK BONE,citadel\nFlat Red,Vallejo\nDark Bone,Vallejo\n"
    check = csv_io.check_import(text)
    assert check.errors == [
        (2, 'name "Dark Bone" of "Citadel" without a color_code is already in the inventory.')
    ]
    assert not check.ok


def test_an_export_longer_than_a_batch_streams_every_paint_in_order(admin, make_paint, monkeypatch):
    monkeypatch.setattr(listing, "EXPORT_BATCH", 2)
    for name in ("E", "C", "A", "D", "B"):
        make_paint(name=name, brand="Citadel")
    exported = admin.get("/admin/paints/export.csv?sort=-name").get_data().decode("utf-8-sig")
    assert [row["name"] for row in csv.DictReader(io.StringIO(exported))] == list("EDCBA")


def test_a_code_is_refused_only_with_the_brand_that_has_it(app, make_paint):
    make_paint(brand="Citadel", color_code="21-25")
    make_paint(brand="Vallejo", color_code="70.957")
    text = (
        "name,brand,color_code\n"
        "A,Vallejo,21-25\n"
        "B,Citadel,21-25\n"
        "C,Vallejo,70.957\n"
        "D,Citadel,70.957\n"
    )
    check = csv_io.check_import(text)
    assert check.errors == [
        (3, "color_code 21-25 of Citadel is already in the inventory."),
        (4, "color_code 70.957 of Vallejo is already in the inventory."),
    ]


def test_the_type_tells_paints_without_a_code_apart_in_any_case(app, make_paint):
    vocabularies.ensure_terms("color_type", ["Base", "Layer"])
    make_paint(name="Dark Bone", brand="Citadel", color_code=None, color_type="Base")
    text = (
        "name,brand,color_type\n"
        "Dark Bone,Citadel,layer\n"
        "Dark Bone,Citadel,\n"
        "DARK BONE,Citadel,BASE\n"
        "Dark Bone,Citadel,LAYER\n"
    )
    check = csv_io.check_import(text)
    dark_bone = 'name "Dark Bone" of "Citadel", color_type'
    assert check.errors == [
        (4, f'{dark_bone} "Base" without a color_code is already in the inventory.'),
        (5, f'{dark_bone} "Layer" without a color_code repeats line 2.'),
    ]
