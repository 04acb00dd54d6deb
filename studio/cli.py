"""Command-line tools: admins, API tokens and demo data."""

import contextlib
import functools
import secrets
import sys
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl

import click
from flask import Flask, current_app
from flask.cli import with_appcontext
from flask_migrate import upgrade
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.serving import run_simple

from .database import lift_time_limits
from .extensions import db
from .models import Paint
from .resilience.faults import cause
from .services import (
    accounts,
    anchors,
    cached_reads,
    copying,
    csv_io,
    demo,
    figures,
    listing,
    planner,
)
from .services.errors import ServiceError


def register_commands(app: Flask) -> None:
    """Add studio's commands to `flask`."""
    commands = (
        create_admin,
        change_password,
        deactivate_admin,
        create_token,
        revoke_token,
        list_tokens,
        seed_demo,
        run_demo,
        cache_status,
        import_paints,
        export_paints,
        copy_data,
        check_figures,
        build_anchors,
    )
    for command in commands:
        app.cli.add_command(command)


def service_errors_shown(command: Callable[..., None]) -> Callable[..., None]:
    """Show a ServiceError the command meets as its error message, one line per field."""

    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> None:
        try:
            command(*args, **kwargs)
        except ServiceError as exc:
            details = "".join(f"\n  {field} {message}" for field, message in exc.fields.items())
            raise click.ClickException(f"{exc.message}{details}") from None

    return run


@click.command("create-admin")
@click.argument("username")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@with_appcontext
@service_errors_shown
def create_admin(username: str, password_stdin: bool) -> None:
    """Create an admin who can sign in and own API tokens."""
    password = _read_password("Password", password_stdin)
    accounts.create_user(username, password)
    click.echo(f"Created admin {username}.")


def _read_password(prompt: str, from_stdin: bool) -> str:
    """Return a password read from standard input's first line, or asked for twice, hidden."""
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    return click.prompt(prompt, hide_input=True, confirmation_prompt=True)


@click.command("change-password")
@click.argument("username")
@click.option("--password-stdin", is_flag=True, help="Read the new password from standard input.")
@with_appcontext
@service_errors_shown
def change_password(username: str, password_stdin: bool) -> None:
    """Set an admin's password; every session they have ends (their API tokens stay)."""
    user = accounts.find_user(username)
    if user is None:
        raise click.ClickException(f"User {username} does not exist.")
    password = _read_password("New password", password_stdin)
    accounts.set_password(user, password)
    click.echo(f"Changed the password of {username}; their sessions have ended.")


@click.command("deactivate-admin")
@click.argument("username")
@with_appcontext
@service_errors_shown
def deactivate_admin(username: str) -> None:
    """Stop an admin from signing in; their sessions and API tokens stop working at once."""
    accounts.deactivate_user(username)
    click.echo(f"Deactivated {username}.")


@click.command("cache-status")
@with_appcontext
def cache_status() -> None:
    """Print the cache's backend, state (ok or degraded) and hit counters."""
    for name, value in cached_reads.status().items():
        click.echo(f"{name}: {value}")


@click.command("create-token")
@click.argument("username")
@click.option("--name", help="A label to recognise the token by, e.g. the script using it.")
@with_appcontext
@service_errors_shown
def create_token(username: str, name: str | None) -> None:
    """Create an API token; the token itself is printed alone on the last line."""
    token, secret = accounts.create_token(username, name)
    click.echo(f"Token {token.id} for {username}; it is shown only this once:", err=True)
    click.echo(secret)


@click.command("revoke-token")
@click.argument("username")
@click.argument("token_id", type=int, required=False)
@click.option("--all", "revoke_all", is_flag=True, help="Revoke every token of the user.")
@with_appcontext
@service_errors_shown
def revoke_token(username: str, token_id: int | None, revoke_all: bool) -> None:
    """Revoke one API token of a user (by id), or all of them with --all."""
    if (token_id is None) == (not revoke_all):
        raise click.UsageError("Give a TOKEN_ID or --all (not both).")
    count = accounts.revoke_tokens(username, token_id)
    if token_id is not None and count == 0:
        raise click.ClickException(f"{username} has no token {token_id}.")
    click.echo(f"Revoked {count} token(s) of {username}.")


@click.command("list-tokens")
@click.argument("username")
@with_appcontext
@service_errors_shown
def list_tokens(username: str) -> None:
    """List a user's API tokens (ids and labels; the secrets are not kept)."""
    tokens = accounts.list_tokens(username)
    for token in tokens:
        click.echo(f"{token.id}\t{token.name or '-'}\t{token.created_at:%Y-%m-%d %H:%M}")


@click.command("seed-demo")
@click.option(
    "--paints", "count", default=1000, show_default=True, type=click.IntRange(1, 10_000_000)
)
@with_appcontext
def seed_demo(count: int) -> None:
    """Add realistic demo paints in bulk."""
    lift_time_limits()
    _seed(count)


def _seed(count: int) -> None:
    with click.progressbar(length=count, label="Adding demo paints") as bar:
        added = demo.seed_demo(count, on_batch=_progress(bar))
    click.echo(f"Added {added} demo paints.")
    _build_anchors()


@click.command("build-anchors")
@with_appcontext
def build_anchors() -> None:
    """Rebuild the stale page anchors of the listing orders (PostgreSQL; see README)."""
    lift_time_limits()
    _build_anchors()


def _build_anchors() -> None:
    written = anchors.rebuild()
    if written is None:
        click.echo("Page anchors not built (SQLite, or another builder is at work).")
    else:
        click.echo(f"Page anchors built: {written} written (orders already fresh kept).")


@click.command("import-paints")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@with_appcontext
@service_errors_shown
def import_paints(path: str) -> None:
    """Import a CSV file of paints: all of it in one transaction, or nothing if a row is bad."""
    lift_time_limits()
    with open(path, "rb") as source:
        raw = source.read()
    rows = max(raw.count(b"\n") - 1, 1)
    with click.progressbar(length=rows, label="Checking rows") as bar:
        check = csv_io.check_import(raw, on_rows=bar.update)
    click.echo(check.how_read)
    if not check.ok:
        for line, reason in check.errors[:50]:
            click.echo(f"line {line}: {reason}", err=True)
        more = len(check.errors) - 50
        raise click.ClickException(
            f"{len(check.errors)} problem(s){f' ({more} more not shown)' if more > 0 else ''}; "
            "nothing was imported."
        )
    with click.progressbar(length=len(check.rows), label="Importing") as bar:
        progress = _progress(bar)
        count = csv_io.import_checked(check, None, on_batch=progress)
    if count >= planner.BULK_ROWS:
        planner.vacuum_tables()
    click.echo(f"Imported {count} paints.")
    if count >= planner.BULK_ROWS:
        _build_anchors()


@click.command("export-paints")
@click.argument("path", type=click.Path(dir_okay=False, writable=True))
@click.option(
    "--query", default="", help="The list's filters, e.g. 'brand=Citadel&stock=low_stock'."
)
@with_appcontext
@service_errors_shown
def export_paints(path: str, query: str) -> None:
    """Export the paints (all, or those the list filters pick) to a CSV file."""
    lift_time_limits()
    paint_filter = listing.PaintFilter.from_args(dict(parse_qsl(query)))
    total, _ = listing.count_matching(paint_filter.conditions(listing.dialect_name()), "")
    written = 0
    with open(path, "w", newline="", encoding="utf-8") as target:
        with click.progressbar(length=total, label="Exporting") as bar:
            for chunk in csv_io.export_csv(_counted(listing.matching_paints(paint_filter), bar)):
                target.write(chunk)
    written = total
    click.echo(f"Exported {written} paints to {path}.")


@click.command("copy-data")
@click.option(
    "--from",
    "source_url",
    required=True,
    metavar="URL",
    help="The SQLite database to copy, e.g. sqlite:///instance/studio.db.",
)
@click.option(
    "--force",
    is_flag=True,
    help="Empty the target's tables first, in the copy's transaction (all or nothing).",
)
@click.option(
    "--dry-run", is_flag=True, help="Check and count what would be copied; write nothing."
)
@with_appcontext
@service_errors_shown
def copy_data(source_url: str, force: bool, dry_run: bool) -> None:
    """Copy a SQLite shop into the configured PostgreSQL DATABASE_URL, ids kept.

    Copies admins, API tokens, signed-out sessions, the types and colour families lists,
    paints and stock movements; leaves runtime state behind (idempotency keys, checked
    CSV files awaiting confirmation, cache epochs). Both databases must be at the newest
    migration. The copy is one transaction, checked before it commits (rows per table,
    units, stock value, movements), that also starts a new cache epoch, so nothing cached
    before is served.
    """
    try:
        if dry_run:
            report = copying.copy_shop(source_url, force=force, dry_run=True)
        else:
            with contextlib.ExitStack() as shown:
                bars: list[Any] = []

                def advance(done: int, total: int) -> None:
                    if not bars:  # from the first batch on: a refusal comes before any
                        bars.append(
                            shown.enter_context(
                                click.progressbar(length=total, label="Copying rows", show_pos=True)
                            )
                        )
                    bars[0].update(done - bars[0].pos)

                report = copying.copy_shop(source_url, force=force, on_rows=advance)
    except SQLAlchemyError as exc:
        raise click.ClickException(f"The copy could not go on: {cause(exc)}") from None
    if not report.copied:
        click.echo(f"Dry run: would copy {report.source.summary()}.")
        if report.emptied:
            emptied = ", ".join(f"{count:,} {name}" for name, count in report.emptied.items())
            click.echo(f"--force would first empty the target's {emptied}.")
        click.echo("Nothing was changed.")
        return
    click.echo(f"Copied and verified: {report.source.summary()}, the same on both sides.")
    click.echo("Sequences reset, cache retired (new epoch), tables vacuumed and analysed.")
    _build_anchors()


@click.command("check-figures")
@click.option("--fix", is_flag=True, help="Replace the totals that differ by the recount.")
@with_appcontext
def check_figures(fix: bool) -> None:
    """Recount the figures from the paints and compare them with the running totals.

    Prints each total that differs (brand, family, figure, kept and counted) and exits
    with status 1 if any does; --fix puts the recount in their place, in one transaction.
    """
    lift_time_limits()
    drifts = figures.check(fix=fix)
    for drift in drifts:
        click.echo(
            f"{drift.brand} / {drift.color_family or '(no family)'}: {drift.field} "
            f"kept {drift.stored}, counted {drift.actual}"
        )
    if not drifts:
        click.echo("The figures match the paints.")
    elif fix:
        click.echo(f"Fixed {len(drifts)} figure(s): the totals now match the paints.")
    else:
        raise click.ClickException(f"{len(drifts)} figure(s) differ; run with --fix to mend them.")


def _counted(paints, bar):
    for paint in paints:
        bar.update(1)
        yield paint


def _progress(bar):
    done = 0

    def advance(total: int) -> None:
        nonlocal done
        bar.update(total - done)
        done = total

    return advance


@click.command("demo")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@click.option(
    "--paints", "count", default=500, show_default=True, type=click.IntRange(0, 1_000_000)
)
@click.option("--no-serve", is_flag=True, help="Prepare the database and stop.")
@with_appcontext
def run_demo(host: str, port: int, count: int, no_serve: bool) -> None:
    """Migrate, add a demo admin and paints if missing, then serve the app."""
    upgrade()
    password = secrets.token_urlsafe(9)
    user = accounts.find_user("admin")
    if user is None:
        accounts.create_user("admin", password)
    else:
        accounts.set_password(user, password)
    if count and not db.session.scalar(select(func.count(Paint.id))):
        _seed(count)
    # The count's transaction would otherwise stay open while serving: on SQLite it holds
    # the write lock (BEGIN IMMEDIATE), and every request that writes waits for it, then fails.
    db.session.remove()
    url = f"http://{host}:{port}/"
    click.echo(f"\nstudio is ready at {url}\nSign in as admin with password {password}\n")
    if not no_serve:
        run_simple(host, port, current_app._get_current_object(), threaded=True)
