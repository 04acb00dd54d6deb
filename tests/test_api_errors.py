"""Bad requests get one clear JSON error shape, the right status, and change nothing."""

import pytest

from studio.extensions import db
from studio.models import Paint
from studio.services import stats

WRITE_ROUTES = [
    ("post", "/api/v1/paints"),
    ("patch", "/api/v1/paints/{id}"),
    ("post", "/api/v1/paints/{id}/stock"),
]


def assert_error(response, status, code):
    assert response.status_code == status, response.get_data(as_text=True)
    error = response.get_json()["error"]
    assert error["code"] == code
    assert error["message"]
    assert isinstance(error["fields"], dict)
    return error


@pytest.fixture
def paint_id(make_paint):
    return make_paint(stock=5).id


@pytest.mark.parametrize(("method", "route"), WRITE_ROUTES)
@pytest.mark.parametrize(
    "body",
    [
        b"{",
        b"[1, 2]",
        b'"text"',
        b"null",
        b"\xff\xfe\x00",
        b'{"name": NaN}',
        b'{"a": Infinity}',
        b"[" * 5000,
    ],
)
def test_malformed_bodies_are_400(api, paint_id, method, route, body):
    response = getattr(api, method)(
        route.format(id=paint_id), data=body, headers={"Content-Type": "application/json"}
    )
    assert_error(response, 400, "bad_request")
    assert db.session.get(Paint, paint_id).version == 1


@pytest.mark.parametrize(("method", "route"), WRITE_ROUTES)
@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded"])
def test_bodies_that_are_not_json_are_415(api, paint_id, method, route, content_type):
    headers = {"Content-Type": content_type} if content_type else {}
    response = getattr(api, method)(
        route.format(id=paint_id), data=b'{"name": "x"}', headers=headers
    )
    assert_error(response, 415, "unsupported_media_type")


def test_a_body_over_the_limit_is_413(api, app):
    huge = b'{"name": "' + b"x" * (app.config["MAX_CONTENT_LENGTH"] + 1) + b'"}'
    response = api.post("/api/v1/paints", data=huge, headers={"Content-Type": "application/json"})
    assert_error(response, 413, "payload_too_large")
    assert db.session.query(Paint).count() == 0


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("put", "/api/v1/paints", 405, "method_not_allowed"),
        ("delete", "/api/v1/stats", 405, "method_not_allowed"),
        ("get", "/api/v1/colours", 404, "not_found"),
        ("get", "/api/v1/paints/abc", 404, "not_found"),
        ("get", "/api/v1/paints/0", 404, "not_found"),
        ("get", "/api/v1/paints/-1", 404, "not_found"),
    ],
)
def test_routing_errors_are_json(api, method, path, status, code):
    assert_error(getattr(api, method)(path), status, code)


def test_method_not_allowed_lists_the_allowed_ones(api):
    response = api.put("/api/v1/paints")
    assert "POST" in response.headers["Allow"]


@pytest.mark.parametrize(
    "payload",
    [
        {"name": "\x00", "brand": "\x00"},
        {"name": "a", "brand": "b", "stock": 2**63},
        {"name": "a", "brand": "b", "stock": -(2**63)},
        {"name": "a", "brand": "b", "price": "9" * 400},
        {"name": "a", "brand": "b", "price": {"amount": 1}},
        {"name": ["a"], "brand": {"b": 1}},
        {"name": "a", "brand": "b", "color_preview": "#" + "0" * 10_000},
        {"name": "a", "brand": "b", "image_url": "http://" + "x" * 1000},
        {"name": "a", "brand": "b", "description": "ok\nlines\tand tabs"},
        {"name": "\u202ereversed", "brand": "\U0001f3a8 brand"},
        {"name": "a", "brand": "b", "version": 3, "stock": 1},
        {},
    ],
)
def test_odd_values_never_cause_a_server_error(api, paint_id, payload):
    for method, route in WRITE_ROUTES:
        response = getattr(api, method)(route.format(id=paint_id), json=payload)
        assert response.status_code < 500, (method, route, response.get_data(as_text=True))


def test_unexpected_failures_are_json_500_and_roll_back(api, app, monkeypatch):
    def broken(threshold):
        db.session.add(Paint(name="half-written", brand="b"))
        db.session.flush()
        raise RuntimeError("the database melted")

    monkeypatch.setattr(stats, "inventory_stats", broken)
    monkeypatch.setitem(app.config, "PROPAGATE_EXCEPTIONS", False)
    response = api.get("/api/v1/stats")
    error = assert_error(response, 500, "internal_error")
    assert "melted" not in error["message"]
    assert db.session.query(Paint).filter_by(name="half-written").count() == 0


def test_html_errors_leak_no_internals(client, app, monkeypatch):
    response = client.get("/no/such/page")
    assert response.status_code == 404
    assert "There is nothing at this address" in response.get_data(as_text=True)
