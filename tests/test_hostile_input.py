"""No input is a 500: broken bodies, strings, cursors, ids and `next` get clear 4xx answers.

Chunked bodies are decoded by the server: these tests hand the app a stream that fails
as gunicorn's does (tests/faults/test_hostile_requests.py sends the real bytes).
"""

import base64
import io
import json

import pytest
from gunicorn.http.errors import InvalidChunkSize
from sqlalchemy import create_engine, delete, event
from werkzeug.test import EnvironBuilder

from studio.extensions import db
from studio.limits import MAX_URL_LENGTH
from studio.models import Paint
from studio.observability import observatory
from studio.services import paints
from studio.services.listing import TEXT_FILTERS

from .conftest import ON_POSTGRESQL, PASSWORD, make_api, sign_in_as, token_from
from .test_edits import form_on


class BrokenChunks:
    """What gunicorn hands the app for a body whose chunk-size line is not hex."""

    def read(self, size: int = -1) -> bytes:
        raise InvalidChunkSize(b"zz")


def chunked(stream: object) -> dict:
    """The request options of a body sent in chunks, as a server that decodes them passes it."""
    environ = {"wsgi.input": stream, "wsgi.input_terminated": True, "CONTENT_LENGTH": ""}
    return {"headers": {"Transfer-Encoding": "chunked"}, "environ_overrides": environ}


def requests_of(app, endpoint: str) -> int:
    return observatory(app).requests.snapshot().get(endpoint, {}).get("count", 0)


@pytest.mark.parametrize(
    ("path", "endpoint"),
    [
        ("/login", "auth.login"),
        ("/logout", "auth.logout"),
        ("/admin/paints/new", "admin.new_paint"),
    ],
)
def test_a_malformed_chunked_form_is_a_400_and_counted(app, client, path, endpoint):
    before = requests_of(app, endpoint)
    response = client.post(
        path, content_type="application/x-www-form-urlencoded", **chunked(BrokenChunks())
    )
    assert response.status_code == 400
    assert "not valid chunked encoding" in response.get_data(as_text=True)
    assert requests_of(app, endpoint) == before + 1


def test_a_malformed_chunked_api_body_is_a_json_400(app, api):
    response = api.post(
        "/api/v1/paints", content_type="application/json", **chunked(BrokenChunks())
    )
    assert response.status_code == 400
    assert response.json["error"]["code"] == "bad_request"
    assert "chunked" in response.json["error"]["message"]


def test_a_chunked_body_over_the_limit_is_a_413_not_cut_short(app, api):
    limit = app.config["MAX_CONTENT_LENGTH"]
    # Valid JSON if cut at the limit: the spaces after the object are what goes over.
    body = json.dumps({"name": "Cut short", "brand": "Citadel"}).encode()
    body += b" " * (limit - len(body)) + b" " * 10
    response = api.post(
        "/api/v1/paints", content_type="application/json", **chunked(io.BytesIO(body))
    )
    assert response.status_code == 413
    assert "the most this address takes" in response.json["error"]["message"]
    assert api.get("/api/v1/paints?q=Cut").json["pagination"]["total"] == 0


def test_a_chunked_body_at_the_limit_is_taken(app, api):
    limit = app.config["MAX_CONTENT_LENGTH"]
    body = json.dumps({"name": "Just fits", "brand": "Citadel"}).encode()
    body += b" " * (limit - len(body))
    response = api.post(
        "/api/v1/paints", content_type="application/json", **chunked(io.BytesIO(body))
    )
    assert response.status_code == 201


@pytest.fixture
def paint_id(api) -> int:
    body = {"name": "Mephiston Red", "brand": "Citadel", "price": "4.50", "stock": 5}
    return api.post("/api/v1/paints", json=body).json["id"]


@pytest.mark.parametrize(
    ("method", "path", "body", "field"),
    [
        ("post", "/api/v1/paints", b'{"name": "Red \\ud800", "brand": "Citadel"}', "name"),
        ("patch", "/api/v1/paints/{id}", b'{"version": 1, "brand": "\\udfff"}', "brand"),
        ("patch", "/api/v1/paints/{id}", b'{"original": {"name": "\\ud800"}}', "original"),
        ("post", "/api/v1/paints/{id}/stock", b'{"delta": 1, "reason": "\\ud83d"}', "reason"),
        ("post", "/api/v1/paints", b'{"name": "x", "brand": "y", "\\ud800": 1}', "\\ud800"),
    ],
)
def test_a_lone_surrogate_is_a_422_naming_the_field(api, paint_id, method, path, body, field):
    response = getattr(api, method)(
        path.format(id=paint_id), data=body, content_type="application/json"
    )
    assert response.status_code == 422
    assert "surrogate" in response.json["error"]["fields"][field]
    assert api.get(f"/api/v1/paints/{paint_id}").json["version"] == 1


@pytest.mark.parametrize(
    ("body", "said", "internal"),
    [
        (b'{"price": ' + b"1" * 5000 + b"}", "too many digits", "sys.set_int_max_str_digits"),
        (b"[" * 100_000, "nested too deeply", "recursion"),
        (b'{"name": "\xff"}', "not UTF-8", "codec"),
        (b'{"name": NaN}', "NaN is not a number JSON allows", "Traceback"),
        (b'{"name": }', "expecting value at line 1, column 10", "char"),
    ],
)
def test_a_body_that_is_not_json_is_a_400_in_plain_words(api, body, said, internal):
    response = api.post("/api/v1/paints", data=body, content_type="application/json")
    assert response.status_code == 400
    message = response.json["error"]["message"]
    assert said in message
    assert internal not in message


def forged(text: str) -> str:
    """A cursor as studio writes them (URL-safe base64 of JSON), holding what an attacker chose."""
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    ("sort", "cursor"),
    [
        ("name", '["name", "a\\u0000b", 1]'),
        ("name", '["name", "\\ud800", 1]'),
        ("brand", '["brand", "Citadel", 99999999999999999999]'),
        ("price", '["price", 1e999999999, 1]'),
        ("price", '["price", "1e999999999", 1]'),
        ("price", '["price", "NaN", 1]'),
        ("price", '["price", "4.50", true]'),
        ("stock", '["stock", 99999999999999999999, 1]'),
        ("created_at", '["created_at", "2026-01-01\\u0000", 1]'),
        ("name", "[" * 900),
    ],
)
def test_a_forged_cursor_is_a_422(api, paint_id, sort, cursor):
    response = api.get("/api/v1/paints", query_string={"sort": sort, "after": forged(cursor)})
    assert response.status_code == 422
    assert "start again from page 1" in response.json["error"]["fields"]["after"]


def test_a_cursor_studio_wrote_still_works(api, paint_id, make_paint):
    api.post("/api/v1/paints", json={"name": "Zandri Dust", "brand": "Citadel", "price": "9.99"})
    for sort in ("name", "-price", "stock", "-created_at", "brand"):
        first = api.get("/api/v1/paints", query_string={"sort": sort, "per_page": 1}).json
        after = first["pagination"]["next_cursor"]
        second = api.get(
            "/api/v1/paints", query_string={"sort": sort, "per_page": 1, "after": after}
        )
        assert second.status_code == 200
        assert second.json["items"][0]["id"] != first["items"][0]["id"]


@pytest.mark.parametrize("paint", ["0", "2147483648", "9" * 5000])
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/api/v1/paints/{}"),
        ("patch", "/api/v1/paints/{}"),
        ("delete", "/api/v1/paints/{}"),
        ("post", "/api/v1/paints/{}/stock"),
        ("get", "/api/v1/paints/{}/movements"),
    ],
)
def test_an_id_outside_the_column_is_a_404_on_every_method(api, method, path, paint):
    response = getattr(api, method)(path.format(paint), json={"delta": 1, "reason": "x"})
    assert response.status_code == 404
    assert response.json["error"]["code"] == "not_found"


@pytest.mark.parametrize("path", ["/admin/paints/0", "/admin/paints/2147483648/edit"])
def test_an_admin_page_for_an_id_outside_the_column_is_a_404(admin, path):
    assert admin.get(path).status_code == 404


@pytest.mark.parametrize(
    "target", ["/admin/%0d%0aSet-Cookie:%20a=b", "/admin/paints%0a", "/%09/evil.example", "/%00"]
)
def test_a_next_with_control_characters_leads_home(app, client, api, target):
    page = client.get("/login").get_data(as_text=True)
    form = {"username": "alice", "password": PASSWORD, "csrf_token": token_from(page)}
    signed_in = client.post(f"/login?next={target}", data=form)
    assert signed_in.status_code == 302
    assert signed_in.headers["Location"] == "/admin/"
    assert "Set-Cookie: a" not in str(signed_in.headers)
    # Signed in already: the page sends the admin on at once, to the same place.
    again = client.get(f"/login?next={target}")
    assert (again.status_code, again.headers["Location"]) == (302, "/admin/")


@pytest.fixture
def deleted_before_update(committed_app):
    """Delete a paint from another connection just before the next UPDATE of paints runs.

    The request has read the paint by then; on PostgreSQL the other connection's DELETE
    commits without waiting (SQLite's BEGIN IMMEDIATE would make it wait for the request).
    """
    engine = db.engine
    other = create_engine(committed_app.config["SQLALCHEMY_DATABASE_URI"])
    armed: list[int] = []

    def delete_first(connection, cursor, statement, parameters, context, executemany):
        if armed and statement.lstrip().upper().startswith("UPDATE PAINTS"):
            with other.begin() as deleting:
                deleting.execute(delete(Paint).where(Paint.id == armed.pop()))

    event.listen(engine, "before_cursor_execute", delete_first)
    yield armed.append
    event.remove(engine, "before_cursor_execute", delete_first)
    other.dispose()


@ON_POSTGRESQL
@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("patch", "/api/v1/paints/{}", {"version": 1, "name": "Renamed"}),
        ("patch", "/api/v1/paints/{}", {"version": 1, "stock": 9}),
        ("patch", "/api/v1/paints/{}", {"original": {"name": "Abaddon Black"}, "name": "X"}),
        ("post", "/api/v1/paints/{}/stock", {"delta": -1, "reason": "sold"}),
    ],
)
def test_an_edit_racing_a_delete_is_a_404(committed_app, deleted_before_update, method, path, body):
    api = make_api(committed_app)
    paint = {"name": "Abaddon Black", "brand": "Citadel", "price": "4.50", "stock": 3}
    paint_id = api.post("/api/v1/paints", json=paint).json["id"]
    deleted_before_update(paint_id)
    response = getattr(api, method)(path.format(paint_id), json=body)
    assert response.status_code == 404
    assert response.json["error"]["code"] == "not_found"


def test_an_over_long_url_is_a_414_in_json_under_the_api(api):
    response = api.get("/api/v1/paints", query_string={"q": "a" * (MAX_URL_LENGTH + 1)})
    assert response.status_code == 414
    assert response.json["error"]["code"] == "uri_too_long"
    assert api.get("/login?q=" + "a" * (MAX_URL_LENGTH + 1)).status_code == 414


def served(flask_app, path: str, host: str) -> tuple[int, bytes]:
    """Return the status and body of a GET as a WSGI server would get them.

    Not through the test client, which cannot itself read back some of these hosts.
    """
    environ = EnvironBuilder(path=path, headers={"Host": host}).get_environ()
    statuses = []
    body = b"".join(flask_app(environ, lambda status, headers: statuses.append(status)))
    return int(statuses[0].split()[0]), body


@pytest.mark.parametrize(
    "host", ["shop.example..", "..", "xn--", "xn--abc", "a" * 64 + ".com", "é.com", "a b"]
)
@pytest.mark.parametrize("path", ["/login", "/admin/", "/health", "/api/v1/paints"])
def test_a_host_header_that_is_no_host_name_is_a_400(app, path, host):
    """Such a host left werkzeug without URLs to build: every page that links was a 500."""
    status, body = served(app, path, host)
    assert status == 400
    if path.startswith("/api/"):
        assert json.loads(body)["error"]["code"] == "bad_request"
    assert b"not a host name" in body


@pytest.mark.parametrize(
    "host", ["shop.example", "shop.example.", "SHOP.example:8080", "[::1]", "studio_web:8000"]
)
def test_a_host_name_is_let_through(client, host):
    assert client.get("/health", headers={"Host": host}).status_code == 200


def test_the_longest_url_studio_makes_is_taken(api, paint_id):
    # Every text filter at its longest, each character 4 UTF-8 bytes, and a cursor.
    cursor = api.get("/api/v1/paints?per_page=1").json["pagination"]["next_cursor"] or ""
    filters = {field: "🎨" * length for field, length in TEXT_FILTERS.items()}
    query = {**filters, "after": cursor + "A" * (1000 - len(cursor)), "sort": "-created_at"}
    response = api.get("/api/v1/paints", query_string=query)
    assert response.status_code == 422  # the forged cursor, not the length
    assert set(response.json["error"]["fields"]) == {"after"}


def admin_client(flask_app):
    client = flask_app.test_client()
    sign_in_as(client, make_api(flask_app, "admin").user.id)
    return client


@ON_POSTGRESQL
def test_an_admin_edit_racing_a_delete_is_a_404(committed_app, deleted_before_update):
    paint = paints.create_paint({"name": "Abaddon Black", "brand": "Citadel"}, actor=None)
    client = admin_client(committed_app)
    form = form_on(client.get(f"/admin/paints/{paint.id}/edit").get_data(as_text=True))
    deleted_before_update(paint.id)
    response = client.post(f"/admin/paints/{paint.id}/edit", data={**form, "name": "Renamed"})
    assert response.status_code == 404
    assert "does not exist" in response.get_data(as_text=True)


@ON_POSTGRESQL
def test_an_admin_stock_change_racing_a_delete_is_a_404(committed_app, deleted_before_update):
    paint = paints.create_paint({"name": "Abaddon Black", "brand": "Citadel"}, actor=None)
    client = admin_client(committed_app)
    form = form_on(client.get(f"/admin/paints/{paint.id}").get_data(as_text=True))
    deleted_before_update(paint.id)
    response = client.post(f"/admin/paints/{paint.id}", data={**form, "delta": "3", "reason": "x"})
    assert response.status_code == 404
