"""Sign-in and sign-out pages for the shop's admins."""

from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Response,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import current_user, login_required, login_user, logout_user

from .. import signals, throttle
from ..extensions import limiter
from ..resilience.retry import retry_transient
from ..services import accounts
from ..services.errors import ValidationError
from ..services.validation import CONTROL_CHARS
from . import sessions
from .forms import LoginForm, PasswordForm

bp = Blueprint("auth", __name__)


def password_user_key() -> str:
    return f"password-user:{current_user.get_id()}"


def wrong_password(response: Response) -> bool:
    return g.get("wrong_password", False)


def safe_next(target: str | None) -> str:
    """Return `target` if it is a path on this site, else the home page.

    A control character (CR/LF would split the Location header; browsers drop a tab
    from a URL) is never part of a path studio links to: such a target is ignored.
    """
    if target and not CONTROL_CHARS.search(target):
        parts = urlsplit(target)
        if not parts.scheme and not parts.netloc and target.startswith("/") and "\\" not in target:
            if not target.startswith("//"):
                return target
    return url_for("admin.dashboard")


@bp.get("/")
def index():
    return redirect(url_for("admin.dashboard"))


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(
    lambda: current_app.config["LOGIN_LIMIT_PER_IP"],
    methods=["POST"],
    key_func=throttle.address_key,
    deduct_when=throttle.failed,
)
@limiter.limit(
    lambda: current_app.config["LOGIN_LIMIT_PER_USERNAME_AND_IP"],
    methods=["POST"],
    key_func=throttle.username_and_address_key,
    deduct_when=throttle.failed,
)
@retry_transient
def login():
    form = LoginForm()
    status = 200
    if form.validate_on_submit():
        user = accounts.authenticate(form.username.data, form.password.data)
        if user is not None:
            # A fresh session on sign-in, so a planted session id is worth nothing.
            session.clear()
            login_user(user)
            sessions.start(session, user)
            return redirect(safe_next(request.args.get("next")))
        flash("Invalid username or password.", "error")
        status = 401
    elif current_user.is_authenticated and request.method == "GET":
        return redirect(safe_next(request.args.get("next")))
    return render_template("auth/login.html", form=form), status


@bp.after_request
def count_refused_sign_in(response: Response) -> Response:
    # Refused by the limiter (429) or for the credentials (401): both count as a failure.
    if request.endpoint == "auth.login" and response.status_code in (401, 429):
        signals.sign_in_failed.send(request.endpoint, throttled=response.status_code == 429)
    return response


@bp.post("/logout")
@retry_transient
def logout():
    sessions.end()
    return signed_out("You are signed out.")


@bp.post("/logout/everywhere")
@login_required
@retry_transient
def logout_everywhere():
    accounts.end_all_sessions(current_user.id)
    return signed_out("You are signed out everywhere: every session of yours has ended.")


def signed_out(message: str) -> Response:
    """Forget who was signed in here and lead to the sign-in page, saying `message`."""
    logout_user()
    session.clear()
    flash(message, "info")
    response = redirect(url_for("auth.login"))
    # The browser drops the admin's pages it kept (ASVS 14.3.1); not the cookie, which
    # carries the flash message and ends nothing the server has not ended already.
    response.headers["Clear-Site-Data"] = '"cache", "storage"'
    return response


@bp.route("/account/password", methods=["GET", "POST"])
@login_required
# Someone at an unattended browser must not get to guess the password here instead.
@limiter.limit(
    lambda: current_app.config["LOGIN_LIMIT_PER_USERNAME_AND_IP"],
    methods=["POST"],
    key_func=password_user_key,
    deduct_when=wrong_password,
)
@retry_transient
def change_password():
    form = PasswordForm()
    status = 200
    if form.validate_on_submit():
        try:
            generation = accounts.change_password(
                current_user.id, form.current_password.data, form.new_password.data
            )
        except ValidationError as exc:
            g.wrong_password = "current_password" in exc.fields
            form.show_errors(exc)
            status = exc.status
        else:
            sessions.keep(generation)
            flash("Your password is changed; every other session of yours has ended.", "success")
            return redirect(url_for("auth.change_password"))
    elif form.is_submitted():
        status = 422
    return render_template("auth/password.html", form=form), status
