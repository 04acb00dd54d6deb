"""The types and colour families lists: one spelling per value, kept by admins, everywhere."""

import html
import io
import re

import pytest
from sqlalchemy import func, select, update

from studio.extensions import db
from studio.models import Paint, VocabularyTerm
from studio.services import csv_io, demo, listing, paints, planner, vocabularies
from studio.services.errors import Conflict, ValidationError

from .conftest import ON_POSTGRESQL, stored, token_from
from .test_edits import form_on


def term_id(kind: str, name: str) -> int:
    return db.session.scalar(
        select(VocabularyTerm.id).where(VocabularyTerm.kind == kind, VocabularyTerm.name == name)
    )


def form_post(admin, path, data, page=None):
    """POST like the browser: every csrf field of the page's forms carries the token."""
    text = admin.get(page or path).get_data(as_text=True)
    token = token_from(text)
    names = set(re.findall(r'name="([\w-]*csrf_token)"', text))
    return admin.client.post(path, data={**dict.fromkeys(names, token), **data})


@pytest.mark.parametrize(
    ("typed", "saved"),
    [("Blue", "Blue"), ("blue", "Blue"), ("  BLUE ", "Blue"), ("dark   green", "Dark Green")],
)
def test_a_value_is_saved_in_the_lists_spelling(make_paint, typed, saved):
    vocabularies.add_term("color_family", "Dark Green")
    paint = make_paint(color_family=typed, color_type="layer")
    assert (paint.color_family, paint.color_type) in {(saved, "Layer")}
    assert stored(paint.id).color_family == saved


def test_an_unknown_value_is_refused_naming_the_field_and_where_to_add_it(make_paint):
    with pytest.raises(ValidationError) as refused:
        make_paint(color_type="Glitter", color_family="Ultraviolet")
    assert set(refused.value.fields) == {"color_type", "color_family"}
    message = refused.value.fields["color_type"]
    assert message.startswith("is not in the list of types (")
    assert "Base" in message and "Types & families" in message
    assert db.session.scalar(select(Paint.id)) is None


def test_empty_stays_allowed(make_paint):
    paint = make_paint(color_type="", color_family=None)
    assert (paint.color_type, paint.color_family) == (None, None)


def test_an_edit_is_checked_and_canonicalised_too(make_paint):
    paint = make_paint(color_type="Base")
    edited = paints.update_paint(paint.id, {"version": 1, "color_type": "WASH"}, None)
    assert edited.color_type == "Wash"
    with pytest.raises(ValidationError, match="color_type"):
        paints.update_paint(paint.id, {"version": 2, "color_type": "Splash"}, None)


def test_the_api_canonicalises_refuses_and_lists_the_values(api):
    created = api.post(
        "/api/v1/paints",
        json={"name": "A", "brand": "B", "color_type": "base", "color_family": "RED"},
    )
    assert created.status_code == 201
    assert (created.get_json()["color_type"], created.get_json()["color_family"]) == ("Base", "Red")
    paint = created.get_json()
    patch = api.patch(
        f"/api/v1/paints/{paint['id']}", json={"version": 1, "color_family": "Mauve-ish"}
    )
    assert patch.status_code == 422
    assert (
        "is not in the list of colour families"
        in patch.get_json()["error"]["fields"]["color_family"]
    )
    listed = api.get("/api/v1/vocabularies").get_json()
    assert "Base" in listed["color_type"] and "Red" in listed["color_family"]
    assert listed["color_type"] == sorted(listed["color_type"], key=str.casefold)


def test_the_csv_check_canonicalises_and_names_unknown_values(app):
    text = "name,brand,color_type,color_family\nA,B,layer,blue\nC,D,Glitter,Red\n"
    check = csv_io.check_import(text)
    assert check.rows[0]["color_type"] == "Layer" and check.rows[0]["color_family"] == "Blue"
    assert len(check.errors) == 1
    line, reason = check.errors[0]
    assert line == 3 and "color_type" in reason and "is not in the list of types" in reason


def test_the_csv_check_reads_the_lists_once(app, monkeypatch):
    loads = []
    real_load = vocabularies._load
    monkeypatch.setattr(vocabularies, "_load", lambda: loads.append(1) or real_load())
    rows = "".join(f"P{number},B,Base,Red\n" for number in range(300))
    check = csv_io.check_import("name,brand,color_type,color_family\n" + rows)
    assert len(check.rows) == 300 and loads == [1]


def test_the_admin_form_offers_the_lists_and_saves_the_lists_spelling(admin):
    page = admin.get("/admin/paints/new").get_data(as_text=True)
    select_html = re.search(r'<select[^>]*id="color_family".*?</select>', page, re.S).group(0)
    assert '<option value="">(none)</option>' in select_html
    assert '<option value="Blue">Blue</option>' in select_html
    form = {"name": "N", "brand": "B", "color_type": "wash", "color_family": "blue"}
    response = admin.post("/admin/paints/new", form)
    assert response.status_code == 302
    assert db.session.scalar(select(Paint.color_family).where(Paint.name == "N")) == "Blue"
    refused = admin.post("/admin/paints/new", {**form, "color_type": "Glitter"})
    assert refused.status_code == 422
    assert "Type is not in the list of types" in html.unescape(refused.get_data(as_text=True))


def test_the_filter_shows_one_blue(admin, make_paint):
    make_paint(color_family="Blue")
    make_paint(color_family="blue")
    make_paint(color_family=" BLUE")
    page = admin.get("/admin/paints").get_data(as_text=True)
    options = re.search(r'<select id="color_family".*?</select>', page, re.S).group(0)
    assert re.findall(r"<option[^>]*>\s*blue\s*</option>", options, re.I) == [
        "<option >Blue</option>"
    ]
    shown = admin.get("/admin/paints?color_family=Blue").get_data(as_text=True)
    assert shown.count('class="col-name"') == 3


@pytest.mark.parametrize("asked", ["blue", " BLUE ", "Blue"])
def test_a_filter_finds_the_value_however_it_is_written(admin, api, make_paint, asked):
    make_paint(color_family="Blue", color_type="Layer")
    make_paint(color_family="Red", color_type="Layer")
    shown = admin.get("/admin/paints", query_string={"color_family": asked})
    assert shown.get_data(as_text=True).count('class="col-name"') == 1
    found = api.get("/api/v1/paints", query_string={"color_family": asked, "color_type": "layer"})
    assert [paint["color_family"] for paint in found.get_json()["items"]] == ["Blue"]


def test_rename_rewrites_the_paints_in_the_same_transaction(make_paint):
    blue = make_paint(color_family="Blue")
    red = make_paint(color_family="Red")
    new_name, changed = vocabularies.rename_term(term_id("color_family", "Blue"), " Sky   blue ")
    assert (new_name, changed) == ("Sky blue", 1)
    assert stored(blue.id).color_family == "Sky blue" and stored(blue.id).version == 2
    assert stored(red.id).color_family == "Red" and stored(red.id).version == 1
    # The cached lists and the cached paint are retired with the change.
    assert "Sky blue" in vocabularies.current().names["color_family"]
    assert paints.get_paint_record(blue.id).color_family == "Sky blue"
    assert make_paint(color_family="SKY BLUE").color_family == "Sky blue"


def test_a_rename_onto_another_value_is_refused_and_points_to_merge(make_paint):
    with pytest.raises(ValidationError) as refused:
        vocabularies.rename_term(term_id("color_family", "Blue"), "red")
    assert (
        refused.value.fields["name"]
        == "is already in the list as Red; merge Blue into Red instead."
    )


def test_a_rename_may_change_only_the_case(make_paint):
    vocabularies.add_term("color_type", "dry brush")
    paint = make_paint(color_type="Dry Brush")
    assert paint.color_type == "dry brush"
    assert vocabularies.rename_term(term_id("color_type", "dry brush"), "Dry Brush") == (
        "Dry Brush",
        1,
    )
    assert stored(paint.id).color_type == "Dry Brush"


def test_merge_moves_the_paints_and_drops_the_value(make_paint):
    vocabularies.add_term("color_family", "Navy")
    navy = make_paint(color_family="Navy")
    blue_id, navy_id = term_id("color_family", "Blue"), term_id("color_family", "Navy")
    assert vocabularies.merge_terms(navy_id, blue_id) == ("Blue", 1)
    assert stored(navy.id).color_family == "Blue"
    assert "Navy" not in vocabularies.current().names["color_family"]
    with pytest.raises(ValidationError, match="target"):
        vocabularies.merge_terms(blue_id, blue_id)
    with pytest.raises(ValidationError, match="target"):
        vocabularies.merge_terms(blue_id, term_id("color_type", "Base"))


def test_a_used_value_cannot_be_deleted_and_an_unused_one_can(make_paint):
    make_paint(color_type="Ink")
    make_paint(color_type="Ink")
    with pytest.raises(Conflict, match="Ink cannot be deleted: 2 paints have it"):
        vocabularies.delete_term(term_id("color_type", "Ink"))
    assert vocabularies.delete_term(term_id("color_type", "Glaze")) == "Glaze"
    with pytest.raises(ValidationError, match="color_type"):
        make_paint(color_type="Glaze")


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "is required."),
        ("BLUE", "is already in the list as Blue."),
        ("x" * 51, "at most 50"),
        # A value a paint's field would refuse (Unicode's control characters, C1 too).
        ("Blue\x80", "control characters"),
    ],
)
def test_adding_a_bad_or_duplicate_value_is_refused(app, name, message):
    with pytest.raises(ValidationError) as refused:
        vocabularies.add_term("color_family", name)
    assert message in refused.value.fields["name"]


def test_the_admin_pages_add_rename_merge_and_delete(admin, make_paint):
    lists = admin.get("/admin/vocabularies")
    assert lists.status_code == 200
    page = lists.get_data(as_text=True)
    assert 'href="/admin/vocabularies" aria-current="page"' in page
    assert "Colour families" in page and ">Base</a>" in page

    added = form_post(
        admin, "/admin/vocabularies", {"kind": "color_family", "color_family-name": "teal"}
    )
    assert added.status_code == 302
    twice = form_post(
        admin, "/admin/vocabularies", {"kind": "color_family", "color_family-name": " TEAL"}
    )
    assert twice.status_code == 422
    assert "New colour family is already in the list as teal." in html.unescape(
        twice.get_data(as_text=True)
    )

    teal = term_id("color_family", "teal")
    paint = make_paint(color_family="Teal")
    path = f"/admin/vocabularies/{teal}"
    renamed = form_post(admin, path, {"action": "rename", "rename-name": "Teal"})
    assert renamed.status_code == 302 and stored(paint.id).color_family == "Teal"

    refused = form_post(admin, path, {"action": "delete"})
    assert refused.status_code == 409
    assert "Teal cannot be deleted: 1 paint has it." in html.unescape(
        refused.get_data(as_text=True)
    )

    no_target = form_post(admin, path, {"action": "merge", "merge-target": ""})
    assert no_target.status_code == 422
    assert re.search(
        r'<p class="error" id="merge-target-error[^"]*">Merge into must be another colour family',
        no_target.get_data(as_text=True),
    )
    green = term_id("color_family", "Green")
    merged = form_post(admin, path, {"action": "merge", "merge-target": str(green)})
    assert merged.status_code == 302 and stored(paint.id).color_family == "Green"
    assert admin.get(path).status_code == 404

    unused = term_id("color_family", "Pink")
    deleted = form_post(admin, f"/admin/vocabularies/{unused}", {"action": "delete"})
    assert deleted.status_code == 302
    assert term_id("color_family", "Pink") is None


def test_demo_data_uses_values_from_the_lists(app):
    # A shop that spells a value its own way keeps that spelling.
    vocabularies.rename_term(term_id("color_family", "Blue"), "blue")
    demo.seed_demo(40)
    families = set(db.session.scalars(select(Paint.color_family)))
    assert "blue" in families and "Blue" not in families
    listed = vocabularies.current()
    for kind in ("color_type", "color_family"):
        used = set(db.session.scalars(select(getattr(Paint, kind)).distinct()))
        assert used <= set(listed.names[kind])


def test_csv_import_round_trip_keeps_the_values(app):
    text = "name,brand,color_type,color_family\nA,B,Base,Red\n"
    csv_io.import_paints(text, None)
    exported = "".join(csv_io.export_csv(db.session.scalars(select(Paint))))
    assert "Base,Red" in exported
    assert io.StringIO(exported).read().count("\n") == 2


def test_the_edit_form_shows_the_paints_value_and_never_drops_one_the_list_lost(admin, make_paint):
    paint = make_paint(color_type="Base", color_family="Blue")
    form = form_on(admin.get(f"/admin/paints/{paint.id}/edit").get_data(as_text=True))
    assert (form["color_type"], form["color_family"]) == ("Base", "Blue")
    # A value the list no longer has (written before the rule, say) stays selected, and a
    # save of another field keeps it: a field left as it was is neither written nor checked.
    db.session.execute(update(Paint).where(Paint.id == paint.id).values(color_family="Cerulean"))
    db.session.commit()
    form = form_on(admin.get(f"/admin/paints/{paint.id}/edit").get_data(as_text=True))
    assert form["color_family"] == "Cerulean"
    response = admin.client.post(f"/admin/paints/{paint.id}/edit", data={**form, "name": "Renamed"})
    assert response.status_code == 302
    assert (stored(paint.id).name, stored(paint.id).color_family) == ("Renamed", "Cerulean")
    # Choosing it anew is checked as any typed value is.
    refused = admin.client.post(
        f"/admin/paints/{paint.id}/edit", data={**form, "color_family": "cerulean"}
    )
    assert refused.status_code == 422
    assert "Colour family is not in the list of colour families" in html.unescape(
        refused.get_data(as_text=True)
    )


@ON_POSTGRESQL
def test_a_large_rename_refreshes_the_statistics_the_counts_come_from(app, backend):
    demo.seed_demo(20_000)
    db.session.execute(update(Paint).where(Paint.id % 5 != 0).values(color_family="Blue"))
    planner.refresh_statistics()
    used = db.session.scalar(select(func.count()).where(Paint.color_family == "Blue"))
    term = db.session.scalars(
        select(VocabularyTerm).where(
            VocabularyTerm.kind == "color_family", VocabularyTerm.name == "Blue"
        )
    ).one()
    vocabularies.rename_term(term.id, "Blues")
    # A rename rewrites its paints: until ANALYZE the planner counts the old versions too.
    for asked, actual in (({"color_family": "Blues"}, used), ({}, 20_000)):
        conditions = listing.PaintFilter.from_args(asked).conditions(backend)
        estimated, exact = listing.count_matching(conditions, backend)
        assert not exact and actual * 0.9 <= estimated <= actual * 1.1, (asked, estimated)
