"""The text a paint search matches, folded the same way on PostgreSQL and SQLite.

Both databases match `paints.search_text LIKE pattern`, a column the database computes with
`studio_fold`. On PostgreSQL that is an SQL function (migration 0005: lower case, accents
removed by the `unaccent` extension) and a trigram index covers the column; on SQLite it is
`fold` below, registered on each connection. The two agree on letters with accents,
ligatures like æ and ß, and case.
"""

import re
import unicodedata
from typing import Any

FOLD_FUNCTION = "studio_fold"
# Letters that unaccent rewrites but that have no decomposition in Unicode.
_UNACCENT_EXTRAS = str.maketrans(
    {
        "Æ": "AE",
        "æ": "ae",
        "Œ": "OE",
        "œ": "oe",
        "ß": "ss",
        "Ø": "O",
        "ø": "o",
        "Đ": "D",
        "đ": "d",
        "Ł": "L",
        "ł": "l",
        "Ħ": "H",
        "ħ": "h",
        "ı": "i",
        "Þ": "TH",
        "þ": "th",
        "Ð": "D",
        "ð": "d",
    }
)
_WORD_PARTS = re.compile(r"[^\W_]+")


def fold(value: str | None) -> str | None:
    """Return `value` in lower case without accents (None stays None)."""
    if value is None:
        return None
    if value.isascii():
        # Most text; SQLite folds every paint's text on each search, so this path is hot.
        return value.lower()
    decomposed = unicodedata.normalize("NFKD", value.translate(_UNACCENT_EXTRAS))
    return "".join(char for char in decomposed if not unicodedata.combining(char)).lower()


def word_parts(term: str) -> list[str]:
    """Return the runs of letters and digits of a folded search term ("cit-0000" -> 2)."""
    return _WORD_PARTS.findall(fold(term) or "")


def register_sqlite_functions(dbapi_connection: Any) -> None:
    """Give an SQLite connection the fold that PostgreSQL's studio_fold() performs."""
    dbapi_connection.create_function(FOLD_FUNCTION, 1, fold, deterministic=True)
