"""The shop's Activity page and its CSV export: every change, by admin, kind and day."""

from collections.abc import Iterator
from datetime import UTC, datetime

from flask import Response, current_app, render_template, request, stream_with_context

from ..models import HISTORY_KINDS, HistoryEntry
from ..resilience.deadline import paced
from ..resilience.retry import retry_transient
from ..services import activity, csv_io
from ..services.activity import HistoryFilter
from ..services.errors import BadQuery
from .formatting import FIELD_LABELS, KIND_LABELS, changed_value
from .views import bp

bp.add_app_template_filter(changed_value)
ACTIVITY_COLUMNS = (
    "when_utc",
    "kind",
    "admin",
    "api_token",
    "paint_id",
    "brand",
    "name",
    "color_code",
    "changes",
    "note",
)


@bp.app_context_processor
def history_words() -> dict[str, object]:
    return {"field_labels": FIELD_LABELS, "kind_labels": KIND_LABELS}


@bp.get("/activity")
@retry_transient
def activity_page():
    errors: dict[str, str] = {}
    try:
        history_filter = HistoryFilter.from_args(request.args)
    except BadQuery as exc:
        errors, history_filter = exc.fields, HistoryFilter()
    return render_template(
        "admin/activity.html",
        page=activity.activity(history_filter),
        history_filter=history_filter,
        admins=activity.admins(),
        kinds=HISTORY_KINDS,
        errors=errors,
    ), (400 if errors else 200)


@bp.get("/activity.csv")
@retry_transient
def export_activity():
    history_filter = HistoryFilter.from_args(request.args)
    entries = activity.every_entry(history_filter)
    rows = (_csv_row(entry) for entry in entries)
    lines = csv_io.export_table(ACTIVITY_COLUMNS, rows)
    # The first batch is read here, inside the view: a database away now is retried, or a 503.
    first = next(lines)
    chunks = paced(_chain(first, lines), current_app.config["REQUEST_DEADLINE_SECONDS"])
    filename = f"activity-{datetime.now(UTC):%Y%m%d-%H%M}.csv"
    return Response(
        stream_with_context(chunks),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


def _chain(first: str, rest: Iterator[str]) -> Iterator[str]:
    yield first
    yield from rest


def _csv_row(entry: HistoryEntry) -> list[object]:
    changes = "; ".join(
        f"{name}: {_plain(old)} → {_plain(new)}" for name, (old, new) in entry.changes.items()
    )
    created_at = entry.created_at.replace(tzinfo=entry.created_at.tzinfo or UTC)
    return [
        created_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S"),
        entry.kind,
        entry.username,
        entry.token_name,
        entry.paint_id,
        entry.paint_brand,
        entry.paint_name,
        entry.paint_code,
        changes,
        entry.note,
    ]


def _plain(value: object) -> str:
    return "(none)" if value is None or value == "" else str(value)
