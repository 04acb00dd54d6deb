"""Admin forms. They carry the CSRF token and the typed values; the rules live in the services."""

from typing import Any

from flask_wtf import FlaskForm
from flask_wtf.file import FileField
from wtforms import HiddenField, IntegerField, SelectField, StringField, TextAreaField
from wtforms.validators import Optional
from wtforms.widgets import NumberInput

from ..models import VOCABULARY_KINDS
from ..services import vocabularies
from ..services.errors import ValidationError
from ..services.validation import PAINT_FIELDS

OPTIONAL_NUMBERS = ("stock", "price")


class PaintForm(FlaskForm):
    name = StringField("Name")
    brand = StringField("Brand")
    color_code = StringField("Colour code")
    # The admins' lists (Types & families); the services refuse anything else.
    color_type = SelectField("Type", validate_choice=False)
    color_family = SelectField("Colour family", validate_choice=False)
    stock = StringField("Stock", widget=NumberInput(min=0, step=1))
    price = StringField("Price", widget=NumberInput(min=0, step="0.01"))
    color_preview = StringField("Swatch colour")
    image_url = StringField("Image URL")
    description = TextAreaField("Description")
    version = HiddenField()

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

        A new paint left without stock or price gets the usual 0 and 0.00; on an edit an
        emptied number is sent on, and refused as missing.
        """
        values = {name: (self[name].data or "").strip() for name in PAINT_FIELDS}
        if new:
            values = {
                name: value
                for name, value in values.items()
                if value or name not in OPTIONAL_NUMBERS
            }
        return values

    def show_errors(self, error: ValidationError) -> None:
        """Put each service error next to its field."""
        for name, message in error.fields.items():
            if name in self:
                self[name].errors = [message]


class StockForm(FlaskForm):
    delta = IntegerField("Change by", validators=[Optional()])
    reason = StringField("Reason")


class ImportForm(FlaskForm):
    file = FileField("CSV file")
    # After a clean preview the checked text comes back with the confirmation.
    content = HiddenField()


class ConfirmForm(FlaskForm):
    """A form with nothing but its CSRF token, for POST-only actions."""

class TermForm(FlaskForm):
    """A value of the types or colour families list: added, or renamed."""

    name = StringField("Name")


class MergeForm(FlaskForm):
    target = SelectField("Merge into", validate_choice=False)
