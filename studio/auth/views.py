"""Sign-in and sign-out pages for the shop's admins."""

from urllib.parse import urlsplit

from flask import Blueprint, flash, redirect, render_template, request, session, url_for
from flask_login import current_user, login_required, login_user, logout_user

from ..services import accounts
from .forms import LoginForm

bp = Blueprint("auth", __name__)


def safe_next(target: str | None) -> str:
    """Return `target` if it is a path on this site, else the home page."""
    if target:
        parts = urlsplit(target)
        if not parts.scheme and not parts.netloc and target.startswith("/") and "\\" not in target:
            if not target.startswith("//"):
                return target
    return url_for("auth.index")


@bp.get("/")
@login_required
def index():
    return render_template("auth/index.html")


@bp.route("/login", methods=["GET", "POST"])
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
