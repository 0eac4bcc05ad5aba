"""The benchmark harness itself: its generator (pure, deterministic), its report writer, and one
quick run end to end on the real Kafka, Redis and worker.

Only structure and counts are asserted (what was loaded was consumed, relayed, accounted for);
timings never are, since they depend on the machine.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import re
from datetime import UTC, datetime
from typing import TypeVar

import msgspec
import pytest
import typer
from typer.testing import CliRunner

from bench.generator import (
    EXCEPTIONS_PER_EVENT,
    FRAMES_PER_EXCEPTION,
    ISSUE_COUNT,
    PROJECT_COUNT,
    StreamGenerator,
)
from bench.kafka_io import INPUT_PARTITIONS
from bench.main import QUICK_EVENTS, BenchOptions, rate_within_capacity, run_benchmark
from bench.profile import ProfileSummary
from bench.report import NOTES_HEADING, SECTIONS, render_report, write_report
from bench.results import (
    BenchReport,
    DetectionLatency,
    MemoryGrowth,
    PartFailure,
    SteadyStateCost,
    Throughput,
    WorkerThroughput,
)
from schemas.events import ExceptionEvent, ExceptionProperties
from spikewatch.commands import bench as bench_command

_T = TypeVar("_T")

PROJECTS = list(range(101, 101 + PROJECT_COUNT))
FIXED_NOW = datetime(2026, 11, 26, 6, 0, tzinfo=UTC)


def _generate(seed: int, count: int) -> list[bytes]:
    stream = StreamGenerator(seed, PROJECTS)
    return [event.value for event in stream.events(count, clock=lambda: FIXED_NOW)]


def test_the_same_seed_generates_the_same_stream() -> None:
    assert _generate(3, 300) == _generate(3, 300)
    assert _generate(3, 300) != _generate(4, 300)


def test_generated_events_are_valid_exception_events_keyed_by_project() -> None:
    stream = StreamGenerator(5, PROJECTS)
    for event in stream.events(500):
        decoded = msgspec.json.decode(event.value, type=ExceptionEvent)
        properties = msgspec.convert(decoded.properties, ExceptionProperties)
        assert decoded.project_id == event.project_id
        assert event.key == str(event.project_id).encode()
        assert decoded.project_id in PROJECTS
        assert EXCEPTIONS_PER_EVENT[0] <= len(properties.exception_list) <= EXCEPTIONS_PER_EVENT[1]
        for exception in properties.exception_list:
            assert exception.stacktrace is not None
            frames = len(exception.stacktrace.frames)
            assert FRAMES_PER_EXCEPTION[0] <= frames <= FRAMES_PER_EXCEPTION[1]


def test_the_catalog_spans_every_project_and_both_ends_of_the_size_ranges() -> None:
    catalog = StreamGenerator(5, PROJECTS).catalog
    chain_lengths = {len(issue.exceptions) for issue in catalog}
    frame_counts = [e.frame_count for issue in catalog for e in issue.exceptions]
    assert len(catalog) == ISSUE_COUNT
    assert {issue.project_id for issue in catalog} == set(PROJECTS)
    assert chain_lengths == {1, 2, 3}
    assert (min(frame_counts), max(frame_counts)) == FRAMES_PER_EXCEPTION


def test_issue_popularity_follows_the_zipf_weights() -> None:
    stream = StreamGenerator(11, PROJECTS)
    picks = [event.issue_index for event in stream.events(20_000)]
    top_share = picks.count(0) / len(picks)
    assert top_share == pytest.approx(stream.popularity[0], rel=0.05)
    assert picks.count(0) > picks.count(9) > picks.count(999)


def test_an_issue_pool_restricts_events_to_those_issues() -> None:
    stream = StreamGenerator(2, PROJECTS)
    picked = {event.issue_index for event in stream.events(2_000, issue_pool=[3, 40, 400])}
    assert picked == {3, 40, 400}


def test_the_bench_command_offers_the_documented_options() -> None:
    cli = typer.Typer()
    bench_command.register(cli)
    cli.command("other")(lambda: None)  # a second command, so typer keeps `bench` as a subcommand
    result = CliRunner().invoke(cli, ["bench", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    options = (
        "--quick",
        "--events",
        "--output",
        "--skip-latency",
        "--skip-memory",
        "--profile",
        "--detector",
    )
    for option in options:
        assert option in result.output


@pytest.fixture(scope="module")
async def quick_run(
    kafka_bootstrap: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> tuple[BenchReport, str]:
    workdir = tmp_path_factory.mktemp("bench")
    options = BenchOptions.sized(
        quick=True,
        kafka_bootstrap=kafka_bootstrap,
        redis_url=redis_url,
        command="spikewatch bench --quick --profile (from tests/bench)",
        workdir=workdir,
        profile=True,
    )
    report = await run_benchmark(options)
    output = workdir / "BENCHMARKS.md"
    write_report(report, output)
    return report, output.read_text()


def _measured(part: _T | PartFailure | None) -> _T:
    if isinstance(part, PartFailure):
        pytest.fail(f"not measured: {part.reason}\n{part.log_tail}", pytrace=False)
    assert part is not None
    return part


@pytest.mark.kafka
@pytest.mark.redis
def test_the_report_has_every_section_in_order(quick_run: tuple[BenchReport, str]) -> None:
    _, markdown = quick_run
    headings = re.findall(r"^## (.+)$", markdown, flags=re.MULTILINE)
    assert headings[: len(SECTIONS)] == list(SECTIONS)
    assert headings[len(SECTIONS)] == "Profile"
    assert "```\nspikewatch bench --quick --profile (from tests/bench)\n```" in markdown


@pytest.mark.kafka
@pytest.mark.redis
def test_the_report_names_the_machine_and_the_versions(quick_run: tuple[BenchReport, str]) -> None:
    report, markdown = quick_run
    assert f"| cores | {len(os.sched_getaffinity(0))} |" in markdown
    assert re.fullmatch(r"\d+\.\d+\.\d+", report.versions["kafka"])
    assert re.fullmatch(r"\d+\.\d+\.\d+", report.versions["redis server"])
    assert report.versions["aiokafka"] != "not installed"


@pytest.mark.kafka
@pytest.mark.redis
def test_the_quick_stream_is_loaded_whole_for_twenty_configured_projects(
    quick_run: tuple[BenchReport, str],
) -> None:
    report, markdown = quick_run
    stream = report.stream
    assert stream.events_loaded == QUICK_EVENTS
    assert sorted(stream.events_per_partition) == list(range(INPUT_PARTITIONS))
    assert sum(stream.events_per_partition.values()) == QUICK_EVENTS
    assert stream.projects == PROJECT_COUNT
    assert (stream.suppression_rules, stream.rate_limited_projects) == (7, 4)
    assert f"| events loaded | {QUICK_EVENTS} |" in markdown


@pytest.mark.kafka
@pytest.mark.redis
def test_ceiling_a_decodes_exactly_the_loaded_events(quick_run: tuple[BenchReport, str]) -> None:
    report, markdown = quick_run
    ceiling_a: Throughput = _measured(report.ceiling_a)
    assert ceiling_a.events_total == QUICK_EVENTS
    assert 0 < ceiling_a.events_measured < QUICK_EVENTS
    assert ceiling_a.peak_rss_bytes > 0
    assert f"| ceiling A | {QUICK_EVENTS} | {ceiling_a.events_measured} |" in markdown


@pytest.mark.kafka
@pytest.mark.redis
def test_ceiling_b_relays_every_loaded_event(quick_run: tuple[BenchReport, str]) -> None:
    report, markdown = quick_run
    ceiling_b: Throughput = _measured(report.ceiling_b)
    assert ceiling_b.events_total == QUICK_EVENTS
    assert ceiling_b.events_relayed == QUICK_EVENTS
    assert report.relay_topic_events == QUICK_EVENTS
    assert f"| ceiling B | {QUICK_EVENTS} | {ceiling_b.events_measured} |" in markdown


@pytest.mark.kafka
@pytest.mark.redis
def test_the_faust_relay_relays_every_loaded_event(quick_run: tuple[BenchReport, str]) -> None:
    report, markdown = quick_run
    relay: Throughput = _measured(report.faust_relay)
    assert relay.events_total == relay.events_relayed == QUICK_EVENTS
    assert report.faust_relay_topic_events == QUICK_EVENTS
    assert f"| Faust relay | {QUICK_EVENTS} | {relay.events_measured} |" in markdown


@pytest.mark.kafka
@pytest.mark.redis
def test_the_worker_consumes_the_loaded_stream_and_its_outcomes_add_up(
    quick_run: tuple[BenchReport, str],
) -> None:
    report, markdown = quick_run
    worker: WorkerThroughput = _measured(report.spikewatch)
    assert worker.throughput.events_total == QUICK_EVENTS
    assert sum(worker.outcomes.values()) == QUICK_EVENTS
    # New issues were created, so the probe inside the worker must have counted statements.
    assert worker.db_statements > 0
    # The local Redis server and broker did work for it, and were found and read.
    assert (worker.throughput.redis_cpu_seconds or 0) > 0
    assert (worker.throughput.kafka_cpu_seconds or 0) > 0
    assert f"| spikewatch | {QUICK_EVENTS} | {worker.throughput.events_measured} |" in markdown


@pytest.mark.kafka
@pytest.mark.redis
def test_two_and_three_workers_sharing_a_group_get_through_the_loaded_stream_between_them(
    quick_run: tuple[BenchReport, str],
) -> None:
    report, markdown = quick_run
    assert sorted(report.shared_groups) == [2, 3]
    for processes, part in report.shared_groups.items():
        shared: Throughput = _measured(part)
        # As many as were loaded; a little more when several finished a batch at the last poll.
        assert shared.events_total >= QUICK_EVENTS
        assert shared.cpu_seconds > 0
        row = f"| spikewatch, {processes} processes, one group | {shared.events_total} |"
        assert row in markdown


@pytest.mark.kafka
@pytest.mark.redis
def test_the_steady_pass_attributes_redis_commands_to_the_worker_and_writes_no_issue(
    quick_run: tuple[BenchReport, str],
) -> None:
    report, _ = quick_run
    cost: SteadyStateCost = _measured(report.steady_state)
    assert cost.events == 2_000
    assert 1 <= cost.batches <= cost.events
    # The worker reads the config versions once per batch (ARCHITECTURE.md, "Configuration"):
    # the version key of each of the batch's projects, in the round trip of its node.
    reads = cost.worker_redis_commands["get"]
    assert cost.batches <= reads <= cost.batches * PROJECT_COUNT
    assert "hgetall" not in cost.worker_redis_commands
    # Only issues the worker has seen are replayed: no issue, fingerprint or frame is new.
    written = cost.db_rows_written
    assert (written["issues"], written["issue_fingerprints"], written["stack_frames"]) == (0, 0, 0)


@pytest.mark.kafka
@pytest.mark.redis
def test_the_warm_worker_makes_few_redis_round_trips_and_no_statement_per_event(
    quick_run: tuple[BenchReport, str],
) -> None:
    report, markdown = quick_run
    cost: SteadyStateCost = _measured(report.steady_state)
    # Each batch reads the config versions, then makes one pipelined call for all its projects;
    # only a spike adds round trips (its snooze locks), never more than one per project.
    assert 2 * cost.batches <= cost.redis_round_trips <= (PROJECT_COUNT + 2) * cost.batches
    # One script call per project and batch: counting and rate limits share it.
    assert cost.worker_redis_commands["evalsha"] <= PROJECT_COUNT * cost.batches
    # Caches answer every event; only spikes and the periodic config reload reach the database.
    assert cost.db_statements_for_events == 0
    assert cost.db_statements == sum(cost.db_statements_by_kind.values())
    assert f"| Redis round trips per batch | {cost.redis_round_trips_per_batch:.2f} " in markdown


@pytest.mark.kafka
@pytest.mark.redis
def test_every_burst_produces_a_spike_after_its_crossing_event(
    quick_run: tuple[BenchReport, str],
) -> None:
    report, _ = quick_run
    latency: DetectionLatency = _measured(report.latency)
    assert latency.bursts == 20
    assert latency.background_events == 8_000
    assert latency.bursts_without_spike == 0
    assert all(seconds > 0 for seconds in latency.latencies_seconds)


@pytest.mark.kafka
@pytest.mark.redis
def test_latency_within_capacity_runs_at_half_the_measured_throughput(
    quick_run: tuple[BenchReport, str],
) -> None:
    report, markdown = quick_run
    within: DetectionLatency = _measured(report.latency_within_capacity)
    spikewatch: WorkerThroughput = _measured(report.spikewatch)
    assert within.requested_events_per_second == rate_within_capacity(spikewatch)
    rate = spikewatch.throughput.events_per_second
    assert rate is not None
    assert 100 <= within.requested_events_per_second <= max(100, rate / 2)
    assert within.bursts_without_spike == 0
    assert "| | within the worker's capacity | at the target's rate |" in markdown


@pytest.mark.kafka
@pytest.mark.redis
def test_the_memory_curve_follows_the_worker_to_the_last_fingerprint(
    quick_run: tuple[BenchReport, str],
) -> None:
    report, markdown = quick_run
    memory: MemoryGrowth = _measured(report.memory)
    events = [sample.events for sample in memory.samples]
    assert memory.fingerprints == 20_000
    assert events == sorted(events)
    assert events[-1] == 20_000
    assert len(events) >= 10
    assert memory.peak_rss_bytes >= max(sample.rss_bytes for sample in memory.samples)
    curve = markdown.split("## Memory under growth")[1].split("## Targets")[0]
    assert len(re.findall(r"^\| \d+ \| \d+ MiB \|$", curve, flags=re.MULTILINE)) == len(events)


@pytest.mark.kafka
@pytest.mark.redis
def test_py_spy_sampled_the_worker_and_most_samples_have_an_owner(
    quick_run: tuple[BenchReport, str],
) -> None:
    report, markdown = quick_run
    profile: ProfileSummary = _measured(report.profile)
    assert profile.samples > 0
    assert sum(share for _, share in profile.by_component) == pytest.approx(1.0)
    components = dict(profile.by_component)
    assert any(name.startswith("spikewatch: worker.") for name in components)
    # Fetching and forwarding are aiokafka's; Faust is off the per-event path and may not show.
    assert "aiokafka" in components
    assert "| where the CPU went | share |" in markdown


@pytest.mark.kafka
@pytest.mark.redis
def test_writing_the_report_again_keeps_the_notes_written_by_hand(
    quick_run: tuple[BenchReport, str], tmp_path: pathlib.Path
) -> None:
    report, _ = quick_run
    output = tmp_path / "BENCHMARKS.md"
    output.write_text(f"# older figures\n\n{NOTES_HEADING}\n\nWhat bounds it.\n")

    write_report(report, output)

    assert output.read_text() == render_report(report) + f"\n{NOTES_HEADING}\n\nWhat bounds it.\n"


@pytest.mark.kafka
@pytest.mark.redis
def test_a_part_that_failed_is_reported_as_not_measured_with_the_worker_log(
    quick_run: tuple[BenchReport, str], tmp_path: pathlib.Path
) -> None:
    report, _ = quick_run
    failed = dataclasses.replace(
        report, spikewatch=PartFailure("WorkerFailed: exited with status 1", "Traceback: boom")
    )
    output = tmp_path / "BENCHMARKS.md"
    write_report(failed, output)
    markdown = output.read_text()
    assert markdown == render_report(failed)
    assert "| spikewatch | not measured: WorkerFailed: exited with status 1 |" in markdown
    assert "| throughput >= 0.5 x ceiling B | n/a | not measured |" in markdown
    assert "## Failures" in markdown
    assert "```\nTraceback: boom\n```" in markdown
