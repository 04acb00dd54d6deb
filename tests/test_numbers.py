"""Numbers as people type them: one reading or a refusal naming the field, never a silent x100."""

from decimal import Decimal

import pytest

from studio import create_app
from studio.config import ConfigError
from studio.extensions import db
from studio.models import Paint, StockMovement
from studio.services import csv_io
from studio.services.errors import ValidationError
from studio.services.numbers import NumberError, parse_number
from studio.services.validation import validate_paint

from .conftest import stored

PRICES = [
    ("4,50", "4.50"),
    ("4.50", "4.50"),
    ("4,5", "4.50"),
    ("4", "4.00"),
    ("  4.50  ", "4.50"),
    ("0,99", "0.99"),
    ("0,500", "0.50"),
    ("1 234,50", "1234.50"),
    ("1 234.50", "1234.50"),
    ("1,234.50", "1234.50"),
    ("1.234,50", "1234.50"),
    ("1\u00a0234,50", "1234.50"),  # no-break space, as a French keyboard types it
    ("1\u202f234,50", "1234.50"),  # narrow no-break space
    ("1\u2009234.5", "1234.50"),  # thin space
    ("1 234", "1234.00"),
    ("12 345 678,9", "12345678.90"),
    ("1,234,567", "1234567.00"),
    ("1.234.567", "1234567.00"),
    ("1.234.567,89", "1234567.89"),
    ("1,234,567.89", "1234567.89"),
    ("12345,67", "12345.67"),
    ("+4,50", "4.50"),
    ("-0", "0.00"),
]
REFUSED_PRICES = [
    ("4,500", 'Price "4,500" could mean 4500 or 4.5: write 4500 without a separator'),
    ("1.234", 'Price "1.234" could mean 1234 or 1.234'),
    ("999,999", 'Price "999,999" could mean 999999 or 999.999'),
    ("4,555", "could mean"),
    ("4,5555", "Price must have at most two decimal places."),
    ("1,23.45", "groups of thousands have three digits"),
    ("1 23,45", "groups of thousands have three digits"),
    ("1.234 567,8", "groups of thousands have three digits"),
    ("12,345,67", "groups of thousands have three digits"),
    ("1,234,5", "groups of thousands have three digits"),
    ("4,", "Price must be a number such as 4.50 or 4,50."),
    (",50", "Price must be a number such as 4.50 or 4,50."),
    ("4,,50", "Price must be a number such as 4.50 or 4,50."),
    ("4.5.0,1", "groups of thousands have three digits"),
    ("1e3", "Price must be a number such as"),
    ("1_000", "Price must be a number such as"),
    ("\u0661\u0662", "Price must be a number such as"),  # Arabic-Indic digits
    ("4,50 €", "Price must be a number such as"),
    ("- 4", "Price must be a number such as"),
    ("-4,50", "Price must be between 0.00 and"),
    ("cheap", "Price must be a number such as 4.50 or 4,50."),
]
QUANTITIES = [
    ("5", 5),
    ("5,0", 5),
    ("5.00", 5),
    ("1 000", 1000),
    ("1,000,000", 1000000),
    ("1.000.000", 1000000),
    ("12\u00a0000", 12000),
    ("0", 0),
]
REFUSED_QUANTITIES = [
    ("5,5", "Stock must be a whole number."),
    ("1,000", 'Stock "1,000" could mean 1000 or 1: write 1000 without a separator.'),
    ("1.000", 'Stock "1.000" could mean 1000 or 1'),
    ("\u0661\u0662", "Stock must be a whole number such as 12."),
    ("1e3", "Stock must be a whole number such as 12."),
    ("-1", "Stock must be between 0 and"),
    ("99 999 999 999 999 999", "Stock must be between 0 and"),
]
FORM = {"name": "Flesh Wash", "brand": "Citadel"}


@pytest.mark.parametrize(("typed", "expected"), PRICES)
def test_prices_typed_as_text_are_read_exactly(typed, expected):
    price = validate_paint({"price": typed}, partial=True, from_text=True)["price"]
    assert str(price) == expected


@pytest.mark.parametrize(("typed", "message"), REFUSED_PRICES)
def test_prices_that_are_not_one_number_are_refused_by_name(typed, message):
    with pytest.raises(ValidationError) as refused:
        validate_paint({"price": typed}, partial=True, from_text=True)
    assert list(refused.value.fields) == ["price"]
    assert message.removeprefix("Price ") in refused.value.fields["price"]


@pytest.mark.parametrize(("typed", "expected"), QUANTITIES)
def test_quantities_typed_as_text_are_read_exactly(typed, expected):
    assert validate_paint({"stock": typed}, partial=True, from_text=True) == {"stock": expected}


@pytest.mark.parametrize(("typed", "message"), REFUSED_QUANTITIES)
def test_quantities_that_are_not_one_whole_number_are_refused(typed, message):
    with pytest.raises(ValidationError) as refused:
        validate_paint({"stock": typed}, partial=True, from_text=True)
    assert message.removeprefix("Stock ") in refused.value.fields["stock"]


@pytest.mark.parametrize(
    ("separator", "typed", "expected"),
    [
        (",", "4,500", "4.50"),
        (",", "1.234", "1234.00"),
        (".", "4,500", "4500.00"),
        (".", "1,234", "1234.00"),
        # The setting settles only what is ambiguous.
        (".", "4,50", "4.50"),
        (",", "1,234.50", "1234.50"),
    ],
)
def test_the_shops_decimal_separator_settles_ambiguous_prices(
    app, monkeypatch, separator, typed, expected
):
    monkeypatch.setitem(app.config, "DECIMAL_SEPARATOR", separator)
    assert validate_paint({"price": typed}, partial=True, from_text=True) == {
        "price": Decimal(expected)
    }


def test_the_decimal_separator_setting_is_checked(monkeypatch):
    monkeypatch.setenv("DECIMAL_SEPARATOR", ";")
    with pytest.raises(ConfigError) as refused:
        create_app({"STUDIO_ENV": "testing", "DATABASE_URL": "sqlite://", "SECRET_KEY": "x" * 32})
    assert "DECIMAL_SEPARATOR" in str(refused.value.code)


def test_parse_number_never_guesses_without_being_told():
    with pytest.raises(NumberError):
        parse_number("4,500", example="4.50")
    assert parse_number("4,500", example="4.50", decimal_separator=",") == Decimal("4.5")


# The admin's forms.


@pytest.mark.parametrize(("typed", "expected"), PRICES[:12])
def test_new_paint_form_keeps_the_typed_price(admin, typed, expected):
    response = admin.post("/admin/paints/new", {**FORM, "price": typed, "stock": "1"})
    assert response.status_code == 302
    assert db.session.query(Paint).one().price == Decimal(expected)


@pytest.mark.parametrize(("typed", "message"), REFUSED_PRICES)
def test_new_paint_form_refuses_an_unclear_price_by_name(admin, typed, message):
    response = admin.post("/admin/paints/new", {**FORM, "price": typed})
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert message.replace('"', "&#34;") in page
    assert db.session.query(Paint).count() == 0


def test_price_and_stock_inputs_take_a_comma(admin):
    page = admin.get("/admin/paints/new").get_data(as_text=True)
    assert 'type="number"' not in page
    assert 'inputmode="decimal"' in page and 'inputmode="numeric"' in page
    assert "4,50" in page  # the hint shows how to write it


@pytest.mark.parametrize(
    ("typed", "status", "stock_after"),
    [("5,0", 302, 15), ("5", 302, 15), ("-2", 302, 8), ("5,000", 422, 10), ("5,5", 422, 10)],
)
def test_change_by_reads_the_stock_rule(admin, make_paint, typed, status, stock_after):
    paint = make_paint(stock=10)
    path = f"/admin/paints/{paint.id}"
    response = admin.post(path, {"delta": typed, "reason": "Count"})
    assert response.status_code == status
    assert stored(paint.id).stock == stock_after
    if status == 422:
        assert "Change by" in response.get_data(as_text=True)
        assert db.session.query(StockMovement).filter_by(kind="adjustment").count() == 0


# A CSV file goes by the forms' rule.


@pytest.mark.parametrize(("typed", "expected"), [("4,50", "4.50"), ("1 234,50", "1234.50")])
def test_csv_prices_are_read_as_the_forms_read_them(app, typed, expected):
    check = csv_io.check_import(f'name,brand,stock,price\nWash,Citadel,"5,0","{typed}"\n')
    assert check.errors == []
    assert (check.rows[0]["price"], check.rows[0]["stock"]) == (Decimal(expected), 5)


def test_csv_refuses_an_ambiguous_price_on_its_line(app):
    check = csv_io.check_import('name,brand,price\nWash,Citadel,"4,500"\n')
    assert check.errors and check.errors[0][0] == 2
    assert 'price "4,500" could mean 4500 or 4.5' in check.errors[0][1]


# The API keeps its strict JSON decimal.


@pytest.mark.parametrize(
    "price", ["1e3", "1_000", "\u0661\u0662", "4,50", "1 234.50", "4.555", "0x10", " ", "Infinity"]
)
def test_api_refuses_prices_that_are_not_plain_json_decimals(api, price):
    response = api.post("/api/v1/paints", json={"name": "A", "brand": "B", "price": price})
    assert response.status_code == 422
    assert list(response.get_json()["error"]["fields"]) == ["price"]
    assert db.session.query(Paint).count() == 0


@pytest.mark.parametrize(("price", "expected"), [("4.5", "4.50"), ("12", "12.00"), (4.5, "4.50")])
def test_api_takes_plain_decimals(api, price, expected):
    response = api.post("/api/v1/paints", json={"name": "A", "brand": "B", "price": price})
    assert response.status_code == 201
    assert response.get_json()["price"] == expected


@pytest.mark.parametrize("delta", ["5", "5,0", "\u0661\u0662", 5.0, "1e3"])
def test_api_refuses_a_delta_that_is_not_a_json_integer(api, make_paint, delta):
    paint = make_paint(stock=10)
    response = api.post(f"/api/v1/paints/{paint.id}/stock", json={"delta": delta, "reason": "X"})
    assert response.status_code == 422
    assert list(response.get_json()["error"]["fields"]) == ["delta"]
    assert stored(paint.id).stock == 10
