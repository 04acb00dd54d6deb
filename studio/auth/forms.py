"""The sign-in and change-password forms."""

from flask_wtf import FlaskForm
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired, EqualTo, Length

from ..services.errors import ServiceError


class LoginForm(FlaskForm):
    username = StringField("Username", validators=[DataRequired(), Length(max=80)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=1024)])


class PasswordForm(FlaskForm):
    current_password = PasswordField(
        "Current password",
        validators=[DataRequired("is required."), Length(max=1024, message="is too long.")],
    )
    new_password = PasswordField("New password", validators=[DataRequired("is required.")])
    confirmation = PasswordField(
        "New password again",
        validators=[EqualTo("new_password", "must be the same as the new password.")],
    )

    # The service names the new password "password", as create-admin does.
    FIELDS = {"current_password": "current_password", "password": "new_password"}

    def show_errors(self, error: ServiceError) -> None:
        for name, message in error.fields.items():
            getattr(self, self.FIELDS.get(name, "new_password")).errors.append(message)
