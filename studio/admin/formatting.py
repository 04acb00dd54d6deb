"""How the admin writes figures: thousands separators, money in its currency, big ones short."""

from decimal import Decimal

from flask import current_app
from markupsafe import Markup, escape

# Symbols for the codes a shop is likely to set; any other code is written out ("CHF 4.50").
SYMBOLS = {"EUR": "€", "USD": "$", "GBP": "£", "JPY": "¥", "INR": "₹", "KRW": "₩"}
SUFFIXES = ((10**3, "k"), (10**6, "M"), (10**9, "B"), (10**12, "T"))
# Below this a number is written in full; a card or a bar label has room for "9,999".
SHORTEN_FROM = 10_000
NBSP = "\u00a0"

Number = int | float | Decimal


def exact(value: Number, *, decimals: int = 0) -> str:
    """Return a number in full with thousands separators: 1,000,000,000 or 1,234.50."""
    return f"{value:,.{decimals}f}"


def compact(value: Number, *, decimals: int = 0) -> str:
    """Return a number as a glance reads it: 9,999, 12.5 k, 125 k, 1.2 M, 1 B."""
    if abs(value) < SHORTEN_FROM:
        return exact(value, decimals=decimals)
    for size, suffix in SUFFIXES:
        scaled = float(value) / size
        # 999,950 would round to "1000 k": that is "1 M".
        if abs(scaled) < 999.95 or suffix == SUFFIXES[-1][1]:
            break
    shown = f"{scaled:.1f}" if abs(scaled) < 100 else f"{scaled:,.0f}"
    return f"{shown.removesuffix('.0')}{NBSP}{suffix}"


def with_currency(amount: str, currency: str) -> str:
    """Return an amount with the currency before it: €4.50, $4.50, CHF 4.50."""
    symbol = SYMBOLS.get(currency.upper(), currency)
    return f"{symbol}{NBSP if symbol[-1].isalpha() else ''}{amount}"


def money(value: Number) -> str:
    """Return a price or value in the shop's currency, to the cent: €1,234.50."""
    return with_currency(exact(value, decimals=2), current_app.config["CURRENCY"])


def short_figure(value: Number, currency: bool = False) -> Markup:
    """Return a figure for a card: shortened when large, the exact value in a tooltip.

    Screen readers get the exact value; the short one is for the eye only.
    """
    decimals = 2 if currency else 0
    full, short = exact(value, decimals=decimals), compact(value, decimals=decimals)
    if currency:
        code = current_app.config["CURRENCY"]
        full, short = with_currency(full, code), with_currency(short, code)
    if full == short:
        return Markup(escape(full))
    return Markup(
        '<span title="{0}"><span aria-hidden="true">{1}</span>'
        '<span class="visually-hidden">{0}</span></span>'
    ).format(full, short)


# How the history names a paint's fields and the kinds of change.
FIELD_LABELS = {
    "name": "Name",
    "brand": "Brand",
    "color_code": "Colour code",
    "color_type": "Type",
    "color_family": "Colour family",
    "stock": "Stock",
    "price": "Price",
    "color_preview": "Swatch",
    "image_url": "Photo",
    "description": "Description",
    "reorder_level": "Reorder level",
    "reorder_quantity": "Reorder quantity",
}
KIND_LABELS = {
    "create": "Created",
    "edit": "Edited",
    "delete": "Deleted",
    "import": "Imported",
    "stock": "Stock change",
    "rename": "Renamed in the lists",
    "merge": "Merged in the lists",
}


def changed_value(value: object, field: str) -> str:
    """Return a field's value as the history shows it: prices in the currency, "—" for none."""
    if value is None or value == "":
        return "—"
    if field == "price":
        return money(Decimal(str(value)))
    if isinstance(value, int) and not isinstance(value, bool):
        return exact(value)
    text = str(value)
    return text if len(text) <= 80 else text[:79] + "…"
