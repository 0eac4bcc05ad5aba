"""`spikewatch detect` on hand-made traces: the spikes it prints, and a clear error with exit
code 2 for every kind of bad input."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from spikewatch.cli import app


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["detect", *args])
    return result.exit_code, result.stdout, result.stderr


def trace_file(tmp_path: Path, text: str) -> str:
    path = tmp_path / "trace.csv"
    path.write_text(text)
    return str(path)


def rows(values: list[int]) -> str:
    return "timestamp,value\n" + "".join(
        f"{1_767_225_600 + 300 * i},{value}\n" for i, value in enumerate(values)
    )


def test_prints_each_spike_with_its_bucket_start_current_and_baseline(tmp_path: Path) -> None:
    path = trace_file(tmp_path, rows([4, 6, 5, 61, 5]))

    code, out, err = run(path, "--threshold", "50")

    assert (code, err) == (0, "")
    assert out == "2026-01-01T00:15:00+00:00,61,5.0\n"


def test_iso_timestamps_and_gaps_between_buckets_count_as_empty_buckets(tmp_path: Path) -> None:
    text = (
        "timestamp,value\n2026-01-01T00:00:00Z,4\n2026-01-01T00:10:00,8\n2026-01-01T00:15:00Z,61\n"
    )

    code, out, _ = run(trace_file(tmp_path, text), "--threshold", "50")

    # Baseline: the mean of the non-empty buckets 4 and 8; the empty 00:05 bucket is ignored.
    assert (code, out) == (0, "2026-01-01T00:15:00+00:00,61,6.0\n")


def test_a_snoozed_issue_spikes_again_only_once_the_snooze_is_over(tmp_path: Path) -> None:
    path = trace_file(tmp_path, rows([1] * 11 + [20, 400, 30000]))

    def spikes(snooze_minutes: int) -> list[str]:
        code, out, _ = run(path, "--threshold", "15", "--snooze", str(snooze_minutes))
        assert code == 0
        return out.splitlines()

    first = "2026-01-01T00:55:00+00:00,20,1.0"
    assert spikes(15) == [first]
    assert spikes(10) == [first, "2026-01-01T01:05:00+00:00,30000,39.0"]
    assert spikes(5) == [
        first,
        "2026-01-01T01:00:00+00:00,400,2.7273",
        "2026-01-01T01:05:00+00:00,30000,39.0",
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "header 'timestamp,value'"),
        ("time,count\n0,1\n", "header 'timestamp,value'"),
        ("timestamp,value\n0,1\n300,x\n", ":3: bad value 'x'"),
        ("timestamp,value\n0,-1\n", ":2: bad value '-1'"),
        ("timestamp,value\n0,1.5\n", ":2: bad value '1.5'"),
        ("timestamp,value\nyesterday,1\n", ":2: bad timestamp 'yesterday'"),
        ("timestamp,value\n0,1,2\n", ":2: expected 2 fields"),
        ("timestamp,value\n600,1\n300,1\n", ":3: timestamp '300' comes before"),
        ("timestamp,value\n300,1\n300,2\n", ":3: timestamp '300' is a duplicate"),
        ("timestamp,value\n300,1\n420,2\n", ":3: timestamp '420' is a duplicate"),
    ],
)
def test_bad_input_is_a_clear_error_and_exit_code_2(
    tmp_path: Path, text: str, message: str
) -> None:
    code, out, err = run(trace_file(tmp_path, text))

    assert (code, out) == (2, "")
    assert message in err


def test_a_missing_file_is_exit_code_2(tmp_path: Path) -> None:
    code, _, err = run(str(tmp_path / "missing.csv"))

    assert code == 2
    assert "missing.csv: cannot read" in err


def test_an_unknown_detector_is_exit_code_2(tmp_path: Path) -> None:
    code, _, err = run(trace_file(tmp_path, rows([1])), "--detector", "median")

    assert code == 2
    assert "--detector must be one of mean, adaptive" in err
