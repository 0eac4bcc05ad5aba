"""The profile summary (pure: py-spy's folded stacks in, shares out) and the hand-written notes
that survive writing the report again."""

from __future__ import annotations

import pathlib

from bench.profile import EVENT_LOOP_IN_C, OTHER, summarise
from bench.report import NOTES_HEADING, kept_notes

AGENT = "process (worker/app.py:120);handle (worker/runtime.py:60)"
FAUST = "__anext__ (faust/streams.py:1180);on_message (faust/transport/conductor.py:307)"


def test_a_sample_counts_for_the_innermost_worker_stage_even_inside_a_library() -> None:
    folded = [
        f"MainThread;{AGENT};decode_batch (worker/decode.py:80);decode (msgspec/json.py:1) 6",
        f"MainThread;{AGENT} 1",  # the runtime itself is a module of worker/: a stage
        f"MainThread;{FAUST} 2",
        "MainThread;run (asyncio/base_events.py:600);_run (asyncio/events.py:80) 1",
    ]

    summary = summarise(folded, 100)

    assert summary.samples == 10
    assert summary.by_component == [
        ("spikewatch: worker.decode", 0.6),
        ("Faust and mode", 0.2),
        ("spikewatch: worker.runtime", 0.1),
        ("event loop (asyncio, uvloop)", 0.1),
    ]
    assert summary.top_frames[0] == ("decode (msgspec/json.py)", 0.6)


def test_the_consumer_loop_alone_is_not_a_stage_and_unknown_packages_are_other() -> None:
    folded = [
        "MainThread;process (worker/app.py:120);emit (logging/__init__.py:1000) 3",
        "MainThread;fetch (aiokafka/consumer/fetcher.py:216) 1",
        "not a stack line",
    ]

    summary = summarise(folded, 100)

    assert summary.by_component == [(OTHER, 0.75), ("aiokafka", 0.25)]


def test_the_loop_in_c_sqlite_and_the_consumer_loop_itself_have_their_own_lines() -> None:
    folded = [
        "MainThread;Worker.execute_from_commandline (mode/worker.py:264) 6",
        "Thread-1;_connection_worker_thread (aiosqlite/core.py:63) 3",
        "MainThread;process (worker/app.py:120) 1",
    ]

    summary = summarise(folded, 100)

    assert summary.by_component == [
        (EVENT_LOOP_IN_C, 0.6),
        ("SQLite (aiosqlite's thread)", 0.3),
        ("spikewatch: worker.app (the consumer loop itself)", 0.1),
    ]


def test_no_samples_is_an_empty_summary() -> None:
    assert summarise([], 100).samples == 0


def test_notes_written_by_hand_survive_writing_the_report_again(tmp_path: pathlib.Path) -> None:
    report_path = tmp_path / "BENCHMARKS.md"
    notes = f"{NOTES_HEADING}\n\nWhat bounds the throughput: Faust.\n"
    report_path.write_text(f"# spikewatch benchmarks\n\nold figures\n\n{notes}")

    assert kept_notes(report_path) == "\n" + notes
    assert kept_notes(tmp_path / "missing.md") == ""
