"""The ``$exception_*`` properties suppression filters can name, derived once per event.

Pure: it reads the validated exception list and never looks at or changes the raw properties.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from schemas.events import ExceptionEntry


def derive_properties(
    exceptions: list[ExceptionEntry], fingerprint: str, release: str | None
) -> dict[str, Any]:
    """The seven derived keys, to be laid over the event's properties (derived keys win).

    Lists hold distinct values in order of first appearance. A frame's source is its filename,
    else its abs_path, else its module. ``$exception_handled`` holds only the ``handled`` flags
    that were sent: an absent flag is unknown, so it matches neither ``true`` nor ``false``.
    """
    frames = [
        frame
        for entry in exceptions
        if entry.stacktrace is not None
        for frame in entry.stacktrace.frames
    ]
    return {
        "$exception_types": _distinct(entry.type for entry in exceptions),
        "$exception_values": _distinct(entry.value for entry in exceptions),
        "$exception_sources": _distinct(
            frame.filename or frame.abs_path or frame.module for frame in frames
        ),
        "$exception_functions": _distinct(frame.function for frame in frames),
        "$exception_handled": _distinct(
            entry.mechanism.handled for entry in exceptions if entry.mechanism is not None
        ),
        "$exception_fingerprint": fingerprint,
        "$exception_releases": [release] if release else [],
    }


def _distinct(values: Iterable[Any]) -> list[Any]:
    return [value for value in dict.fromkeys(values) if value is not None]
