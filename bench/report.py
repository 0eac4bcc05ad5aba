"""BENCHMARKS.md: the machine, the versions, the command, and a table of every figure of a run,
with the method behind each and the issue's targets beside the figures reached.

Formatting only: it measures nothing and never rounds a figure into a verdict it does not show.
"""

from __future__ import annotations

import pathlib
import re
from collections.abc import Callable

from bench.generator import PROJECT_COUNT
from bench.profile import ProfileSummary
from bench.results import (
    BenchReport,
    DetectionLatency,
    MemoryGrowth,
    PartFailure,
    SteadyStateCost,
    Throughput,
    WorkerThroughput,
)

SECTIONS = (
    "Machine",
    "Versions",
    "Command",
    "Stream",
    "Throughput",
    "Detection latency",
    "Cost per event",
    "Memory under growth",
    "Targets",
)
TARGET_RATIO_TO_CEILING_B = 0.5
TARGET_P99_SECONDS = 1.0
TARGET_REDIS_ROUND_TRIPS_PER_BATCH = PROJECT_COUNT + 2
TARGET_PEAK_RSS_BYTES = 300 * 1024 * 1024
MIB = 1024 * 1024


# A section written by hand at the end of the report (what the figures mean, what bounds them):
# kept as it is when the report is written again over the same file.
NOTES_HEADING = "## Notes"


def write_report(report: BenchReport, path: pathlib.Path) -> None:
    path.write_text(render_report(report) + kept_notes(path))


def kept_notes(path: pathlib.Path) -> str:
    """The hand-written notes section of the report at ``path``, if any, from its heading on."""
    if not path.exists():
        return ""
    notes = re.search(f"^{re.escape(NOTES_HEADING)}$", path.read_text(), re.MULTILINE)
    return "\n" + notes.string[notes.start() :] if notes else ""


def render_report(report: BenchReport) -> str:
    lines = [
        "# spikewatch benchmarks",
        "",
        f"Measured {report.started_at}"
        + (
            " — a `--quick` run: it proves the bench works; its figures are not the targets'."
            if report.quick
            else "."
        ),
        "Kafka, Redis and the benchmark share the machine with the worker, as the targets assume.",
        "",
    ]
    for section, body in (
        ("Machine", _key_values(report.machine)),
        ("Versions", _key_values(report.versions)),
        ("Command", ["```", report.command, "```"]),
        ("Stream", _stream(report)),
        ("Throughput", _throughput(report)),
        ("Detection latency", _latency(report.latency, report.latency_within_capacity)),
        ("Cost per event", _cost(report.steady_state)),
        ("Memory under growth", _memory(report.memory)),
        ("Targets", _targets(report)),
        *([("Profile", _profile(report.profile))] if report.profile is not None else []),
    ):
        lines += [f"## {section}", "", *body, ""]
    failures = _failures(report)
    if failures:
        lines += ["## Failures", "", *failures, ""]
    return "\n".join(lines)


def spikewatch_to_ceiling_b(report: BenchReport) -> float | None:
    return _rate_ratio(report.spikewatch, report.ceiling_b)


def _rate_ratio(
    worker: WorkerThroughput | PartFailure, reference: Throughput | PartFailure
) -> float | None:
    if isinstance(worker, PartFailure) or isinstance(reference, PartFailure):
        return None
    worker_rate = worker.throughput.events_per_second
    reference_rate = reference.events_per_second
    if worker_rate is None or not reference_rate:
        return None
    return worker_rate / reference_rate


def _stream(report: BenchReport) -> list[str]:
    stream = report.stream
    partitions = ", ".join(f"{p}: {n}" for p, n in sorted(stream.events_per_partition.items()))
    return [
        "| | |",
        "|---|---|",
        f"| seed | {stream.seed} |",
        f"| projects | {stream.projects} |",
        f"| issues in the catalog | {stream.catalog_issues} |",
        f"| issues seen in the stream | {stream.issues_used} |",
        f"| events loaded | {stream.events_loaded} |",
        f"| events per partition | {partitions} |",
        f"| events of the busiest project | {stream.events_of_busiest_project} |",
        f"| mean event size | {stream.mean_event_bytes:,.0f} bytes |",
        f"| suppression rules | {stream.suppression_rules} |",
        f"| projects with rate limits | {stream.rate_limited_projects} |",
        f"| load time | {stream.load_seconds:.1f} s |",
        "",
        "Issues follow a Zipf-like popularity (weight 1/rank^1.1); each has 1-3 exceptions of 5-30 "
        "frames drawn from its project's code locations. Key = project id; no compression.",
    ]


def _throughput(report: BenchReport) -> list[str]:
    lines = [
        "| run | events consumed | events timed | events/s | CPU s per 100k events | peak RSS "
        "| Redis CPU s per 100k events | Kafka CPU s per 100k events |",
        "|---|---|---|---|---|---|---|---|",
        _throughput_row("ceiling A", report.ceiling_a),
        _throughput_row("ceiling B", report.ceiling_b),
        _throughput_row("Faust relay", report.faust_relay),
        _throughput_row(
            "spikewatch",
            report.spikewatch.throughput
            if isinstance(report.spikewatch, WorkerThroughput)
            else report.spikewatch,
        ),
        *(
            _throughput_row(f"spikewatch, {processes} processes, one group", part)
            for processes, part in sorted(report.shared_groups.items())
        ),
        "",
    ]
    ratio = spikewatch_to_ceiling_b(report)
    lines.append(f"spikewatch / ceiling B: {_figure(ratio, '.2f')}")
    to_faust = _rate_ratio(report.spikewatch, report.faust_relay)
    lines.append(f"spikewatch / Faust relay: {_figure(to_faust, '.2f')}")
    lines.append(
        f"ceiling B's output topic holds {report.relay_topic_events} events; the Faust relay's "
        f"holds {report.faust_relay_topic_events}."
    )
    if isinstance(report.spikewatch, WorkerThroughput):
        outcomes = report.spikewatch.outcomes
        listed = ", ".join(f"{name} {count}" for name, count in sorted(outcomes.items()))
        lines.append(f"spikewatch outcomes: {listed} (sum {sum(outcomes.values())}).")
        lines.append(
            f"SQL statements of the worker over this run, caches cold: "
            f"{report.spikewatch.db_statements}."
        )
    lines.append(f"Spikes published on the spike topic during the run: {report.spikes_published}.")
    lines += [
        "",
        "Each run starts at the topic's first offset with a consumer group of its own, in a "
        "process of its own. The clock and the CPU meter (utime+stime of /proc/<pid>/stat) start "
        "once the first batch is done, so start-up and group join are left out, and stop when the "
        "last event is done; peak RSS is VmHWM. Ceiling A: aiokafka `getmany` (1,000 records) and "
        "a typed msgspec decode of each event. Ceiling B: A, plus re-encoding each event, "
        "producing it to another topic, awaiting every delivery and committing offsets, per batch. "
        "Faust relay: B's work as a Faust agent on the worker's Faust settings "
        "(`bench.faust_relay`: uvloop, `noack_take` batches of 1,000, acks after delivery): the "
        "most a worker on this stack can do before doing anything of its own. "
        "spikewatch: the real worker (`faust -A worker.app worker`, started through "
        "`bench.worker_probe`, see Cost per event), timed by polling its /metrics every 0.2 s. "
        "spikewatch, 2 and 3 processes: so many such workers in one new consumer group over the "
        "input topic (6 partitions, so each gets an equal share) from its first offset until "
        "together they consumed as many events as were loaded, with a fresh database and the "
        "projects' Redis keys forgotten, timed from the first event any of them finished to that "
        "count; CPU and peak RSS are the processes' sums. They share this machine's two cores "
        "with Kafka, Redis and each other, so the rows show how far more processes help here, "
        "not how they scale on hosts of their own. Redis and Kafka CPU: what the Redis server "
        "(`INFO cpu`, Lua included) and the local broker's process (found by its listening port) "
        "spent over the same span as the worker rows' CPU, whoever asked for it.",
    ]
    return lines


def _throughput_row(name: str, result: Throughput | PartFailure) -> str:
    if isinstance(result, PartFailure):
        return f"| {name} | not measured: {_cell(result.reason)} | | | | | | |"
    return (
        f"| {name} | {result.events_total} | {result.events_measured} "
        f"| {_figure(result.events_per_second, ',.0f')} "
        f"| {_figure(result.cpu_seconds_per_100k_events, '.1f')} "
        f"| {result.peak_rss_bytes / MIB:.0f} MiB "
        f"| {_server_figure(result.redis_cpu_seconds_per_100k_events)} "
        f"| {_server_figure(result.kafka_cpu_seconds_per_100k_events)} |"
    )


def _server_figure(value: float | None) -> str:
    # Only the worker rows measure the servers; the ceilings leave them out.
    return "-" if value is None else f"{value:.1f}"


def _latency(
    at_target: DetectionLatency | PartFailure | None,
    within_capacity: DetectionLatency | PartFailure | None,
) -> list[str]:
    if at_target is None:
        return ["Skipped (`--skip-latency`)."]
    columns = [("at the target's rate", at_target)]
    if within_capacity is not None:
        columns.insert(0, ("within the worker's capacity", within_capacity))
    rows: list[tuple[str, Callable[[DetectionLatency], str]]] = [
        ("background rate asked", lambda m: f"{m.requested_events_per_second:,.0f} events/s"),
        ("background rate reached", lambda m: f"{m.background_events_per_second:,.0f} events/s"),
        ("background events sent", lambda m: f"{m.background_events}"),
        ("bursts injected", lambda m: f"{m.bursts}"),
        ("spikes matched to a burst", lambda m: f"{len(m.latencies_seconds)}"),
        ("bursts without a spike", lambda m: f"{m.bursts_without_spike}"),
        ("spike threshold of the burst projects", lambda m: f"{m.threshold}"),
        ("latency p50", lambda m: _seconds(m.p50_seconds)),
        ("latency p99", lambda m: _seconds(m.p99_seconds)),
        ("latency max", lambda m: _seconds(max(m.latencies_seconds, default=None))),
        ("other spikes meanwhile", lambda m: f"{m.other_spikes}"),
    ]
    lines = [
        "| | " + " | ".join(name for name, _ in columns) + " |",
        "|---|" + "---|" * len(columns),
    ]
    for label, show in rows:
        cells = [
            show(part) if isinstance(part, DetectionLatency) else "not measured"
            for _, part in columns
        ]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    for name, part in columns:
        if isinstance(part, PartFailure):
            lines += ["", f"Not measured {name}: {_cell(part.reason)}"]
    return [
        *lines,
        "",
        "The worker runs live while a steady background stream is produced; each burst is a new "
        "issue (its own `$exception_fingerprint`) in a project of its own, with no history and a "
        "low threshold. Latency = the spike record's append time on the spike topic (the topic "
        "uses LogAppendTime) minus the wall-clock time just before the threshold-crossing event "
        "was produced; the spike maps back to its burst through its issue's fingerprint in the "
        "database. The part within the worker's capacity runs first, at half the throughput "
        "measured above, so that the worker starts it caught up; the part at the target's rate "
        "follows, with burst projects of its own.",
    ]


def _cost(cost: SteadyStateCost | PartFailure) -> list[str]:
    if isinstance(cost, PartFailure):
        return [f"Not measured: {cost.reason}"]
    commands = ", ".join(f"{name} {n}" for name, n in sorted(cost.worker_redis_commands.items()))
    server_calls = ", ".join(
        f"{name} {n}" for name, n in sorted(cost.server_calls_by_command.items())
    )
    rows = ", ".join(f"{name} {n}" for name, n in sorted(cost.db_rows_written.items()))
    statements = ", ".join(f"{kind} {n}" for kind, n in sorted(cost.db_statements_by_kind.items()))
    return [
        "| | |",
        "|---|---|",
        f"| events in the steady-state pass | {cost.events} |",
        f"| batches | {cost.batches} |",
        f"| Redis round trips per batch | {cost.redis_round_trips_per_batch:.2f} "
        f"({cost.redis_round_trips} over the pass) |",
        f"| Redis commands sent by the worker per batch | {cost.redis_commands_per_batch:.2f} |",
        f"| of which, over the pass | {commands or 'none'} |",
        f"| Redis commands per batch, whole server | {cost.server_commands_per_batch:.2f} |",
        f"| of which, over the pass (INFO commandstats) | {server_calls or 'none'} |",
        f"| database rows written per event | {cost.db_rows_written_per_event:.4f} ({rows}) |",
        f"| database statements per event | {cost.db_statements_per_event:.4f} "
        f"({cost.db_statements} over the pass: {statements or 'none'}) |",
        f"| of which for the {cost.spikes_published} spikes published | "
        f"{cost.db_statements_for_spikes} |",
        f"| of which reloading project configurations | {cost.db_statements_for_configs} |",
        f"| database statements per event, spikes and config reloads set apart | "
        f"{cost.db_statements_for_events_per_event:.4f} ({cost.db_statements_for_events}) |",
        "",
        "A second pass of events of issues the worker has already seen goes through the warm "
        "worker. Redis round trips: the worker runs under `bench.worker_probe`, which starts "
        "Faust unchanged and counts every write of a command or of a whole pipeline by the "
        "process's Redis connections (each then awaits its replies). Redis commands: `MONITOR` "
        "during the pass, counting the commands sent from the worker's own connections (their "
        "ports found through /proc/<pid>/fd and /proc/<pid>/net/tcp) and not the commands its "
        "Lua scripts run; a pipeline counts each of its commands. The whole-server figure is the "
        "`INFO stats` total_commands_processed delta, broken down by the `INFO commandstats` "
        "calls deltas (Lua-internal commands and every client included). "
        "Batches: the worker's `spikewatch_batch_size_events_count`. Database statements: the "
        "probe counts every SQL statement of the process (SQLAlchemy `before_cursor_execute`) by "
        "verb and table; a published spike reads its issue's name and stores its row (the issue "
        "allows spikes to write), and each project's configuration is read again every 30 s "
        "whatever the traffic; rows written: the growth of the tables only the worker writes.",
    ]


def _memory(memory: MemoryGrowth | PartFailure | None) -> list[str]:
    if memory is None:
        return ["Skipped (`--skip-memory`)."]
    if isinstance(memory, PartFailure):
        return [f"Not measured: {memory.reason}"]
    lines = ["| events consumed | RSS |", "|---|---|"]
    lines += [f"| {s.events} | {s.rss_bytes / MIB:.0f} MiB |" for s in memory.samples]
    lines += [
        "",
        f"{memory.fingerprints} distinct fingerprints in {memory.seconds:.0f} s; "
        f"peak RSS (VmHWM) {memory.peak_rss_bytes / MIB:.0f} MiB.",
        "",
        "A fresh worker consumes small events, each with a manual fingerprint no other event has; "
        "its VmRSS is read each time another twentieth of the stream has been consumed.",
    ]
    return lines


def _targets(report: BenchReport) -> list[str]:
    ratio = spikewatch_to_ceiling_b(report)
    latency = report.latency if isinstance(report.latency, DetectionLatency) else None
    p99 = latency.p99_seconds if latency and not latency.bursts_without_spike else None
    cost = report.steady_state if isinstance(report.steady_state, SteadyStateCost) else None
    memory = report.memory if isinstance(report.memory, MemoryGrowth) else None
    statements = cost.db_statements_for_events_per_event if cost else None
    rows = [
        (
            "throughput >= 0.5 x ceiling B",
            _figure(ratio, ".2f"),
            _met(ratio, lambda r: r >= TARGET_RATIO_TO_CEILING_B),
        ),
        (
            "detection latency p99 <= 1 s",
            _seconds(p99),
            _met(p99, lambda s: s <= TARGET_P99_SECONDS),
        ),
        (
            f"Redis round trips per batch <= projects + 2 ({TARGET_REDIS_ROUND_TRIPS_PER_BATCH} "
            "here)",
            _figure(cost.redis_round_trips_per_batch if cost else None, ".2f"),
            _met(
                cost.redis_round_trips_per_batch if cost else None,
                lambda n: n <= TARGET_REDIS_ROUND_TRIPS_PER_BATCH,
            ),
        ),
        (
            "database statements per event in steady state = 0 (spikes and config reloads apart)",
            _figure(statements, ".3f"),
            _met(statements, lambda n: n == 0),
        ),
        (
            "peak RSS <= 300 MB after 1,000,000 fingerprints",
            f"{memory.peak_rss_bytes / MIB:.0f} MiB after {memory.fingerprints}"
            if memory
            else "not measured",
            _met(
                memory.peak_rss_bytes if memory and memory.fingerprints >= 1_000_000 else None,
                lambda b: b <= TARGET_PEAK_RSS_BYTES,
            ),
        ),
    ]
    lines = ["| target | reached | met |", "|---|---|---|"]
    lines += [f"| {target} | {reached} | {met} |" for target, reached, met in rows]
    lines += [
        "",
        '"not measured" means the figure is missing (see above for why); the memory target is '
        "only judged on a run of 1,000,000 fingerprints, the latency target only when every burst "
        "produced its spike. Redis round trips are counted inside the worker process (a "
        "pipeline is one); the commands it sent are listed under Cost per event.",
    ]
    return lines


def _failures(report: BenchReport) -> list[str]:
    lines = []
    for name, part in (
        ("ceiling A", report.ceiling_a),
        ("ceiling B", report.ceiling_b),
        ("Faust relay", report.faust_relay),
        ("spikewatch", report.spikewatch),
        *(
            (f"spikewatch, {processes} processes", part)
            for processes, part in sorted(report.shared_groups.items())
        ),
        ("cost per event", report.steady_state),
        ("detection latency", report.latency),
        ("detection latency within capacity", report.latency_within_capacity),
        ("memory under growth", report.memory),
        ("profile", report.profile),
    ):
        if isinstance(part, PartFailure):
            lines += [f"### {name}", "", part.reason, ""]
            if part.log_tail:
                lines += ["Last lines of the worker's log:", "", "```", part.log_tail, "```", ""]
    return lines


def _profile(profile: ProfileSummary | PartFailure) -> list[str]:
    if isinstance(profile, PartFailure):
        return ["Not measured (see Failures)."]
    lines = [
        f"py-spy sampled the worker at {profile.samples_per_second} Hz during the throughput part: "
        f"{profile.samples} samples with the worker on the CPU (idle waits are not sampled).",
        "",
        "| where the CPU went | share |",
        "|---|---|",
        *(f"| {_cell(name)} | {share:.1%} |" for name, share in profile.by_component),
        "",
        "| innermost frame | share |",
        "|---|---|",
        *(f"| `{_cell(frame)}` | {share:.1%} |" for frame, share in profile.top_frames),
        "",
        "A sample counts for the innermost spikewatch stage on its stack (a module of `worker/`; "
        "what a stage calls, msgspec or redis-py, counts as that stage), or else for the package "
        "of its innermost frame: Faust and mode (the runtime and its producer), aiokafka "
        "(fetching, committing, producing), the event loop. `worker.app` and `worker.consumer`, "
        "the loop every batch passes through, are not a stage.",
    ]
    return lines


def _key_values(values: dict[str, str]) -> list[str]:
    return ["| | |", "|---|---|", *(f"| {key} | {_cell(value)} |" for key, value in values.items())]


def _met(value: float | None, check: Callable[[float], bool]) -> str:
    if value is None:
        return "not measured"
    return "yes" if check(value) else "no"


def _figure(value: float | None, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def _seconds(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 1000:.0f} ms"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
