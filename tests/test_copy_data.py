"""flask copy-data: a shop moved from SQLite to PostgreSQL, ids, figures and credentials kept."""

import os
import re
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from flask import Flask
from flask_migrate import upgrade
from sqlalchemy import create_engine, func, select, text

from studio.extensions import db
from studio.models import CacheEpoch, EndedSession, Paint, User, VocabularyTerm, utcnow
from studio.services import accounts, copying, demo, figures, paints, stats, stock
from studio.services.history import Actor

from .conftest import (
    PG_SKIP_REASON,
    PG_VARIABLE,
    free_port,
    make_app,
    password_hash,
    temporary_postgres_database,
)

PRICES = ("0.01", "4.50", "99999999.99")
DEMO_PAINTS = 300


def sqlite_shop(path: Path, revision: str = "head") -> str:
    """Make a SQLite shop at `path` and return its URL."""
    url = f"sqlite:///{path}"
    app = make_app(url)
    with app.app_context():
        upgrade(revision=revision)
        db.engine.dispose()
    return url


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A SQLite shop with admins, tokens, a signed-out session, paints and movements."""
    url = sqlite_shop(tmp_path_factory.mktemp("source") / "studio.db")
    app = make_app(url)
    with app.app_context():  # made, then left: each test runs in the target's context
        for name in ("alice", "bob", "carol"):
            db.session.add(User(username=name, password_hash=password_hash()))
        db.session.commit()
        _, secret = accounts.create_token("alice", "stock script")
        accounts.create_token("bob")
        accounts.deactivate_user("carol")
        bob = accounts.find_user("bob")
        accounts.end_session(bob.id, "a-signed-out-session", utcnow() + timedelta(hours=3))
        demo.seed_demo(DEMO_PAINTS)
        priced = [
            paints.create_paint(
                {"name": f"Priced {price}", "brand": "Copy Test", "price": price, "stock": 3},
                actor=Actor(bob.id, bob.username),
            )
            for price in PRICES
        ]
        for paint_id in range(1, 60):
            stock.adjust_stock(paint_id, 7, "Delivery", Actor(bob.id, bob.username))
        paints.delete_paint(10, None)  # a gap in the ids
        db.engine.dispose()
    return {"url": url, "token": secret, "priced": {p.price: p.id for p in priced}}


@pytest.fixture
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flask]:
    """An app on a new, migrated PostgreSQL database whose sessions speak New York time.

    Not UTC on purpose: a time copied without its zone would be read as local time there.
    """
    server_url = os.environ.get(PG_VARIABLE)
    if not server_url:
        pytest.skip(PG_SKIP_REASON)
    with temporary_postgres_database(server_url) as url:
        engine = create_engine(url, isolation_level="AUTOCOMMIT")
        with engine.connect() as connection:
            name = connection.scalar(text("SELECT current_database()"))
            connection.execute(text(f"ALTER DATABASE \"{name}\" SET timezone = 'America/New_York'"))
        engine.dispose()
        app = make_app(url)
        with app.app_context():
            upgrade()
            try:
                yield app
            finally:
                db.session.remove()
                db.engine.dispose()


def copy(app: Flask, source_url: str, *options: str):
    return app.test_cli_runner().invoke(args=["copy-data", "--from", source_url, *options])


def rows_of(url_or_app, table) -> list[dict]:
    """Return every row of the table (computed columns aside), in id order, zones kept."""
    columns = [column for column in table.c if column.computed is None]
    query = select(*columns).order_by(table.c.id)
    if isinstance(url_or_app, Flask):
        db.session.expire_all()
        return [dict(row) for row in db.session.execute(query).mappings()]
    engine = create_engine(url_or_app)
    with engine.connect() as connection:
        rows = [dict(row) for row in connection.execute(query).mappings()]
    engine.dispose()
    # SQLite keeps times without their zone; studio writes them in UTC.
    return [copying._target_row(row) for row in rows]


def test_round_trip_keeps_ids_prices_times_tokens_and_search(source, target):
    epoch_before = db.session.scalar(select(func.max(CacheEpoch.id))) or 0
    result = copy(target, source["url"])
    assert result.exit_code == 0, result.output
    assert "Copied and verified" in result.output
    assert f"{DEMO_PAINTS + 2:,} paints" in result.output  # 303 less the deleted one
    for table in copying.COPIED:
        assert rows_of(target, table) == rows_of(source["url"], table), table.name
    client = target.test_client()
    headers = {"Authorization": f"Bearer {source['token']}"}
    for price, paint_id in source["priced"].items():
        answer = client.get(f"/api/v1/paints/{paint_id}", headers=headers)
        assert answer.status_code == 200
        assert Decimal(answer.get_json()["price"]) == price
    found = client.get("/api/v1/paints?q=99999999", headers=headers).get_json()
    assert [paint["id"] for paint in found["items"]] == [source["priced"][Decimal("99999999.99")]]
    largest = db.session.scalar(select(func.max(Paint.id)))
    created = client.post(
        "/api/v1/paints",
        headers=headers,
        json={"name": "After the move", "brand": "Copy Test", "stock": 1, "price": "1.00"},
    )
    assert created.status_code == 201, created.get_json()
    assert created.get_json()["id"] == largest + 1
    assert (db.session.scalar(select(func.max(CacheEpoch.id))) or 0) > epoch_before
    assert accounts.user_for_token(source["token"]).username == "alice"
    assert db.session.scalar(select(func.count(EndedSession.id))) == 1
    with db.engine.connect() as connection:  # statistics read afresh, outside this session
        maintained = connection.execute(
            text(
                "SELECT count(*) FROM pg_stat_user_tables WHERE relname IN ('paints', "
                "'stock_movements') AND last_vacuum IS NOT NULL AND last_analyze IS NOT NULL"
            )
        ).scalar()
    assert maintained == 2


def test_refuses_a_target_that_is_not_empty_unless_forced(source, target):
    assert copy(target, source["url"]).exit_code == 0
    client = target.test_client()
    headers = {"Authorization": f"Bearer {source['token']}"}
    extra = client.post(
        "/api/v1/paints", headers=headers, json={"name": "Extra", "brand": "Only Here"}
    ).get_json()["id"]

    refused = copy(target, source["url"])
    assert refused.exit_code != 0
    assert "not empty" in refused.output and "--force" in refused.output
    assert "Copying rows" not in refused.output  # no progress bar for a copy that never began
    assert db.session.get(Paint, extra) is not None

    forced = copy(target, source["url"], "--force")
    assert forced.exit_code == 0, forced.output
    db.session.expire_all()
    assert db.session.get(Paint, extra) is None
    assert rows_of(target, Paint.__table__) == rows_of(source["url"], Paint.__table__)
    # The TRUNCATE emptied the running totals with the paints, and the copy refilled them.
    assert figures.check() == []
    assert "Only Here" not in {row.key for row in stats.inventory_stats().by_brand}


def test_dry_run_changes_nothing(source, target):
    terms = rows_of(target, VocabularyTerm.__table__)
    result = copy(target, source["url"], "--dry-run")
    assert result.exit_code == 0, result.output
    assert "would copy" in result.output and f"{DEMO_PAINTS + 2:,} paints" in result.output
    assert "Nothing was changed" in result.output
    assert db.session.scalar(select(func.count(Paint.id))) == 0
    assert db.session.scalar(select(func.count(User.id))) == 0
    assert rows_of(target, VocabularyTerm.__table__) == terms


def test_a_copy_that_does_not_add_up_is_rolled_back(source, target, monkeypatch):
    cheapest = source["priced"][Decimal("0.01")]
    convert = copying._target_row

    def off_by_a_cent(row):
        row = convert(row)
        if row.get("price") == Decimal("0.01") and row["id"] == cheapest:
            row["price"] = Decimal("0.02")
        return row

    monkeypatch.setattr(copying, "_target_row", off_by_a_cent)
    result = copy(target, source["url"])
    assert result.exit_code != 0
    assert "does not add up" in result.output
    assert re.search(r"stock value [\d.]+ in the source, [\d.]+ copied", result.output)
    assert db.session.scalar(select(func.count(Paint.id))) == 0
    assert db.session.scalar(select(func.count(User.id))) == 0


def test_refuses_databases_at_another_migration(source, target, tmp_path):
    older = sqlite_shop(tmp_path / "older.db", revision="0007")
    result = copy(target, older)
    assert result.exit_code != 0
    assert "--from is at revision 0007" in result.output
    # The advised command names the file itself: DATABASE_URL reads a relative SQLite path
    # from the instance folder, --from from the working directory.
    advised = re.search(r"`DATABASE_URL=(\S+) flask --app wsgi db upgrade`", result.output)
    assert advised, result.output
    upgraded = make_app(advised.group(1))
    with upgraded.app_context():
        upgrade()
        db.engine.dispose()
    assert copy(target, older, "--dry-run").exit_code == 0

    with db.engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '0007'"))
    result = copy(target, source["url"])
    assert result.exit_code != 0
    assert "DATABASE_URL is at revision 0007" in result.output
    assert "`flask --app wsgi db upgrade`" in result.output


@pytest.mark.parametrize(
    ("source_url", "message"),
    [
        ("sqlite:///{missing}", "no such file"),
        ("postgresql://elsewhere/studio", "must be a SQLite database"),
        ("not a url", "not a database URL"),
    ],
)
def test_refuses_a_source_that_is_not_a_sqlite_file(target, tmp_path, source_url, message):
    result = copy(target, source_url.format(missing=tmp_path / "missing.db"))
    assert result.exit_code != 0
    assert message in result.output
    assert "--from" in result.output


def test_refuses_a_source_that_is_not_a_database(target, tmp_path):
    text_file = tmp_path / "notes.db"
    text_file.write_text("not a database, though it is named like one\n" * 100)
    result = copy(target, f"sqlite:///{text_file}")
    assert result.exit_code != 0
    assert "The source is not a SQLite database" in result.output
    assert "Traceback" not in result.output


def test_a_target_that_cannot_be_reached_is_said_in_one_line(source, tmp_path):
    closed = f"postgresql://postgres@127.0.0.1:{free_port()}/nothing"
    result = copy(make_app(closed), source["url"])
    assert result.exit_code != 0
    assert "The copy could not go on: OperationalError" in result.output
    assert "Connection refused" in result.output
    assert "Traceback" not in result.output and result.exception.__class__ is SystemExit


def test_refuses_a_sqlite_target(source, tmp_path):
    app = make_app(sqlite_shop(tmp_path / "target.db"))
    with app.app_context():
        result = copy(app, source["url"])
        db.engine.dispose()
    assert result.exit_code != 0
    assert "DATABASE_URL names a SQLite database" in result.output
