"""Realistic sample paints for demos and benchmarks."""

import colorsys
import random
from collections.abc import Callable, Iterator
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

from sqlalchemy import func, select

from ..extensions import db
from ..models import Paint
from . import csv_io, planner, transactions, vocabularies
from .paints import bulk_create_paints

# brand: (code prefix, usual price, paint types it sells)
BRANDS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "Citadel": ("CIT-", "4.55", ("Base", "Layer", "Shade", "Contrast", "Dry", "Technical")),
    "Vallejo Model Color": ("70.", "3.20", ("Acrylic", "Metallic", "Primer")),
    "Vallejo Game Color": ("72.", "3.40", ("Acrylic", "Wash", "Ink")),
    "The Army Painter": ("WP", "3.50", ("Warpaint", "Speedpaint", "Wash", "Metallic")),
    "Scale75": ("SC-", "3.95", ("Acrylic", "Metallic", "Ink")),
    "AK Interactive": ("AK", "3.10", ("Acrylic", "Wash", "Primer")),
    "Pro Acryl": ("MPA-", "4.99", ("Acrylic", "Metallic", "Transparent")),
    "Reaper MSP": ("RP", "4.29", ("Acrylic", "Metallic")),
    "Tamiya": ("XF-", "2.90", ("Acrylic", "Enamel", "Lacquer")),
    "Golden": ("GH-", "12.99", ("Heavy Body", "Fluid", "High Flow")),
    "Liquitex": ("LQ-", "8.49", ("Heavy Body", "Soft Body", "Ink")),
    "Winsor & Newton": ("WN-", "9.99", ("Galeria", "Artists' Oil", "Watercolour")),
}
# family: (hue in degrees, names used in that family)
FAMILIES: dict[str, tuple[int, tuple[str, ...]]] = {
    "Red": (0, ("Crimson", "Scarlet", "Carmine", "Ruby", "Blood Red", "Brick")),
    "Orange": (28, ("Amber", "Rust", "Tangerine", "Burnt Orange", "Copper")),
    "Yellow": (52, ("Ochre", "Lemon", "Saffron", "Gold", "Sunburst")),
    "Green": (120, ("Olive", "Emerald", "Moss", "Jade", "Forest", "Lime")),
    "Blue": (215, ("Cobalt", "Ultramarine", "Azure", "Navy", "Teal", "Sky")),
    "Purple": (275, ("Violet", "Plum", "Amethyst", "Mauve", "Indigo")),
    "Pink": (330, ("Rose", "Magenta", "Flamingo", "Blush")),
    "Brown": (25, ("Umber", "Sienna", "Leather", "Chestnut", "Mahogany")),
    "Grey": (210, ("Slate", "Ash", "Gunmetal", "Stone", "Pewter")),
    "Black": (0, ("Abyss", "Ebony", "Coal", "Jet")),
    "White": (45, ("Ivory", "Bone", "Chalk", "Pearl")),
    "Flesh": (20, ("Tan", "Bronzed Skin", "Pale Flesh", "Dark Flesh")),
}
ADJECTIVES = (
    "Deep",
    "Pale",
    "Bright",
    "Dark",
    "Warm",
    "Cold",
    "Royal",
    "Old",
    "Dusty",
    "Wild",
    "Dry",
    "Faded",
)


def _preview(family: str, rng: random.Random) -> str:
    hue, _ = FAMILIES[family]
    lightness = {"Black": 0.1, "White": 0.93, "Grey": 0.5}.get(family, rng.uniform(0.3, 0.65))
    saturation = 0.08 if family in ("Black", "White", "Grey") else rng.uniform(0.45, 0.9)
    red, green, blue = colorsys.hls_to_rgb(
        ((hue + rng.uniform(-8, 8)) % 360) / 360, lightness, saturation
    )
    return "#{:02X}{:02X}{:02X}".format(*(round(channel * 255) for channel in (red, green, blue)))


def demo_paints(count: int, *, start: int, seed: int = 7) -> Iterator[dict[str, Any]]:
    """Yield `count` plausible paints; codes are numbered from `start` so they stay unique."""
    rng = random.Random(seed + start)
    brands = list(BRANDS)
    for number in range(start, start + count):
        brand = rng.choice(brands)
        prefix, usual_price, types = BRANDS[brand]
        family = rng.choice(list(FAMILIES))
        name = f"{rng.choice(ADJECTIVES)} {rng.choice(FAMILIES[family][1])}"
        price = (Decimal(usual_price) * Decimal(str(rng.choice((1, 1, 1, 1.1, 1.25))))).quantize(
            Decimal("0.01")
        )
        roll = rng.random()
        stock = 0 if roll < 0.08 else rng.randint(1, 5) if roll < 0.2 else rng.randint(6, 120)
        yield {
            "name": name,
            "brand": brand,
            "color_code": f"{prefix}{number:06d}",
            "color_type": rng.choice(types),
            "color_family": family,
            "stock": stock,
            "price": price,
            "description": f"{name} {family.lower()} {types[0].lower()} paint by {brand}.",
            "color_preview": _preview(family, rng),
            "image_url": None,
        }


def seed_demo(count: int, *, on_batch: Callable[[int], None] | None = None) -> int:
    """Add `count` demo paints, and the types and families they use, in one transaction.

    Returns how many paints were added. The tables are vacuumed after the commit (see
    planner.vacuum_tables), as a server without autovacuum would never do it.
    """
    start = (db.session.scalar(select(func.max(Paint.id))) or 0) + 1
    with transactions.one_transaction():
        types = vocabularies.ensure_terms(
            "color_type", {kind for _, _, kinds in BRANDS.values() for kind in kinds}
        )
        families = vocabularies.ensure_terms("color_family", FAMILIES)
        paints = (
            {
                **paint,
                "color_type": types[paint["color_type"]],
                "color_family": families[paint["color_family"]],
            }
            for paint in demo_paints(count, start=start)
        )
        added = bulk_create_paints(
            paints, kind="import", reason="Demo data", actor=None, on_batch=on_batch
        )
    planner.vacuum_tables()
    return added


def demo_csv(count: int, *, start: int = 1) -> bytes:
    """Return `count` demo paints as the export writes them: a file to import."""
    # Without reorder columns: the import gives each paint the default level.
    blank = dict.fromkeys(csv_io.CSV_COLUMNS)
    paints = (SimpleNamespace(**{**blank, **paint}) for paint in demo_paints(count, start=start))
    return "".join(csv_io.export_csv(paints)).encode()
