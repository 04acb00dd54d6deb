"""Admin forms. They carry the CSRF token and the typed values; the rules live in the services."""

from flask_wtf import FlaskForm
from flask_wtf.file import FileField
from wtforms import HiddenField, IntegerField, StringField, TextAreaField
from wtforms.validators import Optional
from wtforms.widgets import NumberInput

from ..services.errors import ValidationError
from ..services.validation import PAINT_FIELDS

OPTIONAL_NUMBERS = ("stock", "price")


class PaintForm(FlaskForm):
    name = StringField("Name")
    brand = StringField("Brand")
    color_code = StringField("Colour code")
    color_type = StringField("Type")
    color_family = StringField("Colour family")
    stock = StringField("Stock", widget=NumberInput(min=0, step=1))
    price = StringField("Price", widget=NumberInput(min=0, step="0.01"))
    color_preview = StringField("Swatch colour")
    image_url = StringField("Image URL")
    description = TextAreaField("Description")
    version = HiddenField()

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
