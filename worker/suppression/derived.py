"""The ``$exception_*`` properties suppression filters can name, derived from an event on demand.

Pure: it reads the validated exception list and never looks at or changes the raw properties.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from schemas.events import ExceptionEntry, Frame

_Derivation = Callable[[list[ExceptionEntry], str, str | None], Any]


def derive_properties(
    exceptions: list[ExceptionEntry], fingerprint: str, release: str | None
) -> dict[str, Any]:
    """The seven derived keys, to be laid over the event's properties (derived keys win).

    Lists hold distinct values in order of first appearance. A frame's source is its filename,
    else its abs_path, else its module. ``$exception_handled`` holds only the ``handled`` flags
    that were sent: an absent flag is unknown, so it matches neither ``true`` nor ``false``.
    """
    return {key: derive(exceptions, fingerprint, release) for key, derive in _DERIVATIONS.items()}


class EventProperties(Mapping[str, Any]):
    """An event's properties with the derived keys laid over them, as ``derive_properties`` gives
    them; each derived key is computed when first read, since a rule reads one or two of them."""

    __slots__ = ("_derived", "_exceptions", "_fingerprint", "_properties", "_release")

    def __init__(
        self,
        properties: Mapping[str, Any],
        exceptions: list[ExceptionEntry],
        fingerprint: str,
        release: str | None,
    ) -> None:
        self._properties = properties
        self._exceptions = exceptions
        self._fingerprint = fingerprint
        self._release = release
        self._derived: dict[str, Any] = {}

    def __getitem__(self, key: str) -> Any:
        derive = _DERIVATIONS.get(key)
        if derive is None:
            return self._properties[key]
        if key not in self._derived:
            self._derived[key] = derive(self._exceptions, self._fingerprint, self._release)
        return self._derived[key]

    def __iter__(self) -> Iterator[str]:
        return iter({**dict.fromkeys(self._properties), **dict.fromkeys(_DERIVATIONS)})

    def __len__(self) -> int:
        return len(self._properties.keys() | _DERIVATIONS.keys())


def _types(exceptions: list[ExceptionEntry], _fingerprint: str, _release: str | None) -> list[Any]:
    return _distinct(entry.type for entry in exceptions)


def _values(exceptions: list[ExceptionEntry], _fingerprint: str, _release: str | None) -> list[Any]:
    return _distinct(entry.value for entry in exceptions)


def _sources(
    exceptions: list[ExceptionEntry], _fingerprint: str, _release: str | None
) -> list[Any]:
    return _distinct(
        frame.filename or frame.abs_path or frame.module for frame in _frames(exceptions)
    )


def _functions(
    exceptions: list[ExceptionEntry], _fingerprint: str, _release: str | None
) -> list[Any]:
    return _distinct(frame.function for frame in _frames(exceptions))


def _handled(
    exceptions: list[ExceptionEntry], _fingerprint: str, _release: str | None
) -> list[Any]:
    return _distinct(entry.mechanism.handled for entry in exceptions if entry.mechanism is not None)


def _fingerprint_of(
    _exceptions: list[ExceptionEntry], fingerprint: str, _release: str | None
) -> str:
    return fingerprint


def _releases(
    _exceptions: list[ExceptionEntry], _fingerprint: str, release: str | None
) -> list[str]:
    return [release] if release else []


_DERIVATIONS: dict[str, _Derivation] = {
    "$exception_types": _types,
    "$exception_values": _values,
    "$exception_sources": _sources,
    "$exception_functions": _functions,
    "$exception_handled": _handled,
    "$exception_fingerprint": _fingerprint_of,
    "$exception_releases": _releases,
}


def _frames(exceptions: list[ExceptionEntry]) -> Iterator[Frame]:
    for entry in exceptions:
        if entry.stacktrace is not None:
            yield from entry.stacktrace.frames


def _distinct(values: Iterable[Any]) -> list[Any]:
    return [value for value in dict.fromkeys(values) if value is not None]
