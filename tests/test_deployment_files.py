"""docker-compose.yml, the Dockerfile and the Procfile start processes that the code really has.

No Docker is needed: the files are parsed and checked against the CLI, the settings and each other,
so renaming a subcommand or a setting breaks this test rather than a user's deployment.
"""

from __future__ import annotations

import pathlib
import re
import shlex
import tomllib
from typing import Any
from urllib.parse import urlparse

import pytest
import typer
import yaml

from schemas.settings import Settings

REPO = pathlib.Path(__file__).resolve().parent.parent
SERVICES = {"kafka", "redis", "postgres", "migrate", "worker", "api"}
LONG_RUNNING = SERVICES - {"migrate"}
SPIKEWATCH_SERVICES = ("migrate", "worker", "api")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())


@pytest.fixture(scope="module")
def procfile() -> dict[str, str]:
    lines = (REPO / "Procfile").read_text().splitlines()
    return dict(line.split(": ", 1) for line in lines if line.strip())


def _words(command: str | list[str]) -> list[str]:
    return shlex.split(command) if isinstance(command, str) else [str(word) for word in command]


def resolve_cli_command(words: list[str]) -> Any:
    """The command that ``spikewatch <words…>`` runs; fails on an unknown name or option."""
    from spikewatch.cli import app

    assert words[0] == "spikewatch", words
    command = typer.main.get_command(app)
    rest = words[1:]
    # Typer ships its own click, so a group is recognised by its subcommands, not by its class.
    while rest and hasattr(command, "commands") and not rest[0].startswith("-"):
        name = rest.pop(0)
        assert name in command.commands, f"`{name}` is not a subcommand in {words}"
        command = command.commands[name]
    assert not hasattr(command, "commands"), f"{words} stops at a group, not a command"
    options = {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)}
    for word in rest:
        if word.startswith("-"):
            assert word.split("=", 1)[0] in options, f"`{word}` is not an option of {words}"
    return command


def test_compose_defines_exactly_the_spikewatch_stack(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) == SERVICES


def test_every_long_running_service_has_a_health_check(compose: dict[str, Any]) -> None:
    for name in sorted(LONG_RUNNING):
        test = compose["services"][name]["healthcheck"]["test"]
        assert test[0] in ("CMD", "CMD-SHELL") and len(test) > 1, name


def test_worker_can_be_scaled(compose: dict[str, Any]) -> None:
    worker = compose["services"]["worker"]

    assert "container_name" not in worker
    assert "ports" not in worker


def test_spikewatch_services_wait_for_healthy_dependencies_and_the_migrations(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    expected = {
        "migrate": {"postgres": "service_healthy"},
        "worker": {
            "kafka": "service_healthy",
            "redis": "service_healthy",
            "postgres": "service_healthy",
            "migrate": "service_completed_successfully",
        },
        "api": {
            "redis": "service_healthy",
            "postgres": "service_healthy",
            "migrate": "service_completed_successfully",
        },
    }
    for name, dependencies in expected.items():
        declared = {dep: spec["condition"] for dep, spec in services[name]["depends_on"].items()}
        assert declared == dependencies, name


def test_kafka_runs_the_official_image_in_kraft_mode(compose: dict[str, Any]) -> None:
    kafka = compose["services"]["kafka"]
    environment = kafka["environment"]

    assert kafka["image"].startswith("apache/kafka:")
    assert set(environment["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert environment["KAFKA_CONTROLLER_QUORUM_VOTERS"] == "1@kafka:9093"
    assert environment["KAFKA_NODE_ID"] == 1


def test_compose_kafka_is_the_broker_version_the_tests_run_on(compose: dict[str, Any]) -> None:
    pom = (REPO / "scripts" / "kafka" / "pom.xml").read_text()
    pinned = re.search(r"<kafka\.version>([^<]+)</kafka\.version>", pom)

    assert pinned is not None
    assert compose["services"]["kafka"]["image"] == f"apache/kafka:{pinned.group(1)}"


def test_spikewatch_services_point_at_the_compose_backends(compose: dict[str, Any]) -> None:
    services = compose["services"]
    advertised = services["kafka"]["environment"]["KAFKA_ADVERTISED_LISTENERS"]
    postgres = services["postgres"]["environment"]
    settings_fields = {name.upper() for name in Settings.model_fields}

    for name in SPIKEWATCH_SERVICES:
        environment = services[name]["environment"]
        assert set(environment) <= settings_fields, name
        database = urlparse(environment["DATABASE_URL"])
        assert database.scheme == "postgresql+asyncpg"
        assert (database.hostname, database.username, database.password) == (
            "postgres",
            postgres["POSTGRES_USER"],
            postgres["POSTGRES_PASSWORD"],
        )
        assert database.path == f"/{postgres['POSTGRES_DB']}"
        assert urlparse(environment["REDIS_URL"]).hostname == "redis"
        assert f"PLAINTEXT://{environment['KAFKA_BOOTSTRAP_SERVERS']}" in advertised.split(",")


def test_compose_commands_are_cli_subcommands(compose: dict[str, Any]) -> None:
    commands = {
        name: resolve_cli_command(_words(compose["services"][name]["command"])).name
        for name in SPIKEWATCH_SERVICES
    }

    assert commands == {"migrate": "upgrade", "worker": "worker", "api": "api"}


def test_procfile_runs_the_worker_and_the_api(procfile: dict[str, str]) -> None:
    # A dyno's name (worker.1) survives its restarts: the worker's static group membership.
    assert procfile == {
        "worker": "WORKER_INSTANCE_ID=${DYNO:-} spikewatch worker",
        "api": "spikewatch api",
    }
    for command in procfile.values():
        words = _words(command)
        while "=" in words[0]:  # the shell's environment assignments before the command
            words.pop(0)
        resolve_cli_command(words)


def test_each_compose_worker_replica_is_a_static_member_under_its_container_name(
    compose: dict[str, Any],
) -> None:
    assert compose["services"]["worker"]["environment"]["WORKER_INSTANCE_ID"] == (
        "worker-{hostname}"
    )


def test_unknown_subcommands_and_options_are_rejected() -> None:
    with pytest.raises(AssertionError, match="`wrker` is not a subcommand"):
        resolve_cli_command(["spikewatch", "wrker"])
    with pytest.raises(AssertionError, match="`--hots` is not an option"):
        resolve_cli_command(["spikewatch", "api", "--hots", "0.0.0.0"])
    with pytest.raises(AssertionError, match="stops at a group"):
        resolve_cli_command(["spikewatch", "db"])


def test_dockerfile_installs_every_package_as_a_non_root_user() -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    instructions = [line.split(None, 1) for line in dockerfile.splitlines() if line[:1].isalpha()]
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    packages = {
        p.rstrip("*") for p in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    }
    copied = {args.split()[0] for verb, args in instructions if verb == "COPY"}

    assert next(args for verb, args in instructions if verb == "FROM").startswith(
        "python:3.11-slim"
    )
    assert any(verb == "RUN" and re.search(r"pip install \.$", args) for verb, args in instructions)
    assert packages <= copied
    assert [args for verb, args in instructions if verb == "USER"] == ["spikewatch"]
