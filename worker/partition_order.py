"""Hands each partition's events to the pipeline in offset order, none missing in between.

The Redis watermarks take an offset as new only if every earlier offset of its partition came
first. Faust can break that at a rebalance: it drops the events queued for a partition it then
keeps, marks them read and hands on the ones fetched after them, so the dropped ones would come
back as replays, never counted nor charged. An event past such a gap is held back (unacked) and
its partition read again from the gap; events of partitions no longer assigned are held back
too (their new owner reads them from the committed offset). It never skips an event for good.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Hashable, MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

E = TypeVar("E")
P = TypeVar("P", bound=Hashable)

# A gap that stays after reading again (a transaction marker takes an offset no event ever has)
# would be sought back to forever: after this many reads from the same offset it is taken as real.
MAX_READS_PER_GAP = 5


@dataclass(frozen=True, slots=True)
class Admission(Generic[E, P]):
    ready: list[E]  # the events to process now, in batch order
    read_again: dict[P, int]  # partition -> the offset to read it from again


@dataclass(slots=True)
class PartitionOrder(Generic[P]):
    # Offset after the last event processed, per partition (the app updates it as it acks).
    next_offsets: MutableMapping[P, int] = field(default_factory=dict)
    # The partitions of the last assignment; None until the first.
    assigned: frozenset[P] | None = None
    _reads: dict[P, tuple[int, int]] = field(default_factory=dict)  # gap offset, reads so far

    def on_assigned(self, assigned: Collection[P]) -> None:
        """A rebalance completed: a partition that went elsewhere, should it come back, is read
        from its committed offset, whoever moved that."""
        self.assigned = frozenset(assigned)
        for partition in [p for p in self.next_offsets if p not in self.assigned]:
            del self.next_offsets[partition]
            self._reads.pop(partition, None)

    def admit(self, batch: Sequence[E], position: Callable[[E], tuple[P, int]]) -> Admission[E, P]:
        """The events of ``batch`` that follow on from those processed before, and where to read
        again each partition that has a gap."""
        ready: list[E] = []
        read_again: dict[P, int] = {}
        following: dict[P, int] = {}
        for event in batch:
            partition, offset = position(event)
            if self.assigned is not None and partition not in self.assigned:
                continue
            if partition in read_again:
                continue
            expected = following.get(partition, self.next_offsets.get(partition))
            if (
                expected is not None
                and offset > expected
                and not self._gap_is_real(partition, expected)
            ):
                read_again[partition] = expected
                continue
            # An offset below the expected one is a replay (after a seek): its effects are
            # idempotent, and the events after it follow on from it.
            following[partition] = offset + 1
            ready.append(event)
        return Admission(ready, read_again)

    def _gap_is_real(self, partition: P, offset: int) -> bool:
        gap, reads = self._reads.get(partition, (offset, 0))
        if gap == offset and reads >= MAX_READS_PER_GAP:
            log.warning("offset %d of %s never came in %d reads: a gap", offset, partition, reads)
            del self._reads[partition]
            return True
        self._reads[partition] = (offset, reads + 1 if gap == offset else 1)
        return False
