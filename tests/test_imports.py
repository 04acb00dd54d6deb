"""The admin's CSV import: checked once, kept server-side for its admin, imported exactly once."""

import csv
import html
import io
import re
import threading
import time
from datetime import timedelta

import pytest
from sqlalchemy import func, select, text, update
from werkzeug.datastructures import FileStorage
from werkzeug.test import encode_multipart

from studio.extensions import db
from studio.models import (
    ImportRow,
    ImportUpload,
    Paint,
    StockMovement,
    User,
    VocabularyTerm,
    utcnow,
)
from studio.services import demo, imports, listing, vocabularies
from studio.services.csv_io import CSV_COLUMNS
from studio.services.validation import PAINT_FIELDS

from .conftest import ON_POSTGRESQL, Admin, make_api, sign_in_as, token_from
from .test_resilience import server_error

GOOD_CSV = (
    "name,brand,color_code,stock,price\n"
    "Abaddon Black,Citadel,21-25,5,4.55\n"
    "Flat Red,Vallejo,70.957,0,3.20\n"
)


# Types and colour families must be in the admins' lists; these tests leave them out.
COLUMNS = [column for column in CSV_COLUMNS if column not in ("color_type", "color_family")]


def demo_csv(count: int, start: int = 1) -> bytes:
    """Return a CSV file of `count` demo paints (about 100 bytes each)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(COLUMNS)
    for paint in demo.demo_paints(count, start=start):
        writer.writerow(["" if paint.get(column) is None else paint[column] for column in COLUMNS])
    return buffer.getvalue().encode()


def upload(admin, content: bytes | str, filename: str = "paints.csv"):
    """Send the file as a browser does, with the import page's CSRF token."""
    raw = content.encode() if isinstance(content, str) else content
    token = token_from(admin.get("/admin/paints/import").get_data(as_text=True))
    # Encoded in memory: the test client spools a large body to a file it never closes.
    boundary, body = encode_multipart(
        {"csrf_token": token, "file": FileStorage(io.BytesIO(raw), filename, "file", "text/csv")}
    )
    return admin.client.post(
        "/admin/paints/import", data=body, content_type=f"multipart/form-data; boundary={boundary}"
    )


def confirm_path(page: str) -> str:
    return re.search(r'action="(/admin/paints/import/\d+)"', page).group(1)


def confirm(admin, page: str):
    path = confirm_path(page)
    return admin.post(path, form_page=path)


def paint_count() -> int:
    db.session.expire_all()
    return db.session.scalar(select(func.count(Paint.id)))


def test_the_page_states_the_limits_before_any_upload(admin, app, monkeypatch):
    monkeypatch.setitem(app.config, "IMPORT_MAX_BYTES", 32 * 2**20)
    monkeypatch.setitem(app.config, "IMPORT_MAX_ROWS", 200_000)
    page = admin.get("/admin/paints/import").get_data(as_text=True)
    assert "up to 200,000 paints and 32 MB per file" in page


def test_a_checked_file_is_kept_and_the_confirmation_names_it(admin):
    response = upload(admin, GOOD_CSV)
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "Ready to import 2 paints" in page and "Abaddon Black" in page
    # Nothing of the file travels back with the confirmation: only its id in the address.
    assert 'type="hidden" name="content"' not in page and "Flat Red,Vallejo" not in page
    assert paint_count() == 0
    done = confirm(admin, page)
    assert done.status_code == 302
    assert paint_count() == 2
    movements = db.session.scalars(select(StockMovement)).all()
    assert [(m.kind, m.delta, m.reason) for m in movements] == [("import", 5, "CSV import")]
    assert "Imported 2 paints." in admin.get(done.headers["Location"]).get_data(as_text=True)
    # The imported rows are not kept; the upload is, so that a repeat is recognised.
    assert db.session.scalar(select(func.count()).select_from(ImportRow)) == 0


def test_one_paint_is_one_paint(admin):
    page = upload(admin, "name,brand\nAbaddon Black,Citadel\n").get_data(as_text=True)
    assert "Ready to import 1 paint " in page and "Import 1 paint<" in page
    done = confirm(admin, page)
    assert "Imported 1 paint." in admin.get(done.headers["Location"]).get_data(as_text=True)


def test_a_file_larger_than_the_old_2_mb_limit_imports_end_to_end(admin, app, backend, monkeypatch):
    # Within this request (the background import is tested on a real engine below).
    monkeypatch.setitem(app.config, "IMPORT_INLINE_ROWS", 50_000)
    content = demo_csv(22_000)
    assert len(content) > 2 * 2**20
    response = upload(admin, content, "big.csv")
    page = response.get_data(as_text=True)
    assert response.status_code == 200, re.findall(r"<td>([^<]*)</td></tr>", page)[:5]
    assert "Ready to import 22,000 paints from big.csv" in page
    done = confirm(admin, page)
    assert done.status_code == 302
    assert "Imported 22,000 paints." in admin.get(done.headers["Location"]).get_data(as_text=True)
    assert paint_count() == 22_000
    stocked = db.session.scalar(select(func.count()).where(Paint.stock > 0))
    assert db.session.scalar(select(func.count(StockMovement.id))) == stocked
    # No manual ANALYZE: the planner's count (PostgreSQL's, beyond 10,000) is about right.
    total, exact = listing.count_matching([], backend)
    assert 21_000 <= total <= 23_000, total


@ON_POSTGRESQL
@pytest.mark.parametrize("count", [20_000])
def test_seeding_refreshes_the_statistics_the_counts_come_from(app, backend, count):
    demo.seed_demo(count)
    total, exact = listing.count_matching([], backend)
    assert not exact
    assert count * 0.95 <= total <= count * 1.05, f"about {total:,}"
    brand = listing.PaintFilter.from_args({"brand": "Citadel"})
    where = brand.conditions(backend)
    estimated, _ = listing.count_matching(where, backend)
    actual, _ = listing.count_matching(where, backend, exact=True)
    assert actual * 0.8 <= estimated <= actual * 1.2


def test_the_staged_rows_hold_every_column_a_file_may_have():
    staged = {column.name for column in ImportRow.__table__.columns}
    assert set(PAINT_FIELDS) <= staged


def second_admin(app, username="bob"):
    other = make_api(app, username)
    client = app.test_client()
    sign_in_as(client, other.user.id)
    return Admin(client)


def test_another_admin_can_neither_see_nor_confirm_my_upload(admin, app):
    page = upload(admin, GOOD_CSV).get_data(as_text=True)
    path = confirm_path(page)
    bob = second_admin(app)
    assert bob.get(path).status_code == 404
    refused = bob.post(path, form_page="/admin/paints/import")
    assert refused.status_code == 404
    assert "does not exist or has expired" in refused.get_data(as_text=True)
    assert paint_count() == 0
    # Mine still waits for me.
    assert admin.get(path).status_code == 200
    assert confirm(admin, page).status_code == 302 and paint_count() == 2


def test_confirming_twice_imports_once(admin):
    page = upload(admin, GOOD_CSV).get_data(as_text=True)
    path = confirm_path(page)
    token = token_from(page)
    first = admin.client.post(path, data={"csrf_token": token})
    again = admin.client.post(path, data={"csrf_token": token})  # a double click, a retry
    assert first.status_code == again.status_code == 302
    assert paint_count() == 2
    assert "were imported already" in admin.get(again.headers["Location"]).get_data(as_text=True)
    assert "imported; confirming it again imports nothing" in admin.get(path).get_data(as_text=True)


def test_an_upload_that_now_clashes_with_the_inventory_is_refused(admin, make_paint):
    page = upload(admin, GOOD_CSV).get_data(as_text=True)
    make_paint(name="Meanwhile", brand="Vallejo", color_code="70.957")
    refused = confirm(admin, page)
    text = refused.get_data(as_text=True)
    assert refused.status_code == 409
    assert "Nothing was imported" in text and "Vallejo 70.957" in text
    assert paint_count() == 1


def test_an_upload_whose_type_was_renamed_since_the_check_is_refused(admin):
    layered = (
        GOOD_CSV.replace("color_code,stock", "color_code,color_type,stock")
        .replace("21-25,5", "21-25,Layer,5")
        .replace("70.957,0", "70.957,,0")
    )
    page = upload(admin, layered).get_data(as_text=True)
    layer = db.session.scalars(
        select(VocabularyTerm).where(
            VocabularyTerm.kind == "color_type", VocabularyTerm.name == "Layer"
        )
    ).one()
    vocabularies.rename_term(layer.id, "Layer paint")
    refused = confirm(admin, page)
    assert refused.status_code == 409
    assert 'color_type "Layer"' in html.unescape(refused.get_data(as_text=True))
    assert paint_count() == 0


def test_expired_uploads_cannot_be_confirmed_and_are_cleaned_up(admin, app):
    page = upload(admin, GOOD_CSV).get_data(as_text=True)
    path = confirm_path(page)
    day_ago = utcnow() - timedelta(hours=app.config["IMPORT_UPLOAD_HOURS"], minutes=1)
    db.session.execute(update(ImportUpload).values(created_at=day_ago))
    db.session.commit()
    assert admin.get(path).status_code == 404
    assert confirm(admin, page).status_code == 404 and paint_count() == 0
    # The next upload, by anyone, takes the expired one away with its rows.
    upload(admin, "name,brand\nOther,Citadel\n")
    uploads = db.session.scalars(select(ImportUpload)).all()
    assert [each.row_count for each in uploads] == [1]
    assert db.session.scalar(select(func.count()).select_from(ImportRow)) == 1


def test_a_file_over_the_size_limit_gets_the_import_page_naming_the_limit(admin, app, monkeypatch):
    monkeypatch.setitem(app.config, "IMPORT_MAX_BYTES", 2**20)
    response = upload(admin, demo_csv(12_000))
    page = response.get_data(as_text=True)
    assert response.status_code == 413
    assert "Import paints from CSV" in page  # the import page, in the layout
    assert "The file is larger than 1 MB, the most one import takes" in page
    assert paint_count() == 0


def test_a_file_just_over_the_size_limit_is_refused_by_its_own_size(admin, app, monkeypatch):
    # The body's allowance includes the form around the file; the file itself is measured.
    monkeypatch.setitem(app.config, "IMPORT_MAX_BYTES", 1000)
    response = upload(admin, demo_csv(12))
    assert response.status_code == 413
    assert "larger than 1,000 bytes" in response.get_data(as_text=True)
    assert "the most one import takes" in response.get_data(as_text=True)


def test_a_file_over_the_row_limit_is_refused_naming_it(admin, app, monkeypatch):
    monkeypatch.setitem(app.config, "IMPORT_MAX_ROWS", 2)
    response = upload(admin, GOOD_CSV + "Third,Citadel,3,1,1.00\n")
    assert response.status_code == 422
    assert "has more than 2 paints, the most one import takes" in response.get_data(as_text=True)
    assert db.session.scalar(select(func.count()).select_from(ImportUpload)) == 0


def test_other_admin_pages_keep_the_small_body_limit(admin, app):
    limit = app.config["MAX_CONTENT_LENGTH"]
    response = admin.post("/admin/paints/new", {"description": "x" * (limit + 1)})
    assert response.status_code == 413
    assert "the most this page takes" in response.get_data(as_text=True)


def test_the_api_answers_a_body_over_the_limit_in_json(api, app):
    limit = app.config["MAX_CONTENT_LENGTH"]
    body = '{"name": "' + "x" * limit + '", "brand": "Citadel"}'
    response = api.post("/api/v1/paints", data=body, content_type="application/json")
    assert response.status_code == 413
    assert response.get_json()["error"]["code"] == "payload_too_large"


def signed_in_clients(app, count: int) -> list[Admin]:
    """Return `count` browsers of one admin, on an app whose writes are committed."""
    user = User(username="carol", password_hash="x")
    db.session.add(user)
    db.session.flush()
    user_id = user.id
    db.session.commit()
    db.session.close()  # SQLite: a transaction left open would hold the write lock
    clients = []
    for _ in range(count):
        client = app.test_client()
        sign_in_as(client, user_id)
        clients.append(Admin(client))
    return clients


@pytest.mark.parametrize("inline_rows", [20_000, 1_000])
def test_two_confirmations_at_once_import_once(committed_app, monkeypatch, inline_rows):
    """A double click: both requests arrive together; the second imports nothing."""
    clients = signed_in_clients(committed_app, 2)
    page = upload(clients[0], demo_csv(3_000)).get_data(as_text=True)  # checked in the request
    monkeypatch.setitem(committed_app.config, "IMPORT_INLINE_ROWS", inline_rows)
    path = confirm_path(page)
    tokens = [token_from(client.get(path).get_data(as_text=True)) for client in clients]
    statuses: list[int] = []
    start = threading.Barrier(2)

    def confirm_once(client, token):
        start.wait()
        statuses.append(client.client.post(path, data={"csrf_token": token}).status_code)

    threads = [
        threading.Thread(target=confirm_once, args=pair)
        for pair in zip(clients, tokens, strict=True)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(statuses) == 2 and set(statuses) <= {302, 303}
    wait_until_imported(clients[0], path)
    assert paint_count() == 3_000


def wait_until_imported(admin, path: str, seconds: float = 60) -> str:
    """Read the upload's page, as its refresh does, until it says the paints are in."""
    return wait_for(admin, path, ("Imported ", "Ready to import"), seconds)


def wait_for(admin, path: str, texts: tuple[str, ...], seconds: float = 60) -> str:
    """Read the upload's page, as its refresh does, until it shows one of `texts`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        page = admin.get(path).get_data(as_text=True)
        if any(text in page for text in texts):
            return page
        time.sleep(0.2)
    raise AssertionError(f"{path} still busy after {seconds} s")


def wait_for_vacuum(table: str, seconds: float = 30) -> bool:
    """Wait until the table's pages are all marked all-visible (what VACUUM leaves)."""
    query = text("SELECT relpages, relallvisible FROM pg_class WHERE relname = :table")
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with db.engine.connect() as connection:
            pages, visible = connection.execute(query, {"table": table}).one()
        if pages > 0 and visible == pages:
            return True
        time.sleep(0.2)
    return False


@ON_POSTGRESQL
def test_a_large_file_is_checked_and_imported_in_the_background_with_progress(
    committed_app, monkeypatch, backend
):
    monkeypatch.setitem(committed_app.config, "IMPORT_INLINE_ROWS", 1_000)
    monkeypatch.setattr(imports, "IMPORT_CHUNK_ROWS", 1_000)
    monkeypatch.setattr(imports, "PROGRESS_EVERY_ROWS", 1_000)
    (admin,) = signed_in_clients(committed_app, 1)
    sent = upload(admin, demo_csv(5_000))
    assert sent.status_code == 303
    path = sent.headers["Location"]
    following = admin.get(path).get_data(as_text=True)
    assert "Checking paints.csv" in following or "Ready to import 5,000" in following
    if "Checking" in following:
        assert '<meta http-equiv="refresh"' in following and "rows checked so far" in following
    page = wait_for(admin, path, ("Ready to import",))
    assert "Ready to import 5,000 paints from paints.csv" in page and confirm_path(page) == path
    started = confirm(admin, page)
    assert started.status_code == 303 and started.headers["Location"] == path
    following = admin.get(path).get_data(as_text=True)
    assert "Importing 5,000 paints" in following or "Imported 5,000 paints" in following
    if "Importing" in following:
        assert '<meta http-equiv="refresh"' in following and "<progress" in following
    done = wait_until_imported(admin, path)
    assert "Imported 5,000 paints from paints.csv" in done
    assert paint_count() == 5_000
    # After its commit the job vacuums: every page of paints is marked all-visible, so a
    # deep page's index-only scan need not read the table.
    assert wait_for_vacuum("paints")
    # Confirming again (a reload of the old form, a retry) imports nothing more.
    again = confirm(admin, page)
    assert again.status_code == 302 and paint_count() == 5_000


@ON_POSTGRESQL
def test_a_file_of_several_thousand_rows_is_not_handled_on_the_request_thread(
    committed_app, backend
):
    # A 20,000-row price list took 14-17 s to confirm within the request at 1,000,000
    # paints (bench.imports): the default now sends anything above 5,000 rows to a thread.
    (admin,) = signed_in_clients(committed_app, 1)
    sent = upload(admin, demo_csv(6_000))
    assert sent.status_code == 303
    page = wait_for(admin, sent.headers["Location"], ("Ready",))
    assert "Ready to import 6,000 paints" in page
    started = confirm(admin, page)
    assert started.status_code == 303
    assert "Imported 6,000 paints" in wait_until_imported(admin, sent.headers["Location"])


@ON_POSTGRESQL
def test_a_large_file_with_a_bad_row_is_refused_by_the_background_check(
    committed_app, monkeypatch, backend
):
    monkeypatch.setitem(committed_app.config, "IMPORT_INLINE_ROWS", 1_000)
    (admin,) = signed_in_clients(committed_app, 1)
    content = demo_csv(3_000).decode().replace("\n", "\nBroken,,,,\n", 1)
    sent = upload(admin, content)
    assert sent.status_code == 303
    page = wait_for(admin, sent.headers["Location"], ("problem",))
    assert "1 problem found in paints.csv: nothing was imported" in page
    assert re.search(r'<tr><td class="num">2</td><td>[^<]*brand', page)
    assert "Read as UTF-8" in page
    assert 'action="/admin/paints/import/' not in page and paint_count() == 0


@ON_POSTGRESQL
def test_a_large_file_over_the_row_limit_is_refused_in_the_background_without_a_traceback(
    committed_app, monkeypatch, backend, caplog
):
    monkeypatch.setitem(committed_app.config, "IMPORT_INLINE_ROWS", 1_000)
    monkeypatch.setitem(committed_app.config, "IMPORT_MAX_ROWS", 2_000)
    (admin,) = signed_in_clients(committed_app, 1)
    sent = upload(admin, demo_csv(3_000))
    assert sent.status_code == 303
    page = wait_for(admin, sent.headers["Location"], ("problem",))
    assert "the most one import takes" in page and paint_count() == 0
    # A refused file is the admin's business, not an operator's: no stack trace logged.
    assert not [record for record in caplog.records if record.exc_info], caplog.text


@ON_POSTGRESQL
def test_a_background_import_that_stopped_can_be_imported_again(
    committed_app, monkeypatch, backend
):
    real_job = imports.background_import
    monkeypatch.setattr(imports, "background_import", lambda *args: None)  # the worker died
    (admin,) = signed_in_clients(committed_app, 1)
    page = upload(admin, demo_csv(2_000)).get_data(as_text=True)  # checked in the request
    path = confirm_path(page)
    monkeypatch.setitem(committed_app.config, "IMPORT_INLINE_ROWS", 1_000)
    assert confirm(admin, page).status_code == 303
    assert "Importing 2,000 paints" in admin.get(path).get_data(as_text=True)
    long_ago = utcnow() - timedelta(seconds=imports.STALLED_SECONDS + 1)
    db.session.execute(update(ImportUpload).values(progress_at=long_ago))
    db.session.commit()
    stopped = admin.get(path).get_data(as_text=True)
    assert "The import stopped before it was finished" in stopped and paint_count() == 0
    monkeypatch.setattr(imports, "background_import", real_job)
    assert confirm(admin, stopped).status_code == 303
    done = wait_until_imported(admin, path)
    assert "Imported 2,000 paints" in done, re.findall(r'role="alert">([^<]*)', done)
    assert paint_count() == 2_000


def test_a_confirmation_retried_after_a_passing_failure_imports_once(admin, monkeypatch):
    """The first try fails after inserting the paints, before COMMIT: its retry imports them."""
    page = upload(admin, GOOD_CSV).get_data(as_text=True)
    analyze = imports.refresh_statistics
    failures = [server_error("could not serialize access", "40001")]

    def fail_once() -> None:
        if failures:
            raise failures.pop()
        analyze()

    monkeypatch.setattr(imports, "refresh_statistics", fail_once)
    assert confirm(admin, page).status_code == 302
    assert not failures and paint_count() == 2
    assert db.session.scalar(select(func.count(StockMovement.id))) == 1
