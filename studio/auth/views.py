"""Sign-in and sign-out pages for the shop's admins."""

from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Response,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import current_user, login_user, logout_user

from ..extensions import limiter
from ..resilience.retry import retry_transient
from ..services import accounts
from ..services.validation import CONTROL_CHARS
from .forms import LoginForm

bp = Blueprint("auth", __name__)


def username_key() -> str:
    return "login-user:" + request.form.get("username", "").strip().lower()[:80]


def failed(response: Response) -> bool:
    return response.status_code == 401


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
@limiter.limit(lambda: current_app.config["LOGIN_LIMIT_PER_IP"], methods=["POST"])
@limiter.limit(
    lambda: current_app.config["LOGIN_LIMIT_PER_USERNAME"],
    methods=["POST"],
    key_func=username_key,
    deduct_when=failed,
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
            return redirect(safe_next(request.args.get("next")))
        flash("Invalid username or password.", "error")
        status = 401
    elif current_user.is_authenticated and request.method == "GET":
        return redirect(safe_next(request.args.get("next")))
    return render_template("auth/login.html", form=form), status


@bp.post("/logout")
def logout():
    logout_user()
    session.clear()
    flash("You are signed out.", "info")
    return redirect(url_for("auth.login"))
