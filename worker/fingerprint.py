"""Group an exception event into its issue fingerprint (ARCHITECTURE.md, "Fingerprint").

Pure functions of the exception list and the client's manual fingerprint only, so every worker and
every replay computes the same fingerprint for the same event; computed ones are remembered by
the digest of what they read, since an issue's events repeat it. Never does I/O.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from operator import attrgetter
from typing import Any

import msgspec

from schemas.events import ExceptionEntry, Frame
from worker.lru import LruCache
from worker.records import EventRecord, in_flight

# The issue fingerprint column is String(64): a SHA-256 hex digest fills it exactly.
FINGERPRINT_MAX_LENGTH = 64
# Bump when the grouping rules change: old and new fingerprints then never collide by accident.
_GROUPING_VERSION = "1"
# 128 bits: two different stacks sharing a digest is not a case worth a thought.
STACK_DIGEST_BYTES = 16
# Computing a fingerprint hashes every grouping frame of the event; the results of the recent
# stacks are kept instead (about 200 bytes each).
REMEMBERED_FINGERPRINTS = 20_000

_remembered: LruCache[bytes, str] = LruCache(REMEMBERED_FINGERPRINTS)
_stack_encoder = msgspec.msgpack.Encoder()
_resolved = attrgetter("resolved")


def fingerprint_batch(batch: Sequence[EventRecord]) -> Sequence[EventRecord]:
    """Set ``stack_digest`` and ``fingerprint`` on every in-flight record."""
    for record in in_flight(batch):
        exceptions = record.exceptions
        digest = stack_digest(exceptions)
        record.stack_digest = digest
        manual = record.known_properties.exception_fingerprint
        if manual:
            record.fingerprint = manual_fingerprint(manual)
            continue
        fingerprint = _remembered.get(digest)
        if fingerprint is None:
            fingerprint = computed_fingerprint(exceptions)
            _remembered.put(digest, fingerprint)
        record.fingerprint = fingerprint
    return batch


def stack_digest(exceptions: Sequence[ExceptionEntry]) -> bytes:
    """A digest of each exception's stack trace, type, and message when grouping reads it: events
    with equal digests have equal frames and equal computed fingerprints."""
    stacks = [[entry.type, _grouping_message(entry), entry.stacktrace] for entry in exceptions]
    try:
        # MessagePack rather than JSON: quicker to write, and shorter to hash.
        encoded = _stack_encoder.encode(stacks)
    except OverflowError:
        # An integer beyond 64 bits, which JSON can carry and MessagePack cannot. A JSON text
        # starts with "[", never with a MessagePack array's first byte: the two never meet.
        encoded = msgspec.json.encode(stacks)
    # SHA-256 rather than BLAKE2: the CPU computes it in hardware, twice as fast here.
    return hashlib.sha256(encoded).digest()[:STACK_DIGEST_BYTES]


def fingerprint_event(exceptions: Sequence[ExceptionEntry], manual: str | None) -> str:
    """The client's fingerprint when it sent one, else the one computed from the exceptions."""
    if manual:
        return manual_fingerprint(manual)
    return computed_fingerprint(exceptions)


def manual_fingerprint(value: str) -> str:
    """A manual fingerprint as stored: kept verbatim up to 64 chars, else its SHA-256 hex digest."""
    if len(value) <= FINGERPRINT_MAX_LENGTH:
        return value
    return hashlib.sha256(value.encode()).hexdigest()


def computed_fingerprint(exceptions: Sequence[ExceptionEntry]) -> str:
    # Hashing JSON of nested lists keeps field boundaries unambiguous ("ab"+"c" != "a"+"bc").
    identity = [_GROUPING_VERSION, [_exception_identity(entry) for entry in exceptions]]
    return hashlib.sha256(msgspec.json.encode(identity)).hexdigest()


def grouping_frames(frames: Sequence[Frame]) -> list[Frame]:
    """The frames that identify an exception: its in-app frames, among the resolved ones if any
    frame is resolved; the first of those candidates when none of them is in-app."""
    candidates = [frame for frame in frames if frame.resolved] or list(frames)
    in_app = [frame for frame in candidates if frame.in_app]
    return in_app or candidates[:1]


def frame_identity(frame: Frame) -> list[Any]:
    """A frame as grouping sees it: where (source or module) and which function, or where in the
    source (line and column) when the function is unknown."""
    source = frame.filename or frame.abs_path or frame.module
    if frame.function:
        return [source, frame.function]
    return [source, None, frame.lineno, frame.colno]


def _exception_identity(entry: ExceptionEntry) -> list[Any]:
    frames = entry.stacktrace.frames if entry.stacktrace is not None else []
    return [
        entry.type,
        _grouping_message(entry),
        [frame_identity(frame) for frame in grouping_frames(frames)],
    ]


def _grouping_message(entry: ExceptionEntry) -> str | None:
    if entry.value is None or entry.stacktrace is None:
        return entry.value
    # An unresolved (minified) stack says little, so the message has to help tell issues apart.
    return None if any(map(_resolved, entry.stacktrace.frames)) else entry.value
