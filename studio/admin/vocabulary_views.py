"""Admin pages of the types and colour families lists: add, rename, merge, delete."""

from flask import flash, redirect, render_template, request, url_for
from flask_login import current_user

from ..models import VOCABULARY_KINDS
from ..resilience.retry import retry_transient
from ..services import vocabularies
from ..services.errors import ServiceError
from ..services.vocabularies import KIND_NAMES
from .forms import ConfirmForm, MergeForm, TermForm
from .views import bp

TERM_ACTIONS = ("rename", "merge", "delete")


def paints_phrase(count: int) -> str:
    return "1 paint" if count == 1 else f"{count:,} paints"


def show_error(form, field: str, exc: ServiceError) -> None:
    """Put the service's message next to the form's field (or the whole message there)."""
    form[field].errors = [exc.fields.get(field) or next(iter(exc.fields.values()), exc.message)]


def render_lists(failed: TermForm | None = None, kind: str | None = None, status: int = 200):
    forms = {each: TermForm(prefix=each, formdata=None) for each in VOCABULARY_KINDS}
    if failed is not None:
        forms[kind] = failed
    for each, form in forms.items():
        form.name.label.text = f"New {KIND_NAMES[each][0]}"
    return render_template(
        "admin/vocabularies/lists.html",
        terms=vocabularies.list_terms(),
        forms=forms,
        kind_names=KIND_NAMES,
        paints_phrase=paints_phrase,
    ), status


@bp.get("/vocabularies")
@retry_transient
def vocabulary_lists():
    return render_lists()


@bp.post("/vocabularies")
@retry_transient
def add_term():
    kind = request.form.get("kind", "")
    if kind not in VOCABULARY_KINDS:
        return render_lists(status=400)
    form = TermForm(prefix=kind)
    if not form.validate_on_submit():
        return render_lists(form, kind, 400)
    try:
        term = vocabularies.add_term(kind, form.name.data or "")
    except ServiceError as exc:
        show_error(form, "name", exc)
        return render_lists(form, kind, exc.status)
    flash(f"Added {term.name} to the {KIND_NAMES[kind][1]}.", "success")
    return redirect(url_for(".vocabulary_lists"))


def render_term(term_id: int, forms: dict | None = None, status: int = 200):
    term = vocabularies.get_term(term_id)
    shown = {
        "rename": TermForm(prefix="rename", formdata=None, data={"name": term.name}),
        "merge": MergeForm(prefix="merge", formdata=None),
        "delete": ConfirmForm(prefix="delete", formdata=None),
        **(forms or {}),
    }
    shown["rename"].name.label.text = "New name"
    others = vocabularies.list_terms([term.kind])[term.kind]
    shown["merge"].target.choices = [("", "(choose)")] + [
        (str(other.id), f"{other.name} ({paints_phrase(other.paints)})")
        for other in others
        if other.id != term.id
    ]
    return render_template(
        "admin/vocabularies/term.html",
        term=term,
        forms=shown,
        one=KIND_NAMES[term.kind][0],
        paints_phrase=paints_phrase,
    ), status


@bp.get("/vocabularies/<id:term_id>")
@retry_transient
def vocabulary_term(term_id: int):
    return render_term(term_id)


# One address for the page and its three forms: a refused change shows the page again
# there, so reloading it later is a plain GET.
@bp.post("/vocabularies/<id:term_id>")
@retry_transient
def change_term(term_id: int):
    action = request.form.get("action", "")
    if action not in TERM_ACTIONS:
        return render_term(term_id, status=400)
    form = {"rename": TermForm, "merge": MergeForm, "delete": ConfirmForm}[action](prefix=action)
    if not form.validate_on_submit():
        return render_term(term_id, {action: form}, 400)
    try:
        message = _apply(action, term_id, form)
    except ServiceError as exc:
        if action == "delete":
            flash(exc.message, "error")
        else:
            show_error(form, "name" if action == "rename" else "target", exc)
        return render_term(term_id, {action: form}, exc.status)
    flash(message, "success")
    return redirect(url_for(".vocabulary_lists"))


def _apply(action: str, term_id: int, form) -> str:
    old_name = vocabularies.get_term(term_id).name
    if action == "rename":
        new_name, changed = vocabularies.rename_term(
            term_id, form.name.data or "", current_user.actor
        )
        return f"Renamed {old_name} to {new_name}; {paints_phrase(changed)} changed."
    if action == "merge":
        target = form.target.data or ""
        target_id = int(target) if target.isdigit() and len(target) < 10 else 0
        kept, changed = vocabularies.merge_terms(term_id, target_id, current_user.actor)
        return f"Merged {old_name} into {kept}; {paints_phrase(changed)} changed."
    return f"Deleted {vocabularies.delete_term(term_id)}."
