"""The operator commands: `spikewatch projects create|list`, `spikewatch keys
create|list|revoke` against DATABASE_URL, and `spikewatch api` handing its options to uvicorn."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
import typer
from sqlalchemy import select
from typer.testing import CliRunner

from api.auth import hash_key
from schemas.db import make_engine, make_sessionmaker
from schemas.settings import get_settings
from schemas.tables import PersonalApiKey
from spikewatch.commands.api_admin import register


@pytest.fixture
def cli(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[typer.Typer]:
    monkeypatch.setenv("DATABASE_URL", database_url)
    get_settings.cache_clear()
    app = typer.Typer()
    register(app)
    yield app
    get_settings.cache_clear()


def _stored_key(database_url: str, plaintext: str) -> PersonalApiKey | None:
    async def load() -> PersonalApiKey | None:
        engine = make_engine(database_url)
        try:
            async with make_sessionmaker(engine)() as session:
                return await session.scalar(
                    select(PersonalApiKey).where(PersonalApiKey.secure_value == hash_key(plaintext))
                )
        finally:
            await engine.dispose()

    return asyncio.run(load())


def test_projects_create_prints_the_id_and_list_shows_every_project(cli: typer.Typer) -> None:
    runner = CliRunner()

    first = runner.invoke(cli, ["projects", "create", "web shop"])
    second = runner.invoke(cli, ["projects", "create", "mobile"])
    listed = runner.invoke(cli, ["projects", "list"])

    assert (first.exit_code, first.stdout) == (0, "project 1 created: web shop\n")
    assert (second.exit_code, second.stdout) == (0, "project 2 created: mobile\n")
    assert listed.stdout == "1\tweb shop\n2\tmobile\n"


def test_projects_create_refuses_a_blank_name(cli: typer.Typer) -> None:
    result = CliRunner().invoke(cli, ["projects", "create", "   "])

    assert (result.exit_code, result.stderr) == (
        1,
        "error: a project name has 1 to 200 characters\n",
    )


def test_keys_create_prints_the_key_once_and_stores_only_its_hash(
    cli: typer.Typer, database_url: str
) -> None:
    runner = CliRunner()
    runner.invoke(cli, ["projects", "create", "a"])
    runner.invoke(cli, ["projects", "create", "b"])

    created = runner.invoke(
        cli,
        [
            "keys",
            "create",
            "--project",
            "1",
            "--project",
            "2",
            "--scopes",
            "error_tracking:read,error_tracking:write",
            "--label",
            "ci",
        ],
    )

    assert created.exit_code == 0, created.output
    plaintext = created.stdout.strip()
    assert plaintext.startswith("swk_") and len(plaintext) == 44
    stored = _stored_key(database_url, plaintext)
    assert stored is not None
    assert (stored.label, stored.scopes, stored.project_ids) == (
        "ci",
        ["error_tracking:read", "error_tracking:write"],
        [1, 2],
    )
    listed = runner.invoke(cli, ["keys", "list"])
    assert plaintext not in listed.stdout
    assert f"{stored.id}\t{plaintext[:4]}...{plaintext[-4:]}\tci\t" in listed.stdout
    assert "projects=1,2" in listed.stdout


def test_keys_create_for_all_projects_stores_no_project_list(
    cli: typer.Typer, database_url: str
) -> None:
    created = CliRunner().invoke(cli, ["keys", "create", "--all-projects", "--scopes", "*"])

    stored = _stored_key(database_url, created.stdout.strip())
    assert stored is not None
    assert (stored.scopes, stored.project_ids) == (["*"], None)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--scopes", "error_tracking:read"], "give either --project ID"),
        (["--project", "1", "--all-projects"], "give either --project ID"),
        (
            ["--all-projects", "--scopes", "error_tracking:admin"],
            "unknown scope(s) error_tracking:admin",
        ),
        (["--project", "7"], "no such project(s): 7"),
    ],
    ids=["no-project", "both", "unknown-scope", "missing-project"],
)
def test_keys_create_refuses_bad_options_with_exit_code_1(
    cli: typer.Typer, arguments: list[str], message: str
) -> None:
    runner = CliRunner()
    runner.invoke(cli, ["projects", "create", "a"])

    result = runner.invoke(cli, ["keys", "create", *arguments])

    assert result.exit_code == 1
    assert message in result.stderr
    assert "swk_" not in result.stdout


def test_keys_revoke_revokes_once(cli: typer.Typer, database_url: str) -> None:
    runner = CliRunner()
    plaintext = runner.invoke(cli, ["keys", "create", "--all-projects"]).stdout.strip()
    stored = _stored_key(database_url, plaintext)
    assert stored is not None

    revoked = runner.invoke(cli, ["keys", "revoke", str(stored.id)])
    again = runner.invoke(cli, ["keys", "revoke", str(stored.id)])
    malformed = runner.invoke(cli, ["keys", "revoke", "not-an-id"])

    assert (revoked.exit_code, revoked.stdout) == (0, f"key {stored.id} revoked\n")
    assert (again.exit_code, again.stderr) == (1, f"error: no active key with id {stored.id}\n")
    assert malformed.exit_code == 1
    revoked_key = _stored_key(database_url, plaintext)
    assert revoked_key is not None and revoked_key.revoked_at is not None


def test_api_command_serves_on_the_given_host_and_port_or_the_configured_ones(
    cli: typer.Typer, monkeypatch: pytest.MonkeyPatch
) -> None:
    served: list[tuple[str, int]] = []
    monkeypatch.setattr("api.server.run", lambda host, port: served.append((host, port)))
    monkeypatch.setenv("API_HOST", "127.0.0.9")
    monkeypatch.setenv("API_PORT", "8123")
    get_settings.cache_clear()

    explicit = CliRunner().invoke(cli, ["api", "--host", "0.0.0.0", "--port", "9001"])
    defaults = CliRunner().invoke(cli, ["api"])

    assert (explicit.exit_code, defaults.exit_code) == (0, 0)
    assert served == [("0.0.0.0", 9001), ("127.0.0.9", 8123)]
