"""Edits that merge: only a field both sides changed refuses a save, on the admin and the API."""

from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from html.parser import HTMLParser

import pytest
from sqlalchemy import select

from studio.extensions import db
from studio.models import Paint, StockMovement, VocabularyTerm
from studio.services import paints, stock, vocabularies
from studio.services.errors import Conflict, EditConflict, ValidationError
from studio.services.validation import PAINT_FIELDS
from tests.conftest import make_api, stored


class FormReader(HTMLParser):
    """Read a page's form fields as a browser would submit them, unchanged."""

    def __init__(self) -> None:
        super().__init__()
        self.values: dict[str, str] = {}
        self._textarea: str | None = None
        self._select: str | None = None

    def handle_starttag(self, tag: str, attrs: list) -> None:
        attributes = dict(attrs)
        name = attributes.get("name")
        if tag == "input" and name:
            self.values[name] = attributes.get("value") or ""
        elif tag == "textarea" and name:
            self._textarea, self.values[name] = name, ""
        elif tag == "select" and name:
            self._select, self.values[name] = name, ""
        elif tag == "option" and self._select and "selected" in attributes:
            self.values[self._select] = attributes.get("value") or ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "textarea":
            self._textarea = None
        elif tag == "select":
            self._select = None

    def handle_data(self, data: str) -> None:
        if self._textarea:
            self.values[self._textarea] += data.removeprefix("\r\n").removeprefix("\n")


def form_on(page: str) -> dict[str, str]:
    reader = FormReader()
    reader.feed(page)
    return reader.values


def open_edit(admin, paint_id: int) -> dict[str, str]:
    """Open the paint's edit form; return what it would submit as it is."""
    return form_on(admin.get(f"/admin/paints/{paint_id}/edit").get_data(as_text=True))


def save(admin, paint_id: int, form: dict[str, str], **typed: str):
    return admin.client.post(f"/admin/paints/{paint_id}/edit", data={**form, **typed})


def original_of(paint) -> dict:
    """The values an editor saw, as the services take them."""
    return {name: getattr(paint, name) for name in PAINT_FIELDS}


def sell(paint_id: int, units: int = 1) -> None:
    stock.adjust_stock(paint_id, -units, "Sold", None)


# The service, on SQLite and PostgreSQL.


def test_a_price_edit_after_a_sale_is_saved_and_keeps_the_sale(make_paint):
    paint = make_paint(stock=10, price="4.50")
    opened = original_of(paint)
    sell(paint.id, 3)
    saved = paints.update_paint(paint.id, {"price": "4.95", "original": opened}, None)
    assert (saved.price, saved.stock) == (Decimal("4.95"), 7)
    assert (stored(paint.id).price, stored(paint.id).stock) == (Decimal("4.95"), 7)


def test_a_name_edit_keeps_a_description_changed_meanwhile(make_paint):
    paint = make_paint(name="Old", description="First words")
    opened = original_of(paint)
    paints.update_paint(paint.id, {"description": "Bob's words", "original": opened}, None)
    # The form sends every field: the description as it was when it was opened.
    paints.update_paint(
        paint.id, {**opened, "name": "New", "description": "First words", "original": opened}, None
    )
    assert (stored(paint.id).name, stored(paint.id).description) == ("New", "Bob's words")


def test_both_changing_the_price_is_a_conflict_and_nothing_is_written(make_paint):
    paint = make_paint(name="Keep", price="4.50")
    opened = original_of(paint)
    paints.update_paint(paint.id, {"price": "5.00", "original": opened}, None)
    with pytest.raises(EditConflict) as refused:
        paints.update_paint(paint.id, {"name": "Mine", "price": "4.75", "original": opened}, None)
    conflict = refused.value
    assert set(conflict.fields) == {"price"}
    assert "it is now 5.00 (it was 4.50 when this edit began)" in conflict.fields["price"]
    assert conflict.extra["conflicts"] == {
        "price": {"original": Decimal("4.50"), "current": Decimal("5.00")}
    }
    assert conflict.edited == {"name", "price"} and conflict.current.price == Decimal("5.00")
    assert (stored(paint.id).name, stored(paint.id).price) == ("Keep", Decimal("5.00"))


def test_the_same_change_made_twice_is_no_conflict(make_paint):
    paint = make_paint(price="4.50")
    opened = original_of(paint)
    paints.update_paint(paint.id, {"price": "5.00", "original": opened}, None)
    saved = paints.update_paint(paint.id, {"price": "5.00", "name": "X", "original": opened}, None)
    assert (saved.price, saved.name) == (Decimal("5.00"), "X")


def test_a_stock_correction_during_a_sale_is_a_conflict_on_stock(make_paint):
    paint = make_paint(stock=10)
    opened = original_of(paint)
    sell(paint.id)
    with pytest.raises(EditConflict) as refused:
        paints.update_paint(paint.id, {"stock": 12, "price": "9.00", "original": opened}, None)
    assert set(refused.value.fields) == {"stock"}
    assert (stored(paint.id).stock, stored(paint.id).price) == (9, Decimal("4.50"))
    kinds = db.session.query(StockMovement.kind).filter_by(paint_id=paint.id).all()
    assert sorted(kind for (kind,) in kinds) == ["adjustment", "initial"]


def test_a_stock_correction_is_recorded_from_the_stock_the_editor_saw(make_paint):
    paint = make_paint(stock=10)
    opened = original_of(paint)
    saved = paints.update_paint(paint.id, {"stock": 4, "original": opened}, None)
    assert saved.stock == 4
    last = db.session.query(StockMovement).filter_by(paint_id=paint.id, kind="correction").one()
    assert (last.delta, last.stock_after) == (-6, 4)


def test_a_save_that_changes_nothing_writes_nothing(make_paint):
    paint = make_paint(price="4.50")
    opened = original_of(paint)
    saved = paints.update_paint(paint.id, {"price": "4.5", "original": opened}, None)
    assert saved.version == 1 and stored(paint.id).version == 1


@pytest.mark.parametrize(
    ("original", "message"),
    [
        ("4.50", "must be an object"),
        ([1, 2], "must be an object"),
        ({"price": "4.50", "colour": "red"}, "unknown fields: colour"),
        ({}, "started from of: price"),
        ({"price": "cheap"}, "price must be a number"),
        ({"price": None}, "price is required"),
        ({"price": {"nested": 1}}, "price must be a number"),
    ],
)
def test_a_malformed_original_is_refused_by_name(make_paint, original, message):
    paint = make_paint(price="4.50")
    with pytest.raises(ValidationError) as refused:
        paints.update_paint(paint.id, {"price": "5.00", "original": original}, None)
    assert message in refused.value.fields["original"]
    assert stored(paint.id).price == Decimal("4.50")


def test_version_and_original_together_are_refused(make_paint):
    paint = make_paint()
    with pytest.raises(ValidationError) as refused:
        paints.update_paint(
            paint.id, {"name": "X", "version": 1, "original": original_of(paint)}, None
        )
    assert "version" in refused.value.fields


def test_a_merged_edit_keeps_codes_unique(make_paint):
    make_paint(brand="Citadel", color_code="21-03")
    paint = make_paint(brand="Citadel", color_code="21-04")
    with pytest.raises(Conflict) as refused:
        paints.update_paint(paint.id, {"color_code": "21-03", "original": original_of(paint)}, None)
    assert refused.value.fields == {"color_code": "is already used by another paint of this brand."}


def test_edits_racing_sales_lose_no_unit(committed_app):
    """20 sales and 20 price or name edits, all opened before any sale, at the same moment."""
    api = make_api(committed_app)
    paint = paints.create_paint({"name": "Busy", "brand": "Citadel", "stock": 50}, actor=None)
    paint_id, opened = paint.id, {"price": "0.00", "name": "Busy"}
    db.session.remove()

    def sell_one(_):
        body = {"delta": -1, "reason": "Sold"}
        return api.post(f"/api/v1/paints/{paint_id}/stock", json=body).status_code

    def edit(number):
        body = {"original": opened, **({"price": "9.99"} if number % 2 else {"name": "Renamed"})}
        return api.patch(f"/api/v1/paints/{paint_id}", json=body).status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        sales = pool.map(sell_one, range(20))
        edits = pool.map(edit, range(20))
        assert (list(sales), list(edits)) == ([201] * 20, [200] * 20)
    saved = db.session.get(Paint, paint_id)
    assert (saved.stock, saved.price, saved.name) == (30, Decimal("9.99"), "Renamed")
    sold = db.session.query(StockMovement).filter_by(paint_id=paint_id, kind="adjustment")
    assert sold.count() == 20


# The admin's edit form.


def test_the_form_saves_a_price_after_a_sale_made_through_the_api(admin, api, make_paint):
    paint = make_paint(name="Keep", stock=10, price="4.50")
    form = open_edit(admin, paint.id)
    assert "version" not in form and form["original"]
    sale = {"delta": -2, "reason": "Sold"}
    assert api.post(f"/api/v1/paints/{paint.id}/stock", json=sale).status_code == 201
    response = save(admin, paint.id, form, price="4,95", name="Renamed")
    assert response.status_code == 302
    paint = stored(paint.id)
    assert (paint.price, paint.stock, paint.name) == (Decimal("4.95"), 8, "Renamed")


def test_a_price_edit_is_saved_though_the_type_was_renamed_meanwhile(admin, make_paint):
    paint = make_paint(color_type="Layer", price="4.50")
    form = open_edit(admin, paint.id)
    layer = db.session.scalars(
        select(VocabularyTerm).where(
            VocabularyTerm.kind == "color_type", VocabularyTerm.name == "Layer"
        )
    ).one()
    vocabularies.rename_term(layer.id, "Layer paint")
    assert save(admin, paint.id, form, price="4,95").status_code == 302
    assert (stored(paint.id).price, stored(paint.id).color_type) == (
        Decimal("4.95"),
        "Layer paint",
    )


def test_a_conflict_keeps_what_was_typed_and_shows_what_changed(admin, make_paint):
    paint = make_paint(name="Keep", price="4.50", description="Old words")
    form = open_edit(admin, paint.id)
    opened = original_of(paint)
    paints.update_paint(
        paint.id, {"price": "5.00", "description": "Bob's", "original": opened}, None
    )

    response = save(admin, paint.id, form, price="4.75", name="Mine")
    assert response.status_code == 409
    page = response.get_data(as_text=True)
    assert "Someone else changed this paint while you were editing it" in page
    assert "Price was changed by someone else" in page
    assert "it is now 5.00 (it was 4.50 when this edit began)" in page
    shown = form_on(page)
    # Typed values stay; the field the admin left alone shows what Bob wrote.
    assert (shown["price"], shown["name"], shown["description"]) == ("4.75", "Mine", "Bob's")
    assert (stored(paint.id).name, stored(paint.id).price) == ("Keep", Decimal("5.00"))

    assert save(admin, paint.id, shown).status_code == 302
    paint = stored(paint.id)
    assert (paint.name, paint.price, paint.description) == ("Mine", Decimal("4.75"), "Bob's")


def test_an_altered_original_is_refused_without_harm(admin, make_paint):
    paint = make_paint(name="Keep", price="4.50")
    form = open_edit(admin, paint.id)
    other_paints = open_edit(admin, make_paint(name="Other", price="9.00").id)["original"]
    forgeries = ("", "not-a-token", form["original"][:-2] + "xx", "eyJwcmljZSI6IjEifQ.x")
    for forged in (*forgeries, other_paints):
        response = save(admin, paint.id, {**form, "original": forged}, name="Mine")
        assert response.status_code == 422
        page = response.get_data(as_text=True)
        assert "could not be matched with the paint as you opened it" in page
        assert form_on(page)["name"] == "Mine"
    assert stored(paint.id).name == "Keep"


def test_the_edit_form_records_a_stock_correction(admin, make_paint):
    paint = make_paint(stock=3)
    response = save(admin, paint.id, open_edit(admin, paint.id), stock="5")
    assert response.status_code == 302
    paint = stored(paint.id)
    assert (paint.stock, paint.version) == (5, 2)
    correction = db.session.query(StockMovement).filter_by(kind="correction").one()
    assert (correction.delta, correction.stock_after) == (2, 5)


def test_emptying_price_on_edit_is_refused(admin, make_paint):
    paint = make_paint(price="3.00")
    response = save(admin, paint.id, open_edit(admin, paint.id), price="")
    assert response.status_code == 422
    assert "Price is required." in response.get_data(as_text=True)
    assert stored(paint.id).price == Decimal("3.00")


# The API: `version` refuses any change since; `original` merges as the form does.


def test_patch_with_original_is_not_blocked_by_a_sale(api, make_paint):
    paint = make_paint(stock=5, price="4.50")
    before = api.get(f"/api/v1/paints/{paint.id}").get_json()
    api.post(f"/api/v1/paints/{paint.id}/stock", json={"delta": -1, "reason": "Sold"})
    original = {"price": before["price"]}
    response = api.patch(f"/api/v1/paints/{paint.id}", json={"price": "4.80", "original": original})
    assert response.status_code == 200
    assert (response.get_json()["price"], response.get_json()["stock"]) == ("4.80", 4)


def test_patch_with_original_names_the_clashing_field(api, make_paint):
    paint = make_paint(price="4.50")
    api.patch(f"/api/v1/paints/{paint.id}", json={"price": "5.00", "original": {"price": "4.50"}})
    response = api.patch(
        f"/api/v1/paints/{paint.id}", json={"price": "4.80", "original": {"price": "4.50"}}
    )
    assert response.status_code == 409
    error = response.get_json()["error"]
    assert error["code"] == "edit_conflict" and list(error["fields"]) == ["price"]
    assert error["conflicts"] == {"price": {"original": "4.50", "current": "5.00"}}
    assert error["current_version"] == 2


def test_patch_with_a_version_is_still_refused_after_a_sale(api, make_paint):
    paint = make_paint(stock=5)
    api.post(f"/api/v1/paints/{paint.id}/stock", json={"delta": -1, "reason": "Sold"})
    response = api.patch(f"/api/v1/paints/{paint.id}", json={"version": 1, "price": "4.80"})
    assert response.status_code == 409
    assert response.get_json()["error"]["code"] == "version_conflict"


def test_patch_with_a_malformed_original_is_422(api, make_paint):
    paint = make_paint()
    response = api.patch(f"/api/v1/paints/{paint.id}", json={"price": "4.80", "original": "x"})
    assert response.status_code == 422
    assert "original" in response.get_json()["error"]["fields"]
