"""When the worker process collects cyclic garbage: between batches, not in the middle of them.

A batch holds hundreds of containers per event until it is done, and they die by reference count;
the cycle collector's automatic passes (every 700 allocations by default) would walk the live
batch over and over for nothing. Only the worker's entry point may use this: it changes the
collector of the whole process.
"""

from __future__ import annotations

import gc

# Automatic passes stay on as a backstop for an abnormal batch: a normal one allocates well under
# this many containers (a thousand-odd events of a few hundred each).
BACKSTOP_ALLOCATIONS = 2_000_000
# After each batch only what it left alive is walked (the youngest generation). What survived
# that is walked again this often: every collection of the middle generation walks all of it, and
# walking it after every batch cost about 5% of the worker's CPU.
MIDDLE_COLLECTION_EVERY_BATCHES = 10
# Cycles that survived into the oldest generation are looked for this often; it walks every
# object of the process, a few milliseconds with the caches full.
FULL_COLLECTION_EVERY_BATCHES = 100


class BatchGarbageCollector:
    def __init__(
        self,
        *,
        middle_collection_every: int = MIDDLE_COLLECTION_EVERY_BATCHES,
        full_collection_every: int = FULL_COLLECTION_EVERY_BATCHES,
    ) -> None:
        self._middle_collection_every = middle_collection_every
        self._full_collection_every = full_collection_every
        self._batches = 0

    def start(self) -> None:
        """Call once, after start-up: what start-up built is never walked again."""
        gc.freeze()
        _, older, oldest = gc.get_threshold()
        gc.set_threshold(BACKSTOP_ALLOCATIONS, older, oldest)

    def after_batch(self) -> int:
        """Collect what the batch left behind; returns the number of unreachable objects found."""
        self._batches += 1
        if self._batches % self._full_collection_every == 0:
            return gc.collect(2)
        if self._batches % self._middle_collection_every == 0:
            return gc.collect(1)
        return gc.collect(0)
