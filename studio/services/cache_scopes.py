"""Which cached reads a write of a paint can change: the scopes of listings and paints.

A listing filtered by brand, colour family, type or stock state (also a search, a
reorder page or the brand totals so filtered) is cached under the generation of exactly
those values, its scope. It shows only paints having all of them, so a write of a paint
can change it only if the paint had or has them all: such a write moves on the scope of
every combination of the paint's values, as it was and as it is (16 to 24 scopes for a
paint with a brand, family and type, by its stock states; more when a value changed).
A stock adjustment of a Citadel blue paint retires the Citadel listings, the blue ones,
"Citadel and low stock" if it was or is low, and the unfiltered ones (the empty
combination, every paint's scope), but not the Vallejo ones, nor "Citadel and out of
stock" unless it ran out. The brands the filters offer are in a scope of their own,
moved on only by a write that may add or remove a brand.

Which paints a search finds, and their order by anything but stock, is in one more scope,
CATALOGUE: moved on by every write of a paint except one that changes only its stock and
reorder settings (STOCK_FIELDS), the write that comes most often. A search keeps the ids
of its page there and reads their rows afresh (see listing._search_by_catalogue).
"""

import hashlib
from collections.abc import Mapping
from itertools import product
from typing import Any

from .cached_reads import EVERY_PAINT, GENERATION_KEY, Retirement, paint_key
from .levels import stock_states

BRANDS = f"{GENERATION_KEY}:brands"
CATALOGUE = f"{GENERATION_KEY}:catalogue"
# What a write can change without changing what a search finds or its order by name,
# brand, price or date.
STOCK_FIELDS = frozenset({"stock", "reorder_level", "reorder_quantity", "version", "updated_at"})
# The fields a listing filters paints by, each one value (stock: a state, see levels).
FILTER_FIELDS = ("brand", "color_family", "color_type", "stock")


def listing_scope(**filters: str | None) -> str:
    """Return the generation of a listing of the paints that have all of these values."""
    chosen = [(field, filters[field]) for field in FILTER_FIELDS if filters.get(field) is not None]
    if not chosen:
        return EVERY_PAINT
    digest = hashlib.blake2b(repr(chosen).encode(), digest_size=8).hexdigest()
    return f"{GENERATION_KEY}:{'+'.join(field for field, _ in chosen)}:{digest}"


def paint_written(
    paint_id: int | None, before: Mapping[str, Any] | None, after: Mapping[str, Any] | None
) -> Retirement:
    """Return what a write of one paint retires: the paint, and every listing it was or is on.

    `before` and `after`: the paint's values as it was and as it is (None for a paint
    created or deleted). Every combination of the values of both sides moves on (also
    mixed ones: a write that changed brand and family retires "old brand, new family" too).
    """
    values: dict[str, set[str]] = {field: set() for field in FILTER_FIELDS}
    for version in (before, after):
        if version is None:
            continue
        for field in FILTER_FIELDS[:-1]:
            if version.get(field) is not None:
                values[field].add(version[field])
        values["stock"] |= stock_states(version["stock"], version["reorder_level"])
    choices = [[None, *sorted(values[field])] for field in FILTER_FIELDS]
    scopes = {
        listing_scope(**dict(zip(FILTER_FIELDS, combination, strict=True)))
        for combination in product(*choices)
    }
    if before is None or after is None or before["brand"] != after["brand"]:
        scopes.add(BRANDS)
    if before is None or after is None or _catalogue_changed(before, after):
        scopes.add(CATALOGUE)
    keys = () if paint_id is None else (paint_key(paint_id),)
    return Retirement(keys, frozenset(scopes))


def _catalogue_changed(before: Mapping[str, Any], after: Mapping[str, Any]) -> bool:
    """Tell whether a write changed anything of a paint but its stock and reorder settings."""
    fields = (set(before) | set(after)) - STOCK_FIELDS
    return any(before.get(field) != after.get(field) for field in fields)
