"""The paints list's quick −1/+1 and bulk actions, posted as the page's forms are."""

import csv
import html
import io

import pytest
from sqlalchemy import func, select

from studio.extensions import db
from studio.models import StockMovement
from studio.services import bulk
from studio.services.validation import MAX_STOCK

from .conftest import stored, token_from

LIST = "/admin/paints?brand=Citadel&sort=name&per_page=20"


def text_of(response) -> str:
    return html.unescape(response.get_data(as_text=True))


def movements(paint_id: int) -> list[tuple[int, str]]:
    query = select(StockMovement.delta, StockMovement.reason).where(
        StockMovement.paint_id == paint_id, StockMovement.kind == "adjustment"
    )
    return [tuple(row) for row in stored_rows(query)]


def stored_rows(query):
    db.session.expire_all()
    return db.session.execute(query).all()


def test_the_list_offers_row_steps_and_selection(admin, make_paint):
    paint = make_paint(name="Listed", stock=3)
    page = text_of(admin.get(LIST))
    assert f'name="ids" value="{paint.id}" form="bulk"' in page
    assert 'name="step" value="-1"' in page and 'name="step" value="1"' in page
    assert f"An action changes at most {bulk.MAX_OPERATIONS:,} paints at once" in page
    assert 'action="/admin/paints?brand=Citadel&sort=name&per_page=20"' in page


def test_quick_step_without_script_goes_back_to_the_same_list(admin, make_paint):
    paint = make_paint(name="Stepped", stock=3)
    response = admin.post(LIST, {"step": "1", "paint_id": str(paint.id)})
    assert response.status_code == 303
    assert response.headers["Location"] == LIST
    assert stored(paint.id).stock == 4
    assert movements(paint.id) == [(1, "Quick +1 from the paints list")]
    assert "Stepped: stock +1, now 4." in text_of(admin.get(LIST))


def test_quick_step_from_the_script_answers_the_new_badge(admin, make_paint):
    paint = make_paint(name="Fetched", stock=1, reorder_level=5)
    token = token_from(admin.get(LIST).get_data(as_text=True))
    response = admin.client.post(
        LIST,
        data={"csrf_token": token, "step": "-1", "paint_id": str(paint.id)},
        headers={"Accept": "application/json"},
    )
    assert response.status_code == 200
    assert response.json["stock"] == 0
    assert "Out of stock" in response.json["badge"]
    refused = admin.client.post(
        LIST,
        data={"csrf_token": token, "step": "-1", "paint_id": str(paint.id)},
        headers={"Accept": "application/json"},
    )
    assert refused.status_code == 409
    assert refused.json["message"] == (
        "Fetched has 0 in stock: it cannot go below 0. Nothing was changed."
    )
    assert stored(paint.id).stock == 0


@pytest.mark.parametrize(
    ("fields", "status", "message"),
    [
        ({"step": "-1"}, 409, "Empty has 0 in stock: it cannot go below 0. Nothing was changed."),
        ({"step": "5"}, 422, "step must be 1 or -1."),
        ({"step": "1", "paint_id": "x"}, 422, "paint_id must be a whole number"),
    ],
)
def test_a_refused_step_shows_the_list_again_and_changes_nothing(
    admin, make_paint, fields, status, message
):
    paint = make_paint(name="Empty", stock=0)
    response = admin.post(LIST, {"paint_id": str(paint.id), **fields})
    assert response.status_code == status
    assert message in text_of(response)
    assert stored(paint.id).stock == 0 and movements(paint.id) == []


def test_plus_one_at_the_most_stock_says_so(admin, make_paint):
    paint = make_paint(name="Full", stock=MAX_STOCK)
    response = admin.post(LIST, {"step": "1", "paint_id": str(paint.id)})
    assert response.status_code == 409
    assert f"above {MAX_STOCK}" in text_of(response)
    assert stored(paint.id).stock == MAX_STOCK


def test_bulk_adjust_changes_every_ticked_paint_with_a_movement(admin, make_paint):
    ticked = [make_paint(stock=2) for _ in range(3)]
    untouched = make_paint(stock=2)
    form = {"action": "adjust_stock", "delta": "5", "reason": "Delivery 118"}
    response = admin.post(LIST, {**form, "ids": [str(paint.id) for paint in ticked]})
    assert response.status_code == 303
    for paint in ticked:
        assert stored(paint.id).stock == 7
        assert movements(paint.id) == [(5, "Delivery 118")]
    assert stored(untouched.id).stock == 2
    assert "Stock +5 on 3 paints." in text_of(admin.get(LIST))


def test_one_paint_that_cannot_go_lower_stops_the_whole_bulk_adjust(admin, make_paint):
    plenty = make_paint(name="Plenty", stock=9)
    short = make_paint(name="Short", stock=1)
    form = {"action": "adjust_stock", "delta": "-2", "reason": "Sold", "ids": [plenty.id, short.id]}
    response = admin.post(LIST, form)
    # The stock as it is refuses it, as one paint's adjustment is refused: a conflict.
    assert response.status_code == 409
    assert "Nothing was changed: Short: would take stock" in text_of(response)
    assert (stored(plenty.id).stock, stored(short.id).stock) == (9, 1)
    assert movements(plenty.id) == []


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({"action": "adjust_stock", "delta": "0", "reason": "x"}, "Change by must not be 0."),
        ({"action": "adjust_stock", "delta": "2", "reason": ""}, "Reason "),
        ({"action": "reorder_level", "reorder_level": "-1"}, "Reorder level "),
        # The same bound as the paint form, the API and CSV files: not the id range's.
        (
            {"action": "reorder_level", "reorder_level": "99999999999"},
            "Reorder level must be between 0 and 1000000000.",
        ),
        ({"action": "color_type", "color_type": "Glitter Bomb"}, "Type "),
        ({"action": "shred"}, "action must be one of"),
        ({"action": "delete", "ids": []}, "The selection is empty"),
        ({"action": "delete", "ids": ["abc"]}, "The selection is not a list of paints"),
    ],
)
def test_bad_bulk_input_is_named_and_changes_nothing(admin, make_paint, form, message):
    paint = make_paint(stock=4, reorder_level=3)
    response = admin.post(LIST, {"ids": [paint.id], **form})
    assert response.status_code == 422
    assert message in text_of(response)
    now = stored(paint.id)
    assert (now.stock, now.reorder_level, now.color_type) == (4, 3, None)


def test_set_reorder_level_type_and_family(admin, make_paint):
    chosen = [make_paint(), make_paint()]
    ids = [paint.id for paint in chosen]
    for form in (
        {"action": "reorder_level", "reorder_level": "12"},
        {"action": "color_type", "color_type": "Base"},
        {"action": "color_family", "color_family": "Red"},
    ):
        assert admin.post(LIST, {**form, "ids": ids}).status_code == 303
    for paint_id in ids:
        paint = stored(paint_id)
        assert (paint.reorder_level, paint.color_type, paint.color_family) == (12, "Base", "Red")
    assert "Family set to Red on 2 paints." in text_of(admin.get(LIST))


def test_all_matching_acts_on_the_filter_across_pages_only(admin, make_paint):
    inside = [make_paint(brand="Vallejo") for _ in range(3)]
    outside = make_paint(brand="Citadel")
    url = "/admin/paints?brand=Vallejo&per_page=1"
    form = {"action": "reorder_level", "reorder_level": "9", "all_matching": "1"}
    assert admin.post(url, form).status_code == 303
    assert [stored(paint.id).reorder_level for paint in inside] == [9, 9, 9]
    assert stored(outside.id).reorder_level != 9


def test_all_matching_beyond_the_cap_is_refused(admin, make_paint, monkeypatch):
    paints = [make_paint(stock=1) for _ in range(3)]
    monkeypatch.setattr(bulk, "MAX_OPERATIONS", 2)
    form = {"action": "adjust_stock", "delta": "1", "reason": "x", "all_matching": "1"}
    response = admin.post(LIST, form)
    assert response.status_code == 422
    assert "The selection is more than 2 paints" in text_of(response)
    assert [stored(paint.id).stock for paint in paints] == [1, 1, 1]


def test_bulk_delete_asks_with_the_count_then_deletes(admin, make_paint):
    doomed = [make_paint(name="Doomed A"), make_paint(name="Doomed B")]
    kept = make_paint(name="Kept")
    ids = [paint.id for paint in doomed]
    asked = admin.post(LIST, {"action": "delete", "ids": ids})
    assert asked.status_code == 200
    page = text_of(asked)
    assert "Delete 2 paints?" in page and "Doomed A" in page and "Kept" not in page
    assert stored(doomed[0].id) is not None
    token = token_from(page)
    done = admin.client.post(
        LIST, data={"csrf_token": token, "action": "delete", "confirmed": "yes", "ids": ids}
    )
    assert done.status_code == 303
    assert [stored(paint_id) for paint_id in ids] == [None, None]
    assert stored(kept.id) is not None


def test_export_selected_writes_only_those_paints(admin, make_paint):
    chosen = [make_paint(name="Export B"), make_paint(name="Export A")]
    make_paint(name="Not exported")
    response = admin.post(LIST, {"action": "export", "ids": [paint.id for paint in chosen]})
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True).lstrip("\ufeff"))))
    assert [row["name"] for row in rows] == ["Export A", "Export B"]


def test_export_of_all_matching_is_not_capped_as_changes_are(admin, make_paint, monkeypatch):
    """Exporting changes nothing, yet 'all matching' was refused past the 1,000-change cap."""
    for name in ("Match C", "Match A", "Match B"):
        make_paint(name=name)
    make_paint(name="Other")
    monkeypatch.setattr(bulk, "MAX_OPERATIONS", 2)
    response = admin.post(f"{LIST}&q=match", {"action": "export", "all_matching": "1"})
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True).lstrip("\ufeff"))))
    assert sorted(row["name"] for row in rows) == ["Match A", "Match B", "Match C"]


def test_row_and_bulk_forms_need_the_csrf_token(admin, make_paint):
    paint = make_paint(stock=2)
    for form in (
        {"step": "1", "paint_id": paint.id},
        {"action": "adjust_stock", "delta": "1", "reason": "x", "ids": [paint.id]},
    ):
        assert admin.client.post(LIST, data=form).status_code == 400
    assert stored(paint.id).stock == 2
    total = stored_rows(select(func.count(StockMovement.id)))[0][0]
    assert total == 1  # the opening stock only
