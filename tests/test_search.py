"""Search finds codes, fragments, hyphenated names and accented words on both databases."""

import os
import uuid

import pytest
from flask_migrate import downgrade, upgrade
from sqlalchemy import create_engine, func, inspect, select, text
from sqlalchemy.engine import make_url

from studio.config import normalize_database_url
from studio.extensions import db
from studio.models import Paint
from studio.search import fold
from studio.services import paints
from studio.services.listing import search_conditions, search_terms

from .conftest import PG_SKIP_REASON, PG_VARIABLE, make_app


@pytest.fixture
def labels(make_paint):
    """Paints as their pots are labelled."""
    make_paint(name="Wraithbone", brand="Citadel", color_code="CIT-000099")
    make_paint(name="Rakarth Flesh", brand="Citadel", color_code="CIT-000100")
    make_paint(name="Dark Bone", brand="Vallejo", color_code="70.999")
    make_paint(name="Dark-Bone Wash", brand="Scale75", color_code="SC-31")
    make_paint(name="Café Crème", brand="Pro Acryl", color_code="MPA-007")
    make_paint(name="Flat Black", brand="Tamiya", color_code="XF-1")
    make_paint(name="Ørsted Blue", brand="Tamiya", color_code="XF-8", description="Straße blau")
    make_paint(name="Dark Angels Green", brand="Citadel", color_code=None)


def names(api, q):
    response = api.get("/api/v1/paints", query_string={"q": q, "per_page": 100})
    assert response.status_code == 200, response.get_json()
    return sorted(item["name"] for item in response.get_json()["items"])


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        # Whole codes, as typed or in another case.
        ("CIT-000099", ["Wraithbone"]),
        ("cit-000099", ["Wraithbone"]),
        # Part of a code: what is left of a worn label, or a barcode's digits.
        ("000099", ["Wraithbone"]),
        ("0000", ["Wraithbone"]),
        ("CIT-0000", ["Wraithbone"]),
        ("CIT-000", ["Rakarth Flesh", "Wraithbone"]),
        ("cit 0001", ["Rakarth Flesh"]),
        ("70.99", ["Dark Bone"]),
        ("999", ["Dark Bone"]),
        # Hyphens, spaces and dots between parts match each other.
        ("dark-bone", ["Dark Bone", "Dark-Bone Wash"]),
        ("Dark Bone", ["Dark Bone", "Dark-Bone Wash"]),
        ("dark bone wash", ["Dark-Bone Wash"]),
        # Prefixes and fragments of words, in any order.
        ("dar bon", ["Dark Bone", "Dark-Bone Wash"]),
        ("bon dar", ["Dark Bone", "Dark-Bone Wash"]),
        ("raith", ["Wraithbone"]),
        ("ANGEL", ["Dark Angels Green"]),
        # Case and accents in either the paint or the query.
        ("cafe", ["Café Crème"]),
        ("CRÈME", ["Café Crème"]),
        ("creme cafe", ["Café Crème"]),
        ("orsted", ["Ørsted Blue"]),
        ("strasse", ["Ørsted Blue"]),
        # One or two characters: the start of a word (of the name, brand, code or description).
        ("xf", ["Flat Black", "Ørsted Blue"]),
        ("bl", ["Flat Black", "Ørsted Blue"]),
        ("an", ["Dark Angels Green"]),
        ("XF-1", ["Flat Black"]),
        ("d", ["Dark Angels Green", "Dark Bone", "Dark-Bone Wash"]),
        ("ø", ["Ørsted Blue"]),
        ("k", []),
        # Words of the brand and description count too.
        ("tamiya black", ["Flat Black"]),
        ("blau", ["Ørsted Blue"]),
        # LIKE's own wildcards are plain characters, not wildcards.
        (
            "%",
            sorted(
                [
                    "Wraithbone",
                    "Rakarth Flesh",
                    "Dark Bone",
                    "Dark-Bone Wash",
                    "Café Crème",
                    "Flat Black",
                    "Ørsted Blue",
                    "Dark Angels Green",
                ]
            ),
        ),
        ("d_rk", ["Dark Angels Green", "Dark Bone", "Dark-Bone Wash"]),
        ("wraith%bone", []),
        ("nothing-like-this", []),
    ],
)
def test_search_finds_what_the_label_says(api, labels, q, expected):
    assert names(api, q) == expected


@pytest.mark.parametrize(
    ("q", "terms"),
    [
        ("CIT-0000", ["cit_0000"]),
        ("  Dark   bone ", ["dark", "bone"]),
        ("dark--bone", ["dark_bone"]),
        ("Café", ["cafe"]),
        ("%_\\ ' ; --", []),
        ("a%b", ["a_b"]),
    ],
)
def test_search_terms_are_folded_patterns_of_letters_and_digits(q, terms):
    assert search_terms(q) == terms


@pytest.mark.parametrize(
    "attack",
    [
        "' OR '1'='1",
        "x'; DELETE FROM paints; --",
        'Citadel" OR 1=1 --',
        "%' UNION SELECT password_hash, NULL FROM users --",
    ],
)
@pytest.mark.parametrize("parameter", ["q", "brand", "color_family", "color_type"])
def test_sql_in_a_search_or_filter_is_only_text(api, labels, parameter, attack):
    response = api.get("/api/v1/paints", query_string={parameter: attack, "per_page": 100})
    assert response.status_code in (200, 422), response.get_json()
    assert response.status_code == 422 or response.get_json()["items"] == []
    assert len(names(api, "")) == 8


def test_search_pages_through_cursors_in_order(api, make_paint):
    for number in range(5):
        make_paint(name=f"Shade {number}", color_code=f"SH-00{number}")
    make_paint(name="Other", color_code="OT-001")
    seen, cursor = [], None
    while True:
        query = {
            "q": "sh-00",
            "per_page": 2,
            "sort": "-name",
            **({"after": cursor} if cursor else {}),
        }
        body = api.get("/api/v1/paints", query_string=query).get_json()
        seen += [item["name"] for item in body["items"]]
        assert body["pagination"]["total"] == 5
        cursor = body["pagination"]["next_cursor"]
        if cursor is None:
            break
    assert seen == [f"Shade {number}" for number in (4, 3, 2, 1, 0)]


TRICKY = "Æsir ÇA ßtraße Øre Łódź Ñandú Ĳssel ÉCLAT Zoë ÀÉÎÕÜ ǅ"


def test_sqlite_and_postgresql_fold_alike(app):
    """The database's studio_fold() and the Python fold give the same text."""
    assert db.session.scalar(select(func.studio_fold(TRICKY))) == fold(TRICKY)
    assert db.session.scalar(select(func.studio_fold(None))) is None


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_the_fold_function_may_be_indexed(app):
    """studio_fold is IMMUTABLE, so PostgreSQL keeps the indexes built on it."""
    volatility = db.session.scalar(
        text("SELECT provolatile FROM pg_proc WHERE proname = 'studio_fold'")
    )
    assert volatility == "i"


def test_an_upgrade_that_may_not_create_the_extensions_says_what_to_do(capfd):
    """A role without CREATE on its database stops at 0005, changes nothing, names the fix."""
    server = os.environ.get(PG_VARIABLE)
    if not server:
        pytest.skip(PG_SKIP_REASON)
    url = make_url(normalize_database_url(server))
    role, name = f"studio_plain_{uuid.uuid4().hex[:8]}", f"studio_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE ROLE "{role}" LOGIN'))
        connection.execute(text(f'CREATE DATABASE "{name}" OWNER "{role}"'))
        connection.execute(text(f'REVOKE CREATE ON DATABASE "{name}" FROM "{role}"'))
    app = make_app(url.set(database=name, username=role, password=None).render_as_string())
    try:
        with app.app_context():
            with pytest.raises(SystemExit):
                upgrade()
            assert inspect(db.engine).get_table_names() == []
            db.engine.dispose()
        assert "CREATE EXTENSION IF NOT EXISTS pg_trgm;" in capfd.readouterr().err
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            connection.execute(text(f'DROP ROLE IF EXISTS "{role}"'))
        admin.dispose()


def test_going_back_before_search_keeps_paints_and_their_history(fresh_app):
    """The downgrade drops the search column in place: copying the table would drop the old
    one, and its foreign key would take the stock movements with it."""
    upgrade()
    paints.create_paint({"name": "Kept", "brand": "B", "stock": 3}, actor=None)
    db.session.remove()
    downgrade(revision="0004")
    assert db.session.execute(text("SELECT count(*) FROM stock_movements")).scalar() == 1
    db.session.remove()
    assert "search_text" not in {c["name"] for c in inspect(db.engine).get_columns("paints")}
    upgrade()
    assert db.session.scalar(select(Paint.id).where(*search_conditions("kep"))) is not None
