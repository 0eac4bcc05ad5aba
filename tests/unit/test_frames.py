"""Stack frame identity: a frame's raw_id is its own when sent, else a stable hash of where it
points, so every worker and every replay stores a frame under the same id."""

from __future__ import annotations

import re

import pytest

from schemas.events import Frame
from worker.frames import frame_contents, frame_raw_id

HEX_64 = re.compile(r"^[0-9a-f]{64}$")


def located_frame(**changes: object) -> Frame:
    fields: dict[str, object] = {
        "platform": "python",
        "filename": "app/views.py",
        "abs_path": "/srv/app/views.py",
        "module": "app.views",
        "function": "index",
        "lineno": 10,
        "colno": 4,
    }
    return Frame(**{**fields, **changes})


def test_a_frame_keeps_the_raw_id_it_was_sent_with() -> None:
    assert frame_raw_id(located_frame(raw_id="abc123/0")) == "abc123/0"


def test_raw_id_of_the_same_location_is_the_same_across_events() -> None:
    first, second = located_frame(), located_frame()

    assert frame_raw_id(first) == frame_raw_id(second)
    assert HEX_64.match(frame_raw_id(first))


@pytest.mark.parametrize(
    "change",
    [
        {"platform": "node"},
        {"filename": "app/models.py"},
        {"abs_path": "/srv/other/views.py"},
        {"module": "app.other"},
        {"function": "detail"},
        {"lineno": 11},
        {"colno": 5},
    ],
    ids=lambda change: next(iter(change)),
)
def test_raw_id_changes_with_every_part_of_the_location(change: dict[str, object]) -> None:
    assert frame_raw_id(located_frame(**change)) != frame_raw_id(located_frame())


def test_raw_id_ignores_what_does_not_locate_the_frame() -> None:
    plain = frame_raw_id(located_frame())

    assert frame_raw_id(located_frame(in_app=True)) == plain
    assert frame_raw_id(located_frame(resolved=False)) == plain
    assert frame_raw_id(located_frame(context={"line": "return x"})) == plain
    assert frame_raw_id(located_frame(symbol_set_ref="bundle.js.map")) == plain


def test_raw_id_of_a_missing_field_differs_from_an_empty_one() -> None:
    assert frame_raw_id(located_frame(function=None)) != frame_raw_id(located_frame(function=""))


def test_stored_contents_are_the_frame_without_its_context_and_with_its_raw_id() -> None:
    frame = located_frame(in_app=True, context={"line": "return x"}, symbol_set_ref="s1")

    assert frame_contents(frame, "rid") == {
        "raw_id": "rid",
        "platform": "python",
        "filename": "app/views.py",
        "abs_path": "/srv/app/views.py",
        "module": "app.views",
        "function": "index",
        "lineno": 10,
        "colno": 4,
        "in_app": True,
        "symbol_set_ref": "s1",
    }
