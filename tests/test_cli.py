"""The flask commands admins and operators run."""

import pytest
from sqlalchemy import func, select

from studio.extensions import db
from studio.models import ApiToken, Paint, StockMovement
from studio.services import accounts


def test_create_admin_reads_the_password_from_stdin(runner):
    result = runner.invoke(
        args=["create-admin", "carol", "--password-stdin"], input="s3cret-enough\n"
    )
    assert result.exit_code == 0, result.output
    assert accounts.authenticate("carol", "s3cret-enough") is not None


def test_create_admin_prompts_twice(runner):
    result = runner.invoke(
        args=["create-admin", "dave"], input="long enough, surely\nlong enough, surely\n"
    )
    assert result.exit_code == 0, result.output
    assert accounts.authenticate("dave", "long enough, surely") is not None


@pytest.mark.parametrize(
    ("username", "password", "message"),
    [
        ("erin", "short", "at least 12 characters"),
        ("erin", "password1234", "password is too easy to guess"),
        ("x", "long enough, surely", "username"),
    ],
)
def test_create_admin_refuses_bad_input(runner, username, password, message):
    result = runner.invoke(
        args=["create-admin", username, "--password-stdin"], input=password + "\n"
    )
    assert result.exit_code != 0
    assert message in result.output
    assert accounts.find_user(username) is None


def test_create_admin_refuses_a_taken_name(runner):
    runner.invoke(args=["create-admin", "frank", "--password-stdin"], input="long enough, surely\n")
    result = runner.invoke(
        args=["create-admin", "frank", "--password-stdin"], input="another one, surely\n"
    )
    assert result.exit_code != 0 and "already exists" in result.output


def test_token_from_the_cli_drives_the_api(app, runner):
    runner.invoke(args=["create-admin", "grace", "--password-stdin"], input="long enough, surely\n")
    result = runner.invoke(args=["create-token", "grace", "--name", "nightly import"])
    assert result.exit_code == 0, result.output
    token = result.stdout.strip().splitlines()[-1]
    client = app.test_client()
    response = client.get("/api/v1/stats", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    listing = runner.invoke(args=["list-tokens", "grace"])
    assert "nightly import" in listing.output and token not in listing.output


def test_revoke_token_by_id_and_all(app, runner):
    runner.invoke(args=["create-admin", "heidi", "--password-stdin"], input="long enough, surely\n")
    tokens = [runner.invoke(args=["create-token", "heidi"]).stdout.split()[-1] for _ in range(3)]
    first_id = db.session.scalars(select(ApiToken.id).order_by(ApiToken.id)).first()
    assert runner.invoke(args=["revoke-token", "heidi", str(first_id)]).exit_code == 0
    headers = {"Authorization": f"Bearer {tokens[0]}"}
    assert app.test_client().get("/api/v1/stats", headers=headers).status_code == 401
    assert runner.invoke(args=["revoke-token", "heidi"]).exit_code != 0
    result = runner.invoke(args=["revoke-token", "heidi", "--all"])
    assert result.exit_code == 0 and "Revoked 2" in result.output
    headers = {"Authorization": f"Bearer {tokens[2]}"}
    assert app.test_client().get("/api/v1/stats", headers=headers).status_code == 401


def test_create_token_for_unknown_user_fails(runner):
    result = runner.invoke(args=["create-token", "nobody"])
    assert result.exit_code != 0 and "does not exist" in result.output


def test_seed_demo_adds_realistic_paints_with_their_opening_stock(runner):
    result = runner.invoke(args=["seed-demo", "--paints", "2500"])
    assert result.exit_code == 0, result.output
    assert "Added 2500 demo paints" in result.output
    assert db.session.scalar(select(func.count(Paint.id))) == 2500
    stocked = db.session.scalar(select(func.count(Paint.id)).where(Paint.stock > 0))
    movements = db.session.scalar(select(func.count(StockMovement.id)))
    assert movements == stocked
    brands = db.session.scalar(select(func.count(func.distinct(Paint.brand))))
    assert brands >= 10
    paint = db.session.scalars(select(Paint).where(Paint.stock > 0)).first()
    assert paint.color_preview.startswith("#") and paint.price > 0


def test_seed_demo_twice_keeps_codes_unique(runner):
    assert runner.invoke(args=["seed-demo", "--paints", "50"]).exit_code == 0
    assert runner.invoke(args=["seed-demo", "--paints", "50"]).exit_code == 0
    assert db.session.scalar(select(func.count(Paint.id))) == 100


def test_import_and_export_paints_through_files(runner, tmp_path, make_paint):
    make_paint(name="Already here", brand="Citadel", color_code="OLD-1", stock=4)
    source = tmp_path / "in.csv"
    source.write_text(
        "name,brand,color_code,stock,price\n"
        + "".join(f"Imported {n},Vallejo,V-{n},{n % 3},1.{n % 10}0\n" for n in range(2500))
    )
    result = runner.invoke(args=["import-paints", str(source)])
    assert result.exit_code == 0, result.output
    assert "Imported 2500 paints." in result.output
    assert db.session.scalar(select(func.count(Paint.id))) == 2501
    target = tmp_path / "out.csv"
    result = runner.invoke(
        args=["export-paints", str(target), "--query", "brand=Vallejo&sort=-name"]
    )
    assert result.exit_code == 0, result.output
    lines = target.read_text("utf-8-sig").splitlines()
    assert lines[0].startswith("name,brand,color_code") and len(lines) == 2501
    assert lines[1].startswith("Imported 999,Vallejo,V-999,")


def test_import_paints_refuses_a_file_with_a_bad_row_and_imports_nothing(runner, tmp_path):
    source = tmp_path / "bad.csv"
    source.write_text("name,brand,stock\nGood,B,1\nBad,B,-4\nAlso good,B,2\n")
    result = runner.invoke(args=["import-paints", str(source)])
    assert result.exit_code != 0
    assert 'line 3: stock "-4" must be between' in result.output
    assert "nothing was imported" in result.output
    assert db.session.scalar(select(func.count(Paint.id))) == 0


def test_export_paints_explains_a_bad_query(runner, tmp_path):
    result = runner.invoke(args=["export-paints", str(tmp_path / "x.csv"), "--query", "sort=size"])
    assert result.exit_code != 0 and "sort must be one of" in result.output
