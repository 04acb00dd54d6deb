"""Admin forms. They carry the CSRF token and the typed values; the rules live in the services."""

from decimal import Decimal
from typing import Any

from flask import current_app
from flask_wtf import FlaskForm
from flask_wtf.file import FileField
from itsdangerous import BadData, URLSafeSerializer
from wtforms import HiddenField, RadioField, SelectField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice

from ..models import VOCABULARY_KINDS
from ..services import vocabularies
from ..services.errors import EditConflict, ServiceError
from ..services.validation import PAINT_FIELDS

OPTIONAL_NUMBERS = ("stock", "price", "reorder_level")


class PaintForm(FlaskForm):
    name = StringField("Name")
    brand = StringField("Brand")
    color_code = StringField("Colour code")
    # The admins' lists (Types & families); the services refuse anything else.
    color_type = SelectField("Type", validate_choice=False)
    color_family = SelectField("Colour family", validate_choice=False)
    # Text, not type=number: Chromium reads "4,50" typed in a number input as 450.
    stock = StringField("Stock")
    price = StringField("Price")
    reorder_level = StringField("Reorder level")
    reorder_quantity = StringField("Reorder quantity")
    color_preview = StringField("Swatch colour")
    image_url = StringField("Image URL")
    description = TextAreaField("Description")
    # The values the edit started from, signed (see start_from).
    original = HiddenField()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        vocabulary = vocabularies.current()
        for kind in VOCABULARY_KINDS:
            names = list(vocabulary.names[kind])
            # A value the list no longer has stays offered, so a save never drops it
            # unseen (the service then says it is not in the list).
            if self[kind].data and self[kind].data not in names:
                names.insert(0, self[kind].data)
            self[kind].choices = [("", "(none)"), *((name, name) for name in names)]

    def submitted(self, *, new: bool) -> dict[str, str]:
        """Return the typed values, as the paint services take them.

        A new paint left without stock, price or reorder level gets the usual 0, 0.00 and
        default level; on an edit an emptied one is sent on, and refused as missing. An
        empty reorder quantity is none, on both.
        """
        values = {name: (self[name].data or "").strip() for name in PAINT_FIELDS}
        if new:
            values = {
                name: value
                for name, value in values.items()
                if value or name not in OPTIONAL_NUMBERS
            }
        return values

    def show_errors(self, error: ServiceError) -> None:
        """Put each service error next to its field."""
        for name, message in error.fields.items():
            if name in self:
                self[name].errors = [message]

    def start_from(self, paint: Any) -> None:
        """Carry the paint's values in the form, signed, as what the edit started from."""
        values = {name: _plain(getattr(paint, name)) for name in PAINT_FIELDS}
        self.original.data = _originals(paint.id).dumps(values)

    def started_from(self, paint_id: int) -> dict[str, Any] | None:
        """Return the values the edit of the paint started from; None if missing or altered."""
        try:
            values = _originals(paint_id).loads(self.original.data or "")
        except BadData:
            return None
        return values if isinstance(values, dict) else None

    def show_conflict(self, conflict: EditConflict) -> None:
        """Keep what the admin changed; show the rest as it is now; mark what clashed.

        The edit then starts from the paint as it is now, so saving again applies it.
        """
        for name in PAINT_FIELDS:
            if name not in conflict.edited:
                self[name].data = _plain(getattr(conflict.current, name))
                choices = getattr(self[name], "choices", None)
                if choices is not None and self[name].data not in dict(choices):
                    choices.insert(1, (self[name].data, self[name].data))
        self.show_errors(conflict)
        self.start_from(conflict.current)


def _originals(paint_id: int) -> URLSafeSerializer:
    # Signed for one paint: another paint's form cannot lend its values.
    return URLSafeSerializer(current_app.secret_key, salt=f"studio.paint-edit-original.{paint_id}")


def _plain(value: Any) -> Any:
    """Return a paint's value as a form shows it: prices as text, none as ""."""
    if value is None:
        return ""
    return str(value) if isinstance(value, Decimal) else value


class StockForm(FlaskForm):
    # Text, not type=number: Chromium reads "5,0" typed in a number input as 50.
    delta = StringField("Change by")
    reason = StringField("Reason")


IMPORT_MODE_CHOICES = [
    SelectChoice("add", "Add new paints"),
    SelectChoice("update", "Update existing paints (a price list)"),
    SelectChoice("receive", "Receive stock (a delivery)"),
]


class ImportForm(FlaskForm):
    """The file to check and what it does; a clean one is kept server-side, confirmed by its id."""

    file = FileField("CSV file")
    # The services refuse an unknown mode, naming the field.
    mode = RadioField("The file", choices=IMPORT_MODE_CHOICES, default="add", validate_choice=False)
    reference = StringField("Delivery note reference")


class ConfirmForm(FlaskForm):
    """A form with nothing but its CSRF token, for POST-only actions."""


class TermForm(FlaskForm):
    """A value of the types or colour families list: added, or renamed."""

    name = StringField("Name")


class MergeForm(FlaskForm):
    target = SelectField("Merge into", validate_choice=False)
