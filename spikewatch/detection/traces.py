"""A trace: one issue's event count per bucket, read from a CSV of ``timestamp,value`` rows.

Owns the file format and its validation; it knows nothing of spikes. A row's timestamp (ISO 8601,
UTC when it names no zone, or epoch seconds) names its bucket; buckets without a row count zero.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

HEADER = ["timestamp", "value"]


class TraceError(ValueError):
    """The trace cannot be read; the message says where and why."""


@dataclass(frozen=True, slots=True)
class Trace:
    bucket_seconds: int
    first_bucket: int  # index of the first bucket (its start / bucket_seconds)
    values: list[int]  # one count per bucket from the first on, gaps filled with zeros

    def bucket_start(self, index: int) -> int:
        """Epoch seconds at which bucket ``index`` of the trace starts."""
        return (self.first_bucket + index) * self.bucket_seconds


def parse_timestamp(text: str) -> float:
    """Epoch seconds of an ISO 8601 timestamp or of a number of epoch seconds."""
    try:
        return float(text)
    except ValueError:
        pass
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def read_trace(path: Path, bucket_seconds: int) -> Trace:
    try:
        with path.open(newline="", encoding="utf-8") as file:
            return _parse(csv.reader(file), str(path), bucket_seconds)
    except OSError as exc:
        raise TraceError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise TraceError(f"{path}: not a UTF-8 text file") from None


def _parse(rows: csv.Reader, name: str, bucket_seconds: int) -> Trace:
    header = next(rows, None)
    if header is None or [cell.strip() for cell in header] != HEADER:
        raise TraceError(f"{name}:1: the first line must be the header 'timestamp,value'")
    buckets: list[int] = []
    values: list[int] = []
    for row in rows:
        line = rows.line_num
        if not row or all(not cell.strip() for cell in row):
            continue
        if len(row) != 2:
            raise TraceError(f"{name}:{line}: expected 2 fields (timestamp,value), got {len(row)}")
        stamp, count = (cell.strip() for cell in row)
        try:
            bucket = int(parse_timestamp(stamp) // bucket_seconds)
        except (ValueError, OverflowError):
            raise TraceError(f"{name}:{line}: bad timestamp {stamp!r}") from None
        if not (count.isascii() and count.isdigit()):
            raise TraceError(f"{name}:{line}: bad value {count!r}: not a whole number >= 0")
        if buckets and bucket <= buckets[-1]:
            problem = "is a duplicate of" if bucket == buckets[-1] else "comes before"
            raise TraceError(
                f"{name}:{line}: timestamp {stamp!r} {problem} the bucket of the row before "
                "(rows must be in increasing order, one per bucket)"
            )
        buckets.append(bucket)
        values.append(int(count))
    if not buckets:
        return Trace(bucket_seconds, 0, [])
    dense = [0] * (buckets[-1] - buckets[0] + 1)
    for bucket, value in zip(buckets, values, strict=True):
        dense[bucket - buckets[0]] = value
    return Trace(bucket_seconds, buckets[0], dense)


def write_trace(path: Path, trace: Trace) -> None:
    with path.open("w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(HEADER)
        for index, value in enumerate(trace.values):
            writer.writerow([iso(trace.bucket_start(index)), value])


def iso(epoch_seconds: float) -> str:
    return datetime.fromtimestamp(epoch_seconds, UTC).isoformat()
