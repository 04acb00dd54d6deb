"""Admin pages: parse the form or query, call a service, render."""

import re
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from itertools import chain
from typing import Any

from flask import (
    Blueprint,
    Response,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    stream_with_context,
    url_for,
)
from flask_login import current_user
from werkzeug.exceptions import default_exceptions

from .. import signals
from ..extensions import login_manager
from ..resilience.deadline import paced
from ..resilience.retry import retry_transient
from ..services import activity, bulk, csv_io, listing, paints, reorder, stats, stock
from ..services.activity import HistoryFilter
from ..services.errors import BadQuery, EditConflict, NotFound, ServiceError, ValidationError
from ..services.listing import PaintFilter
from ..services.reorder import ReorderRequest
from ..services.validation import default_reorder_level
from . import row_actions
from .charts import bar_chart
from .formatting import money, short_figure
from .forms import ConfirmForm, PaintForm, StockForm

bp = Blueprint("admin", __name__, url_prefix="/admin")
bp.add_app_template_filter(money)
bp.add_app_template_filter(short_figure)
HISTORY_PER_PAGE = 20


@bp.before_request
def require_login():
    if not current_user.is_authenticated:
        return login_manager.unauthorized()
    signals.admin_identified.send("session")
    return None


@bp.errorhandler(ServiceError)
def service_error_page(exc: ServiceError):
    error = default_exceptions[exc.status](exc.message)
    return render_template("error.html", error=error), exc.status


@bp.get("/")
@retry_transient
def dashboard():
    figures = stats.inventory_stats()
    return render_template(
        "admin/dashboard.html",
        figures=figures,
        low_stock=listing.low_stock_paints(),
        family_chart=bar_chart(
            "Units per colour family", figures.by_color_family, noun="families", coloured=True
        ),
        brand_chart=bar_chart("Units per brand", figures.by_brand, noun="brands"),
    )


@bp.get("/paints")
@retry_transient
def list_paints(status: int = 200):
    errors: dict[str, str] = {}
    try:
        paint_filter = PaintFilter.from_args(request.args)
    except ValidationError as exc:
        errors, paint_filter = exc.fields, PaintFilter()
    page = listing.list_paints(paint_filter)
    return render_template(
        "admin/paints/list.html",
        page=page,
        paint_filter=paint_filter,
        choices=listing.filter_choices(),
        errors=errors,
        max_selected=bulk.MAX_OPERATIONS,
    ), (422 if errors else status)


# The list's own address, filters and page included: done goes back to it, refused shows it.
@bp.post("/paints")
@retry_transient
def paint_list_action():
    try:
        if "step" in request.form:
            message, answer = row_actions.step_stock(request.form)
            if row_actions.wants_json():
                return answer
        else:
            action = row_actions.chosen_action(request.form)
            if action == "export" and request.form.get("all_matching") == "1":
                # An export changes nothing, so the cap on changes does not apply to it.
                return _export_matching("paints-selected")
            paint_ids = row_actions.selected_ids(request.form, request.args)
            if action == "export":
                rows = iter(listing.paints_by_ids(paint_ids))
                filename = f"paints-selected-{datetime.now(UTC):%Y%m%d-%H%M}.csv"
                return csv_download(rows, csv_io.export_csv, filename)
            if action == "delete" and request.form.get("confirmed") != "yes":
                return row_actions.confirm_delete(paint_ids)
            message = row_actions.apply_bulk(action, paint_ids, request.form)
    except ServiceError as exc:
        if row_actions.wants_json():
            return row_actions.step_refused(exc)
        flash(row_actions.described(exc), "error")
        return list_paints(exc.status)
    flash(message, "success")
    return redirect(request.full_path.removesuffix("?"), 303)


@bp.get("/paints/export.csv")
@retry_transient
def export_paints():
    return _export_matching("paints")


def _export_matching(prefix: str):
    """Send every paint the list's filter matches, as CSV."""
    paint_filter = PaintFilter.from_args(request.args)
    rows = listing.matching_paints(paint_filter)
    return csv_download(rows, csv_io.export_csv, f"{prefix}-{datetime.now(UTC):%Y%m%d-%H%M}.csv")


def csv_download(
    rows: Iterator[Any], document: Callable[[Iterable[Any]], Iterator[str]], filename: str
):
    """Stream the rows as a CSV attachment; the first batch is read before answering.

    The query runs here, inside the view: a database away now is retried, or a 503.
    """
    first = next(rows, None)
    found = chain([first], rows) if first is not None else iter(())
    chunks = paced(document(found), current_app.config["REQUEST_DEADLINE_SECONDS"])
    return Response(
        stream_with_context(chunks),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


@bp.get("/reorder")
@retry_transient
def reorder_list():
    errors: dict[str, str] = {}
    try:
        chosen = ReorderRequest.from_args(request.args)
    except ValidationError as exc:
        errors, chosen = exc.fields, ReorderRequest()
    brands = reorder.brand_totals()
    return render_template(
        "admin/reorder.html",
        page=reorder.reorder_page(chosen),
        brands=brands,
        totals={total.brand: total for total in brands},
        chosen=chosen,
        errors=errors,
    ), (422 if errors else 200)


@bp.get("/reorder.csv")
@retry_transient
def export_reorder():
    brand = ReorderRequest.from_args(request.args).brand
    # A brand's name made safe for a file name: letters and digits, the rest as dashes.
    named = "-" + re.sub(r"[^A-Za-z0-9]+", "-", brand).strip("-").lower() if brand else ""
    filename = f"reorder{named}-{datetime.now(UTC):%Y%m%d-%H%M}.csv"
    return csv_download(reorder.reorder_lines(brand), csv_io.export_reorder_csv, filename)


@bp.route("/paints/new", methods=["GET", "POST"])
@retry_transient
def new_paint():
    form = PaintForm()
    status = 200
    if not form.is_submitted():
        form.reorder_level.data = str(default_reorder_level())
    if form.validate_on_submit():
        try:
            paint = paints.create_paint(
                form.submitted(new=True), current_user.actor, from_text=True
            )
        except ServiceError as exc:
            form.show_errors(exc)
            status = exc.status
        else:
            flash(f"Added {paint.name} ({paint.brand}).", "success")
            return redirect(url_for(".paint_detail", paint_id=paint.id))
    return render_template("admin/paints/form.html", form=form, paint=None), status


@bp.route("/paints/<id:paint_id>/edit", methods=["GET", "POST"])
@retry_transient
def edit_paint(paint_id: int):
    paint = paints.get_paint(paint_id)
    form = PaintForm(obj=paint)
    status, notice = 200, None
    if not form.is_submitted():
        form.start_from(paint)
    elif form.validate_on_submit():
        original = form.started_from(paint_id)
        if original is None:
            # Missing or altered: the typed values stay, checked against the paint as it is.
            form.start_from(paint)
            status, notice = 422, "unmatched"
        else:
            changes = {**form.submitted(new=False), "original": original}
            try:
                saved = paints.update_paint(paint_id, changes, current_user.actor, from_text=True)
            except EditConflict as exc:
                form.show_conflict(exc)
                paint, status, notice = exc.current, exc.status, "conflict"
            except NotFound:
                # Deleted meanwhile: the form's paint is gone with its row, so no form again.
                raise
            except ServiceError as exc:
                form.show_errors(exc)
                status = exc.status
                if not exc.fields:
                    flash(exc.message, "error")
            else:
                flash(f"Saved {saved.name}.", "success")
                return redirect(url_for(".paint_detail", paint_id=paint_id))
    return render_template("admin/paints/form.html", form=form, paint=paint, notice=notice), status


def render_detail(paint_id: int, stock_form: StockForm, status: int = 200):
    paint = paints.get_paint_record(paint_id)
    return render_template(
        "admin/paints/detail.html",
        paint=paint,
        history=activity.timeline(paint_id, _history_page(), paint.created_at),
        stock_form=stock_form,
    ), status


def _history_page() -> HistoryFilter:
    """Return the page of the timeline asked for; a bad page number shows the first."""
    asked = {name: request.args.get(name, "") for name in ("page", "after")}
    try:
        return HistoryFilter.from_args({**asked, "per_page": str(HISTORY_PER_PAGE)})
    except BadQuery:
        return HistoryFilter(per_page=HISTORY_PER_PAGE)


@bp.get("/paints/<id:paint_id>")
@retry_transient
def paint_detail(paint_id: int):
    return render_detail(paint_id, StockForm(formdata=None))


# The page's own address: a refused change shows the page again there, which reloads (as GET).
@bp.post("/paints/<id:paint_id>")
@retry_transient
def adjust_stock(paint_id: int):
    form = StockForm()
    submitted = {"delta": request.form.get("delta", ""), "reason": request.form.get("reason")}
    try:
        delta, reason = stock.validate_adjustment(submitted, from_text=True)
        change = stock.adjust_stock(paint_id, delta, reason, current_user.actor)
    except ServiceError as exc:
        for name, message in exc.fields.items():
            if name in form:
                form[name].errors = [message]
        if not exc.fields:
            flash(exc.message, "error")
        return render_detail(paint_id, form, exc.status)
    flash(f"Stock {delta:+,}: now {change.movement.stock_after:,}.", "success")
    return redirect(url_for(".paint_detail", paint_id=paint_id))


@bp.route("/paints/<id:paint_id>/delete", methods=["GET", "POST"])
@retry_transient
def delete_paint(paint_id: int):
    paint = paints.get_paint(paint_id)
    form = ConfirmForm()
    if form.validate_on_submit():
        name = paint.name
        paints.delete_paint(paint_id, current_user.actor)
        flash(f"Deleted {name}.", "success")
        return redirect(url_for(".list_paints"))
    return render_template("admin/paints/delete.html", paint=paint, form=form)
