"""The HTML admin, through the test client: pages, forms, errors and safeguards."""

import csv
import html
import io
import re

import pytest

from studio.extensions import db
from studio.models import Paint
from studio.services.listing import TEXT_FILTERS

from .conftest import make_api, stored, token_from

PAINT_FORM = {
    "name": "Mephiston Red",
    "brand": "Citadel",
    "color_code": "21-03",
    "color_type": "Base",
    "color_family": "Red",
    "stock": "7",
    "price": "4.55",
    "color_preview": "#9a1115",
    "image_url": "",
    "description": "A rich red.",
}


@pytest.mark.parametrize(
    "path",
    [
        "/admin/",
        "/admin/paints",
        "/admin/paints/new",
        "/admin/paints/import",
        "/admin/paints/export.csv",
    ],
)
def test_admin_pages_need_sign_in(client, path):
    response = client.get(path)
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login?next=")


@pytest.mark.parametrize(
    "path", ["/admin/", "/admin/paints", "/admin/paints/new", "/admin/paints/import"]
)
def test_pages_render_with_navigation_and_security_headers(admin, path):
    response = admin.get(path)
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    for link in ("/admin/", "/admin/paints", "/admin/paints/new", "/admin/paints/import"):
        assert f'href="{link}"' in page
    policy = response.headers["Content-Security-Policy"]
    assert "unsafe-inline" not in policy and "frame-ancestors 'none'" in policy
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Referrer-Policy"]
    assert "<script>" not in page and " style=" not in page


def test_sign_in_page_is_protected_too(client):
    response = client.get("/login")
    assert response.status_code == 200
    assert "unsafe-inline" not in response.headers["Content-Security-Policy"]
    assert response.headers["X-Frame-Options"] == "DENY"


def test_session_cookie_is_httponly_and_lax(client, app):
    make_api(app, "cookie")
    page = client.get("/login").get_data(as_text=True)
    data = {
        "username": "cookie",
        "password": "correct horse battery",
        "csrf_token": token_from(page),
    }
    cookie = client.post("/login", data=data).headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_create_paint_through_the_form(admin):
    response = admin.post("/admin/paints/new", PAINT_FORM)
    assert response.status_code == 302
    paint = db.session.query(Paint).one()
    assert response.headers["Location"] == f"/admin/paints/{paint.id}"
    assert (paint.stock, str(paint.price), paint.color_preview) == (7, "4.55", "#9A1115")
    detail = admin.get(response.headers["Location"]).get_data(as_text=True)
    assert "Added Mephiston Red" in detail and '<td data-label="What">Created</td>' in detail


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"name": ""}, "Name is required."),
        ({"price": "4.5555"}, "Price must have at most two decimal places."),
        ({"price": "cheap"}, "Price must be a number such as 4.50 or 4,50."),
        ({"stock": "-2"}, "Stock must be between 0 and"),
        ({"stock": "lots"}, "Stock must be a whole number such as 12."),
        ({"color_preview": "red"}, "Swatch colour must be a colour written #RRGGBB"),
        ({"image_url": "javascript:alert(1)"}, "Image URL must be an http:// or https:// address."),
    ],
)
def test_form_errors_show_next_to_the_field_and_keep_the_typed_values(admin, changes, message):
    response = admin.post("/admin/paints/new", {**PAINT_FORM, **changes})
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert message in page
    assert 'value="Citadel"' in page and "A rich red." in page
    assert db.session.query(Paint).count() == 0


def test_duplicate_code_is_refused_on_the_form(admin, make_paint):
    make_paint(brand="Citadel", color_code="21-03")
    response = admin.post("/admin/paints/new", PAINT_FORM)
    assert response.status_code == 409
    assert "already used by another paint of this brand" in response.get_data(as_text=True)


def test_form_without_csrf_token_is_refused(admin):
    response = admin.client.post("/admin/paints/new", data=PAINT_FORM)
    assert response.status_code == 400
    assert db.session.query(Paint).count() == 0


def test_detail_shows_fields_image_and_history(admin, make_paint):
    paint = make_paint(
        name="Shown", stock=4, image_url="http://localhost/p.png", description="Nice"
    )
    page = admin.get(f"/admin/paints/{paint.id}").get_data(as_text=True)
    assert "Shown" in page and 'src="http://localhost/p.png"' in page and "Nice" in page
    assert '<td data-label="What">Created</td>' in page


def test_quick_stock_adjustment(admin, make_paint):
    paint = make_paint(stock=4)
    path = f"/admin/paints/{paint.id}"
    response = admin.post(
        path, {"delta": "-3", "reason": "Sold"}, form_page=f"/admin/paints/{paint.id}"
    )
    assert response.status_code == 302
    assert stored(paint.id).stock == 1
    page = admin.get(f"/admin/paints/{paint.id}").get_data(as_text=True)
    assert "Stock -3: now 1." in page and "Sold" in page


@pytest.mark.parametrize(
    ("data", "status", "message"),
    [
        ({"delta": "-9", "reason": "Sold"}, 409, "would take stock below 0"),
        ({"delta": "0", "reason": "Sold"}, 422, "must not be 0"),
        ({"delta": "x", "reason": "Sold"}, 422, "must be a whole number"),
        ({"delta": "2", "reason": ""}, 422, "Reason is required"),
    ],
)
def test_bad_stock_adjustments_are_explained(admin, make_paint, data, status, message):
    paint = make_paint(stock=4)
    path = f"/admin/paints/{paint.id}"
    response = admin.post(path, data, form_page=f"/admin/paints/{paint.id}")
    assert response.status_code == status
    assert message in response.get_data(as_text=True)
    assert stored(paint.id).stock == 4


def test_delete_needs_confirmation_by_post(admin, make_paint):
    paint = make_paint()
    path = f"/admin/paints/{paint.id}/delete"
    confirm = admin.get(path)
    assert confirm.status_code == 200 and "cannot be undone" in confirm.get_data(as_text=True)
    assert db.session.get(Paint, paint.id) is not None
    response = admin.post(path)
    assert response.status_code == 302 and response.headers["Location"] == "/admin/paints"
    assert db.session.query(Paint).count() == 0


def test_unknown_paint_is_a_404_page(admin):
    response = admin.get("/admin/paints/424242")
    assert response.status_code == 404
    assert "Paint 424242 does not exist." in response.get_data(as_text=True)


@pytest.mark.parametrize(
    ("query", "shown", "hidden"),
    [
        ("q=mephiston", ["Mephiston Red"], ["Bone White"]),
        ("brand=Vallejo", ["Bone White"], ["Mephiston Red"]),
        ("stock=out_of_stock", ["Bone White"], ["Mephiston Red"]),
        ("sort=-name&per_page=1", ["Mephiston Red"], ["Bone White"]),
        ("sort=name&per_page=1&page=2", ["Mephiston Red"], ["Bone White"]),
    ],
)
def test_list_filters_live_in_the_url(admin, make_paint, query, shown, hidden):
    make_paint(name="Mephiston Red", brand="Citadel", stock=10)
    make_paint(name="Bone White", brand="Vallejo", stock=0)
    page = admin.get(f"/admin/paints?{query}").get_data(as_text=True)
    for name in shown:
        assert name in page
    for name in hidden:
        assert name not in page


def test_list_marks_low_and_out_of_stock(admin, make_paint):
    make_paint(name="Plenty", stock=50)
    make_paint(name="Few", stock=2)
    make_paint(name="None left", stock=0)
    page = admin.get("/admin/paints").get_data(as_text=True)
    assert "2 · low" in page and "Out of stock" in page


def test_the_search_box_takes_no_more_than_a_search_may_be(admin):
    page = admin.get("/admin/paints").get_data(as_text=True)
    box = re.search(r'<input type="search"[^>]*>', page).group(0)
    assert f'maxlength="{TEXT_FILTERS["q"]}"' in box


def test_list_explains_bad_query_values(admin):
    response = admin.get("/admin/paints?per_page=5000&sort=colour")
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert "per_page must be between 1 and 100." in page and "sort must be one of" in page


def test_dashboard_figures_and_charts(admin, make_paint):
    make_paint(name="Red one", color_family="Red", brand="Citadel", stock=3, price="2.00")
    make_paint(name="Blue one", color_family="Blue", brand="Vallejo", stock=10, price="1.50")
    make_paint(name="Gone", color_family="Blue", brand="Vallejo", stock=0)
    page = admin.get("/admin/").get_data(as_text=True)
    assert re.search(r'data-stat="paints" data-value="3">3<', page)
    assert re.search(r'data-stat="units" data-value="13">13<', page)
    assert re.search(r'data-stat="value" data-value="21.00">€21.00<', page)
    assert re.search(r'data-stat="low_stock" data-value="1">1<', page)
    assert 'href="/admin/paints?stock=out_of_stock"' in page
    assert "Red one" in page  # in the running-low list
    assert (
        page.count("<svg") >= 3 and "Units per colour family" in page and "Units per brand" in page
    )


def test_hostile_names_are_shown_as_text(admin, make_paint):
    paint = make_paint(name="<script>alert(1)</script>", brand="<img src=x onerror=alert(1)>")
    for path in (
        "/admin/paints",
        f"/admin/paints/{paint.id}",
        f"/admin/paints/{paint.id}/edit",
        "/admin/",
    ):
        page = admin.get(path).get_data(as_text=True)
        assert "<script>alert(1)</script>" not in page and "<img src=x" not in page
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page or path == "/admin/"


def test_export_takes_the_list_filters(admin, make_paint):
    make_paint(name='=HYPERLINK("x")', brand="Citadel", stock=2, price="4.55")
    make_paint(name="Other", brand="Vallejo")
    response = admin.get("/admin/paints/export.csv?brand=Citadel")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(response.get_data().decode("utf-8-sig"))))
    assert len(rows) == 1
    assert rows[0]["brand"] == "Citadel" and rows[0]["price"] == "4.55" and rows[0]["stock"] == "2"
    # A spreadsheet must not run a paint's name as a formula.
    assert rows[0]["name"] == '\'=HYPERLINK("x")'


def upload(admin, text, filename="paints.csv"):
    data = {"file": (io.BytesIO(text.encode()), filename)}
    return admin.post("/admin/paints/import", data, content_type="multipart/form-data")


# The import's check, confirmation and limits: tests/test_imports.py.


def test_import_lists_every_bad_row_and_imports_nothing(admin, make_paint):
    make_paint(brand="Citadel", color_code="21-25")
    text = (
        "name,brand,color_code,stock,price\n"
        "Good,Vallejo,1,1,1.00\n"
        ",Vallejo,2,1,1.00\n"
        "Dup,Citadel,21-25,1,1.00\n"
        "Neg,Vallejo,3,-1,1.00\n"
        "Twice,Vallejo,1,1,1.00\n"
        "Money,Vallejo,4,1,1.9999\n"
    )
    response = upload(admin, text)
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    rows = re.findall(r'<tr><td class="num">(\d+)</td><td>([^<]*)</td></tr>', page)
    assert [int(line) for line, _ in rows] == [3, 4, 5, 6, 7]
    reasons = {line: html.unescape(reason) for line, reason in rows}
    assert "name is required" in reasons["3"]
    assert "already in the inventory" in reasons["4"]
    assert 'stock "-1" must be between' in reasons["5"]
    assert "repeats line 2" in reasons["6"]
    assert "two decimal places" in reasons["7"]
    assert db.session.query(Paint).count() == 1


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"brand,colour\nx,y\n", "missing column(s): name"),
        (b"name,brand\n", "no paints after it"),
        (b"\xff\xfe bad bytes", "is UTF-16 text"),
        (b"name,brand\na,b,c\n", "more cells than the header"),
    ],
)
def test_import_refuses_broken_files(admin, content, message):
    data = {"file": (io.BytesIO(content), "paints.csv")}
    response = admin.post("/admin/paints/import", data, content_type="multipart/form-data")
    assert response.status_code == 422
    assert message in response.get_data(as_text=True)


def test_import_without_a_file_asks_for_one(admin):
    response = admin.post("/admin/paints/import", {})
    assert response.status_code == 422
    assert "Choose a CSV file" in response.get_data(as_text=True)


def test_exported_file_imports_back(admin, make_paint):
    make_paint(name="Round trip", brand="Citadel", color_code="RT-1", stock=3, price="9.99")
    exported = admin.get("/admin/paints/export.csv").get_data(as_text=True)
    db.session.query(Paint).delete()
    db.session.commit()
    response = upload(admin, exported)
    assert response.status_code == 200 and "Ready to import 1 paint" in response.get_data(
        as_text=True
    )


def test_sign_in_is_throttled_per_username(client, app):
    make_api(app, "victim")
    statuses = []
    for _ in range(7):
        page = client.get("/login").get_data(as_text=True)
        data = {"username": "victim", "password": "wrong password", "csrf_token": token_from(page)}
        statuses.append(client.post("/login", data=data).status_code)
    assert statuses[:5] == [401] * 5
    assert statuses[5:] == [429, 429]


def test_sign_in_is_throttled_per_address(client, app):
    statuses = []
    for number in range(22):
        page = client.get("/login").get_data(as_text=True)
        data = {
            "username": f"user{number}",
            "password": "wrong password",
            "csrf_token": token_from(page),
        }
        statuses.append(client.post("/login", data=data).status_code)
    assert statuses[:20] == [401] * 20 and statuses[20:] == [429, 429]


def test_errors_render_in_the_layout_without_internals(admin, app, monkeypatch):
    from studio.services import stats

    monkeypatch.setattr(stats, "inventory_stats", lambda threshold: 1 / 0)
    monkeypatch.setitem(app.config, "PROPAGATE_EXCEPTIONS", False)
    response = admin.get("/admin/")
    assert response.status_code == 500
    page = response.get_data(as_text=True)
    assert "Something went wrong on our side" in page and "ZeroDivisionError" not in page
    assert 'href="/admin/paints"' in page


def test_next_page_link_follows_the_cursor(admin, make_paint):
    for number in range(5):
        make_paint(name=f"Paint {number}")
    page = admin.get("/admin/paints?per_page=2&sort=-name").get_data(as_text=True)
    next_link = html.unescape(re.search(r'href="([^"]+)" rel="next"', page).group(1))
    assert "after=" in next_link and "page=2" in next_link
    second = admin.get(next_link).get_data(as_text=True)
    assert "Paint 2" in second and "Paint 1" in second and "Paint 4" not in second
    third_link = html.unescape(re.search(r'href="([^"]+)" rel="next"', second).group(1))
    assert "Paint 0" in admin.get(third_link).get_data(as_text=True)
    # Changing the sort starts again from the first page, without the old cursor.
    sort_link = html.unescape(re.search(r'href="([^"]*sort=price[^"]*)"', second).group(1))
    assert "after=" not in sort_link and admin.get(sort_link).status_code == 200


def test_new_paint_without_stock_or_price_gets_zero(admin):
    response = admin.post("/admin/paints/new", {**PAINT_FORM, "stock": "", "price": ""})
    assert response.status_code == 302
    paint = db.session.query(Paint).one()
    assert (paint.stock, str(paint.price)) == (0, "0.00")


@pytest.mark.parametrize(
    ("path", "said_before"),
    [
        ("/admin/paints?page=999", "No paints match these filters."),
        ("/admin/activity?page=999", "No changes recorded yet."),
        ("/admin/reorder?page=999", None),
    ],
)
def test_a_page_past_the_last_says_so_and_links_to_the_last(admin, make_paint, path, said_before):
    """A bookmarked or typed page beyond the end said nothing matched, or 'Page 999 of 1'."""
    for number in range(3):
        make_paint(name=f"Paint {number}", stock=1, reorder_level=5)
    response = admin.get(path)
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert said_before is None or said_before not in page
    assert "Page 999 is past the last page (1)." in page
    last = html.unescape(re.search(r'href="([^"]+)"\s*>Go to page 1<', page).group(1))
    assert "page=1" in last and "Paint 0" in admin.get(last).get_data(as_text=True)
