"""Record the stack frames of a batch once per project, linked to their symbol set and its release.

A frame's ``raw_id`` is its own or a stable hash of its identity, so all workers name a frame alike.
Writes are insert-if-absent (the first sighting is kept) and batched; bounded caches skip whole
stacks, frames and symbol sets this worker already stored. Never deletes or rewrites a stored frame.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec
from sqlalchemy import bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from schemas.events import Frame
from schemas.tables import Release, StackFrame, SymbolSet, utcnow
from worker.lru import LruCache
from worker.records import EventRecord, in_flight
from worker.retry import retry_infrastructure
from worker.upserts import chunked, insert_if_absent, pairs_match

# Events often name a release that was never created: looking it up again for every batch would
# cost statements per batch for nothing, so an unlinked symbol set looks again at most this often.
RELEASE_RECHECK_SECONDS = 30.0
# Events of one issue mostly repeat the same stack: remembering the stacks stored whole (by their
# digest, see ``worker.fingerprint``) lets such an event skip hashing each of its frames.
STACK_CACHE_SIZE = 20_000

FrameKey = tuple[int, str]  # (project_id, raw_id)
SymbolSetKey = tuple[int, str]  # (project_id, symbol_set_ref)
StackKey = tuple[int, bytes]  # (project_id, stack_digest)


def frame_raw_id(frame: Frame) -> str:
    """The frame's own ``raw_id`` if it sent one, else a SHA-256 hex of where the frame points."""
    if frame.raw_id:
        return frame.raw_id
    identity = [
        frame.platform,
        frame.filename,
        frame.abs_path,
        frame.module,
        frame.function,
        frame.lineno,
        frame.colno,
    ]
    return hashlib.sha256(msgspec.json.encode(identity)).hexdigest()


def frame_contents(frame: Frame, raw_id: str) -> dict[str, Any]:
    """The stored ``contents`` of a frame: everything it sent but its context, with its raw_id."""
    contents = msgspec.to_builtins(frame)
    contents.pop("context", None)
    contents["raw_id"] = raw_id
    return contents


@dataclass(frozen=True, slots=True)
class _SymbolSetState:
    id: uuid.UUID
    release_id: uuid.UUID | None
    # When an unlinked set last looked for its release (clock seconds), or None if it never did.
    release_checked_at: float | None


@dataclass(slots=True)
class _BatchFrames:
    frames: dict[FrameKey, Frame]
    # The release hash_id to link each symbol set to (None when no event of the batch named one).
    symbol_sets: dict[SymbolSetKey, str | None]
    # Stacks whose every frame is stored once this batch's frames are.
    stacks: set[StackKey]


class StackFrameRecorder:
    def __init__(
        self,
        engine: AsyncEngine,
        *,
        cache_size: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._engine = engine
        self._clock = clock
        self._known_frames: LruCache[FrameKey, bool] = LruCache(cache_size)
        self._known_symbol_sets: LruCache[SymbolSetKey, _SymbolSetState] = LruCache(cache_size)
        self._known_stacks: LruCache[StackKey, bool] = LruCache(STACK_CACHE_SIZE)

    async def record(self, batch: Sequence[EventRecord]) -> Sequence[EventRecord]:
        """Store the frames of every in-flight record that this worker has not stored yet."""
        work = self._new_work(in_flight(batch))
        if work.frames or work.symbol_sets:
            checked_at = self._clock()
            stored_sets = await retry_infrastructure(
                lambda: self._store(work, checked_at), dependency="database"
            )
            for key, state in stored_sets.items():
                self._known_symbol_sets.put(key, state)
            for key in work.frames:
                self._known_frames.put(key, True)
        for stack in work.stacks:
            self._known_stacks.put(stack, True)
        return batch

    def _new_work(self, records: Sequence[EventRecord]) -> _BatchFrames:
        work = _BatchFrames(frames={}, symbol_sets={}, stacks=set())
        for record in records:
            stack = (record.project_id, _stack_digest(record))
            if self._known_stacks.get(stack) is not None:
                continue
            release = record.known_properties.release
            names_symbol_set = False
            for entry in record.exceptions:
                for frame in entry.stacktrace.frames if entry.stacktrace else ():
                    key = (record.project_id, frame_raw_id(frame))
                    if key not in self._known_frames and key not in work.frames:
                        work.frames[key] = frame
                    if frame.symbol_set_ref:
                        names_symbol_set = True
                        set_key = (record.project_id, frame.symbol_set_ref)
                        if self._symbol_set_needs_work(set_key, release):
                            work.symbol_sets[set_key] = work.symbol_sets.get(set_key) or release
            # A symbol set may still be waiting for its release, which a later event can name:
            # stacks that name one are looked at frame by frame every time.
            if not names_symbol_set:
                work.stacks.add(stack)
        return work

    def _symbol_set_needs_work(self, key: SymbolSetKey, release: str | None) -> bool:
        state = self._known_symbol_sets.get(key)
        if state is None:
            return True
        if state.release_id is not None or release is None:
            return False
        checked_at = state.release_checked_at
        return checked_at is None or self._clock() - checked_at >= RELEASE_RECHECK_SECONDS

    async def _store(
        self, work: _BatchFrames, checked_at: float
    ) -> dict[SymbolSetKey, _SymbolSetState]:
        async with self._engine.begin() as connection:
            stored_sets = await _insert_or_link_symbol_sets(
                connection, work.symbol_sets, checked_at
            )
            set_ids = {key: state.id for key, state in stored_sets.items()}
            # Frames whose symbol set this worker stored in an earlier batch link to it by cache.
            for (project_id, _raw_id), frame in work.frames.items():
                set_key = (project_id, frame.symbol_set_ref or "")
                cached = self._known_symbol_sets.get(set_key)
                if set_key not in set_ids and cached is not None:
                    set_ids[set_key] = cached.id
            await _insert_frames(connection, work.frames, set_ids)
            return stored_sets


async def _insert_or_link_symbol_sets(
    connection: AsyncConnection, wanted: Mapping[SymbolSetKey, str | None], checked_at: float
) -> dict[SymbolSetKey, _SymbolSetState]:
    if not wanted:
        return {}
    releases = await _release_ids(
        connection, {(key[0], release) for key, release in wanted.items() if release}
    )
    links = {key: releases.get((key[0], release)) for key, release in wanted.items() if release}
    now = utcnow()
    rows = [
        {
            "id": uuid.uuid4(),
            "project_id": key[0],
            "ref": key[1],
            "release_id": links.get(key),
            "created_at": now,
        }
        for key in sorted(wanted)
    ]
    statement = insert_if_absent(SymbolSet, connection.dialect.name)
    for chunk in chunked(rows):
        await connection.execute(statement, list(chunk))
    # A set stored before its release was known gets linked now; a linked one is never relinked.
    relink = [
        {"p": key[0], "r": key[1], "release": release_id}
        for key, release_id in sorted(links.items())
        if release_id is not None
    ]
    if relink:
        await connection.execute(
            update(SymbolSet)
            .where(
                SymbolSet.project_id == bindparam("p"),
                SymbolSet.ref == bindparam("r"),
                SymbolSet.release_id.is_(None),
            )
            .values(release_id=bindparam("release")),
            relink,
        )
    stored = await _stored_symbol_sets(connection, wanted.keys())
    return {
        key: _SymbolSetState(set_id, release_id, checked_at if wanted[key] else None)
        for key, (set_id, release_id) in stored.items()
    }


async def _release_ids(
    connection: AsyncConnection, wanted: Collection[tuple[int, str]]
) -> dict[tuple[int, str], uuid.UUID]:
    found: dict[tuple[int, str], uuid.UUID] = {}
    for chunk in chunked(sorted(wanted)):
        rows = await connection.execute(
            select(Release.team_id, Release.hash_id, Release.id).where(
                pairs_match(Release.team_id, Release.hash_id, chunk)
            )
        )
        found.update({(row.team_id, row.hash_id): row.id for row in rows})
    return found


async def _stored_symbol_sets(
    connection: AsyncConnection, keys: Collection[SymbolSetKey]
) -> dict[SymbolSetKey, tuple[uuid.UUID, uuid.UUID | None]]:
    found: dict[SymbolSetKey, tuple[uuid.UUID, uuid.UUID | None]] = {}
    for chunk in chunked(sorted(keys)):
        rows = await connection.execute(
            select(SymbolSet.project_id, SymbolSet.ref, SymbolSet.id, SymbolSet.release_id).where(
                pairs_match(SymbolSet.project_id, SymbolSet.ref, chunk)
            )
        )
        found.update({(row.project_id, row.ref): (row.id, row.release_id) for row in rows})
    return found


async def _insert_frames(
    connection: AsyncConnection,
    frames: Mapping[FrameKey, Frame],
    symbol_set_ids: Mapping[SymbolSetKey, uuid.UUID],
) -> None:
    now = utcnow()
    rows = []
    for key in sorted(frames):
        frame = frames[key]
        rows.append(
            {
                "id": uuid.uuid4(),
                "project_id": key[0],
                "raw_id": key[1],
                "created_at": now,
                "symbol_set_id": symbol_set_ids.get((key[0], frame.symbol_set_ref or "")),
                "contents": frame_contents(frame, key[1]),
                "resolved": frame.resolved,
                "context": frame.context,
            }
        )
    statement = insert_if_absent(StackFrame, connection.dialect.name)
    for chunk in chunked(rows):
        await connection.execute(statement, list(chunk))


def _stack_digest(record: EventRecord) -> bytes:
    if record.stack_digest is None:
        raise ValueError("frames are recorded after fingerprinting")
    return record.stack_digest
