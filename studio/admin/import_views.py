"""The CSV import pages: a file is checked and kept server-side; its confirmation names it."""

from flask import current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user
from werkzeug.exceptions import RequestEntityTooLarge

from ..extensions import login_manager
from ..resilience.retry import retry_transient
from ..services import imports
from ..services.errors import Conflict, ServiceError, ValidationError
from ..services.imports import ImportLimits, StagedUpload
from ..services.validation import MAX_STOCK
from .forms import ConfirmForm, ImportForm
from .views import bp

IMPORT_ENDPOINT = "admin.import_paints"
# The multipart headers and the CSRF token that come with the file.
FORM_OVERHEAD_BYTES = 64 * 1024
# A page showing an import under way reloads itself this often.
PROGRESS_REFRESH_SECONDS = 2


def import_limits() -> ImportLimits:
    return ImportLimits.from_config(current_app.config)


def paints_phrase(count: int) -> str:
    return "1 paint" if count == 1 else f"{count:,} paints"


@bp.url_value_preprocessor
def allow_large_imports(endpoint: str | None, values: dict | None) -> None:
    # The import page alone takes large bodies. This runs before every before_request
    # hook, CSRFProtect's included, which reads the body with the limit set by then.
    if endpoint == IMPORT_ENDPOINT:
        request.max_content_length = import_limits().max_bytes + FORM_OVERHEAD_BYTES


@bp.errorhandler(RequestEntityTooLarge)
def body_too_large(exc: RequestEntityTooLarge):
    """Say what the limit is, on the import page itself when that is where the file went."""
    if not current_user.is_authenticated:
        return login_manager.unauthorized()
    if request.endpoint == IMPORT_ENDPOINT:
        form = ImportForm(formdata=None)
        form.file.errors = [f"The file {import_limits().too_large()}"]
        return render_import(form, status=413)
    limit = current_app.config["MAX_CONTENT_LENGTH"]
    error = RequestEntityTooLarge(
        f"The form sent more than {limit / 2**20:,.1f} MB, the most this page takes; "
        "nothing was changed."
    )
    return render_template("error.html", error=error), 413


def render_import(
    form: ImportForm,
    *,
    check=None,
    upload: StagedUpload | None = None,
    refusal: str | None = None,
    status: int = 200,
):
    return render_template(
        "admin/paints/import.html",
        form=form,
        confirm_form=ConfirmForm(formdata=None),
        check=check,
        upload=upload,
        refusal=refusal,
        limits=import_limits(),
        max_stock=MAX_STOCK,
        paints_phrase=paints_phrase,
        refresh=PROGRESS_REFRESH_SECONDS
        if upload and upload.status in ("checking", "importing") and not upload.stalled
        else None,
    ), status


@bp.route("/paints/import", methods=["GET", "POST"])
@retry_transient
def import_paints():
    form = ImportForm()
    check, upload, status = None, None, 200
    if form.validate_on_submit():
        try:
            if not form.file.data:
                raise ValidationError({"file": "Choose a CSV file to import."})
            form.file.data.seek(0)  # a retried request reads the upload again
            check, upload = imports.stage_upload(
                form.file.data.read(),
                form.file.data.filename or "upload.csv",
                current_user.id,
                import_limits(),
                mode=form.mode.data,
                reference=form.reference.data,
            )
            if check is None:  # a large file, checked in the background: its page follows it
                return redirect(url_for(".staged_import", upload_id=upload.id), 303)
            status = 200 if check.ok else 422
        except ServiceError as exc:
            _show_errors(form, exc)
            status = exc.status
    return render_import(form, check=check, upload=upload, status=status)


def _show_errors(form: ImportForm, exc: ServiceError) -> None:
    """Put each refused field's message next to it; the rest belongs to the file."""
    fields = dict(exc.fields)
    for name in ("mode", "reference"):
        if name in fields:
            getattr(form, name).errors = [fields.pop(name)]
    if fields or not exc.fields:
        form.file.errors = list(fields.values()) or [exc.message]


@bp.route("/paints/import/<id:upload_id>", methods=["GET", "POST"])
@retry_transient
def staged_import(upload_id: int):
    """Show the admin's checked upload; on POST, import it (once, however often confirmed)."""
    limits = import_limits()
    form = ConfirmForm()
    if form.validate_on_submit():
        try:
            imported = imports.import_upload(upload_id, current_user.actor, limits)
        except Conflict as exc:
            upload = imports.get_upload(upload_id, current_user.id, limits)
            return render_import(
                ImportForm(formdata=None), upload=upload, refusal=exc.message, status=exc.status
            )
        if imported.started:  # a large file, imported in the background: its page follows it
            return redirect(url_for(".staged_import", upload_id=upload_id), 303)
        flash(*done_message(imported))
        if imported.mode != "add":
            return redirect(url_for(".list_paints"))
        return redirect(url_for(".list_paints", sort="-created_at"))
    page = request.args.get("page", 1, type=int)
    upload = imports.get_upload(upload_id, current_user.id, limits, page=page)
    return render_import(ImportForm(formdata=None), check=upload.check, upload=upload)


def done_message(imported: imports.Imported) -> tuple[str, str]:
    """Say what a confirmation did, in the words of its mode."""
    count = paints_phrase(imported.count)
    if imported.mode == "update":
        done = f"Updated {count}."
    elif imported.mode == "receive":
        done = f"Received {imported.units:,} units into {count}."
    else:
        done = f"Imported {count}."
    if imported.already and imported.mode == "add":
        return f"These {count} were imported already.", "info"
    if imported.already:
        return f"This file was applied already, to {count}; nothing more was changed.", "info"
    return done, "success"
