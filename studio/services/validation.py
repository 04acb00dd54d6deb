"""Field rules for paints, shared by every front end."""

import re
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

from flask import current_app, has_app_context

from ..models import VOCABULARY_KINDS
from . import vocabularies
from .errors import ValidationError
from .numbers import NumberError, parse_number

MAX_STOCK = 1_000_000_000
MAX_PRICE = Decimal("99999999.99")
MAX_INT = 2_147_483_647
# Longer texts are refused before int() has to read them; well past every bound.
MAX_TEXT_INT = 10**15
TEXT_PRICE_EXAMPLE = "4.50 or 4,50"
JSON_PRICE_EXAMPLE = '4.50 (a JSON number, or a string of digits with "." and at most two decimals)'
# What JSON may send as a price in a string: plain digits, at most two decimals, no
# exponent, underscore, sign or non-ASCII digit (all of which Decimal() would take).
PLAIN_DECIMAL = re.compile(r"(-?)([0-9]+)(?:\.([0-9]+))?")
MAX_PRICE_DIGITS = len(str(int(MAX_PRICE)))
COLOR_PREVIEW = re.compile(r"#[0-9A-Fa-f]{6}")
# Unicode's control characters (Cc); a multi-line text may hold tabs and line breaks.
CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f-\x9f]")
CONTROL_CHARS_MULTILINE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
# What a text's ends are trimmed of: exactly the white space of \s in the OpenAPI document's
# patterns (ECMAScript's), so that the document and the API read text alike.
SPACES = "\t\n\x0b\x0c\r \xa0\u1680" + "".join(map(chr, range(0x2000, 0x200B)))
SPACES += "\u2028\u2029\u202f\u205f\u3000\ufeff"
# An http(s) address with a host and no white space, the scheme in any case; no brackets
# in the host (an IPv6 literal), which urlsplit() and browsers would have to make sense of.
HTTP_URL = re.compile(rf"[Hh][Tt][Tt][Pp][Ss]?://[^{SPACES}/?#\[\]]+(?:[/?#][^{SPACES}]*)?")


class FieldError(ValueError):
    """One field's value breaks its rule; the message is shown next to the field."""


def clean_text(
    value: Any, *, max_length: int, required: bool = False, multiline: bool = False
) -> str | None:
    """Return the trimmed text, None for an empty optional value."""
    if value is None:
        if required:
            raise FieldError("is required.")
        return None
    if not isinstance(value, str):
        raise FieldError("must be a string.")
    # Checked as sent, before trimming, as the OpenAPI document's maxLength and pattern are.
    if (CONTROL_CHARS_MULTILINE if multiline else CONTROL_CHARS).search(value):
        raise FieldError("must not contain control characters.")
    if len(value) > max_length:
        raise FieldError(f"must be at most {max_length} characters.")
    value = value.strip(SPACES)
    if not value:
        if required:
            raise FieldError("is required.")
        return None
    return value


def clean_int(value: Any, *, minimum: int, maximum: int, from_text: bool = False) -> int:
    """Return the whole number within [minimum, maximum].

    From a form or a file, text is read by the rule of `numbers` (so `5,0` is 5, and
    `1,000` is refused as ambiguous); otherwise only a JSON integer is a whole number.
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        raise FieldError("is required.")
    if from_text and isinstance(value, str):
        number = _read_text(value, example="12", whole=True)
        if number != number.to_integral_value():
            raise FieldError("must be a whole number.")
        if abs(number) > MAX_TEXT_INT:
            raise FieldError(f"must be between {minimum} and {maximum}.")
        value = int(number)
    if isinstance(value, bool) or not isinstance(value, int):
        raise FieldError("must be a whole number.")
    if not minimum <= value <= maximum:
        raise FieldError(f"must be between {minimum} and {maximum}.")
    return value


def clean_price(value: Any, *, from_text: bool = False) -> Decimal:
    """Return the price as a Decimal with two places; refuse more precision than cents.

    JSON gives a number or a string of plain digits with an optional `.` and at most
    two decimals; a form or a file gives text read by the rule of `numbers`.
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        raise FieldError("is required.")
    if from_text and isinstance(value, str):
        price = _read_text(value, example=TEXT_PRICE_EXAMPLE)
    else:
        price = _read_json_price(value)
    if not Decimal(0) <= price <= MAX_PRICE:
        raise FieldError(f"must be between 0.00 and {MAX_PRICE}.")
    if price.is_zero():
        price = price.copy_abs()  # -0 is 0.00, not -0.00
    if price != price.quantize(Decimal("0.01")):
        raise FieldError("must have at most two decimal places.")
    return price.quantize(Decimal("0.01"))


def _read_json_price(value: Any) -> Decimal:
    """Return a price as JSON sends it: a number, or a string of plain digits."""
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal | str):
        raise FieldError(f"must be a number such as {JSON_PRICE_EXAMPLE}.")
    if isinstance(value, str):
        plain = PLAIN_DECIMAL.fullmatch(value)
        if not plain:
            raise FieldError(f"must be a number such as {JSON_PRICE_EXAMPLE}.")
        sign, whole, decimals = plain.groups()
        if len(decimals or "") > 2:
            raise FieldError("must have at most two decimal places.")
        if sign or len(whole) > MAX_PRICE_DIGITS:
            raise FieldError(f"must be between 0.00 and {MAX_PRICE}.")
        return Decimal(value)
    # A JSON number, which the API reads as a Decimal.
    price = Decimal(repr(value) if isinstance(value, float) else value)
    if not price.is_finite():
        raise FieldError(f"must be a number such as {JSON_PRICE_EXAMPLE}.")
    return price


def _read_text(text: str, *, example: str, whole: bool = False) -> Decimal:
    """Return the number typed in `text`, by the shop's DECIMAL_SEPARATOR if it has one."""
    preferred = current_app.config.get("DECIMAL_SEPARATOR", "") if has_app_context() else ""
    try:
        return parse_number(text, example=example, whole=whole, decimal_separator=preferred)
    except NumberError as exc:
        raise FieldError(str(exc)) from None


def clean_image_url(value: Any) -> str | None:
    """Return an http(s) URL, or None."""
    url = clean_text(value, max_length=500)
    if url is None:
        return None
    if not HTTP_URL.fullmatch(url):
        raise FieldError("must be an http:// or https:// address.")
    return url


MAX_COLOR_TEXT = 5000


def clean_color_preview(value: Any) -> str | None:
    """Return the colour as #RRGGBB in upper case, or None."""
    # Any length is read, so that a word gets the message saying how a colour is written.
    color = clean_text(value, max_length=MAX_COLOR_TEXT)
    if color is None:
        return None
    if not COLOR_PREVIEW.fullmatch(color):
        raise FieldError("must be a colour written #RRGGBB, e.g. #1A2B3C.")
    return color.upper()


def clean_reorder_quantity(value: Any, *, from_text: bool = False) -> int | None:
    """Return how many to order when the paint is low, or None to order up to the level."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return clean_int(value, minimum=1, maximum=MAX_STOCK, from_text=from_text)


def default_reorder_level() -> int:
    """Return the reorder level of a paint given none: the LOW_STOCK_THRESHOLD setting."""
    return current_app.config["LOW_STOCK_THRESHOLD"]


def _text(max_length: int, required: bool = False, multiline: bool = False) -> Callable:
    def rule(value: Any, from_text: bool) -> str | None:
        return clean_text(value, max_length=max_length, required=required, multiline=multiline)

    return rule


PAINT_RULES: dict[str, Callable[[Any, bool], Any]] = {
    "name": _text(200, required=True),
    "brand": _text(100, required=True),
    "color_code": _text(50),
    "color_type": _text(50),
    "color_family": _text(50),
    "image_url": lambda value, from_text: clean_image_url(value),
    "stock": lambda value, from_text: clean_int(
        value, minimum=0, maximum=MAX_STOCK, from_text=from_text
    ),
    "price": lambda value, from_text: clean_price(value, from_text=from_text),
    "description": _text(5000, multiline=True),
    "color_preview": lambda value, from_text: clean_color_preview(value),
    "reorder_level": lambda value, from_text: clean_int(
        value, minimum=0, maximum=MAX_STOCK, from_text=from_text
    ),
    "reorder_quantity": lambda value, from_text: clean_reorder_quantity(value, from_text=from_text),
}
# The editable fields, in the order forms and CSV files show them.
PAINT_FIELDS = (
    "name",
    "brand",
    "color_code",
    "color_type",
    "color_family",
    "stock",
    "price",
    "reorder_level",
    "reorder_quantity",
    "color_preview",
    "image_url",
    "description",
)
REQUIRED_PAINT_FIELDS = ("name", "brand")
READ_ONLY_PAINT_FIELDS = ("id", "created_at", "updated_at")


def validate_paint(
    data: Mapping[str, Any], *, partial: bool = False, from_text: bool = False
) -> dict[str, Any]:
    """Return the cleaned paint fields, or raise ValidationError naming every bad field.

    `partial` accepts a subset of fields (an edit); `from_text` accepts numbers
    written as text, as an HTML form or a CSV file sends them. A new paint sent without
    a reorder level gets the default one.
    """
    cleaned: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for field, value in data.items():
        rule = PAINT_RULES.get(field)
        if rule is None:
            errors[field] = (
                "is read-only." if field in READ_ONLY_PAINT_FIELDS else "is not a known field."
            )
            continue
        try:
            cleaned[field] = rule(value, from_text)
        except FieldError as exc:
            errors[field] = str(exc)
    if not partial:
        for field in REQUIRED_PAINT_FIELDS:
            if field not in data:
                errors[field] = "is required."
        if "reorder_level" not in data:
            cleaned["reorder_level"] = default_reorder_level()
    _use_list_spellings(cleaned, errors)
    if errors:
        raise ValidationError(errors)
    return cleaned


def _use_list_spellings(cleaned: dict[str, Any], errors: dict[str, str]) -> None:
    """Replace a type or colour family by its spelling in the admins' list; refuse others."""
    given = [field for field in VOCABULARY_KINDS if cleaned.get(field) is not None]
    if not given:
        return
    vocabulary = vocabularies.current()
    for field in given:
        canonical = vocabulary.canonical(field, cleaned[field])
        if canonical is None:
            errors[field] = vocabulary.refusal(field)
        else:
            cleaned[field] = canonical
