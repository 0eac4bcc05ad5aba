"""The bounded cache behind the issue and stack frame caches: it forgets the least recently used
entry first and never grows past its bound."""

from __future__ import annotations

import pytest

from worker.lru import LruCache


def test_the_least_recently_used_entry_is_forgotten_first() -> None:
    cache: LruCache[str, int] = LruCache(2)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1  # "a" is now the most recently used

    cache.put("c", 3)

    assert ("a" in cache, "b" in cache, "c" in cache) == (True, False, True)
    assert len(cache) == 2


def test_putting_a_known_key_replaces_its_value_without_growing() -> None:
    cache: LruCache[str, int] = LruCache(2)
    cache.put("a", 1)
    cache.put("a", 5)

    assert (cache.get("a"), len(cache)) == (5, 1)


def test_a_missing_key_reads_as_none() -> None:
    assert LruCache[str, int](1).get("nothing") is None


def test_a_cache_needs_room_for_one_entry() -> None:
    with pytest.raises(ValueError, match="at least one entry"):
        LruCache(0)
