"""Operator actions behind the CLI: create and list projects, create, list and revoke API keys.

The plaintext of a new key is returned once, to be shown once; only its SHA-256 is stored.
These functions are not reachable over HTTP.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.auth import KNOWN_SCOPES, generate_key, hash_key, mask_key
from schemas.tables import PersonalApiKey, Project, utcnow

MAX_NAME_LENGTH = 200


async def create_project(sessionmaker: async_sessionmaker[AsyncSession], name: str) -> Project:
    name = name.strip()
    if not name or len(name) > MAX_NAME_LENGTH:
        raise ValueError(f"a project name has 1 to {MAX_NAME_LENGTH} characters")
    async with sessionmaker() as session:
        project = Project(name=name)
        session.add(project)
        await session.commit()
        return project


async def list_projects(sessionmaker: async_sessionmaker[AsyncSession]) -> list[Project]:
    async with sessionmaker() as session:
        return list((await session.scalars(select(Project).order_by(Project.id))).all())


async def create_api_key(
    sessionmaker: async_sessionmaker[AsyncSession],
    *,
    label: str,
    scopes: list[str],
    project_ids: list[int] | None,
) -> tuple[PersonalApiKey, str]:
    """A new key and its plaintext; ``project_ids=None`` lets it touch every project."""
    _check_scopes(scopes)
    if len(label) > MAX_NAME_LENGTH:
        raise ValueError(f"a key label has at most {MAX_NAME_LENGTH} characters")
    async with sessionmaker() as session:
        if project_ids is not None:
            await _check_projects_exist(session, project_ids)
        plaintext = generate_key()
        key = PersonalApiKey(
            label=label,
            secure_value=hash_key(plaintext),
            mask_value=mask_key(plaintext),
            scopes=sorted(set(scopes)),
            project_ids=sorted(set(project_ids)) if project_ids is not None else None,
        )
        session.add(key)
        await session.commit()
        return key, plaintext


async def list_api_keys(sessionmaker: async_sessionmaker[AsyncSession]) -> list[PersonalApiKey]:
    async with sessionmaker() as session:
        statement = select(PersonalApiKey).order_by(PersonalApiKey.created_at, PersonalApiKey.id)
        return list((await session.scalars(statement)).all())


async def revoke_api_key(sessionmaker: async_sessionmaker[AsyncSession], key_id: uuid.UUID) -> bool:
    """True when an active key was revoked; False when no active key has this id."""
    async with sessionmaker() as session:
        key = await session.get(PersonalApiKey, key_id)
        if key is None or key.revoked_at is not None:
            return False
        key.revoked_at = utcnow()
        await session.commit()
        return True


def _check_scopes(scopes: Iterable[str]) -> None:
    scopes = list(scopes)
    if not scopes:
        raise ValueError("a key needs at least one scope")
    unknown = sorted(set(scopes) - KNOWN_SCOPES)
    if unknown:
        raise ValueError(
            f"unknown scope(s) {', '.join(unknown)}; known: {', '.join(sorted(KNOWN_SCOPES))}"
        )


async def _check_projects_exist(session: AsyncSession, project_ids: list[int]) -> None:
    if not project_ids:
        raise ValueError("name at least one project, or give the key access to all projects")
    found = set(
        (await session.scalars(select(Project.id).where(Project.id.in_(project_ids)))).all()
    )
    missing = sorted(set(project_ids) - found)
    if missing:
        raise ValueError(f"no such project(s): {', '.join(map(str, missing))}")
