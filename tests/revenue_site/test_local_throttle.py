"""revenue_site.throttling.LocalWindowCounter: the in-process twin of ``window_hits``."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from revenue_site.throttling import LocalBlocks, LocalWindowCounter


def test_counts_within_a_window_and_carries_the_previous_one():
    counter = LocalWindowCounter()
    assert [counter.hit("a", 10) for _ in range(3)] == [(1, 0), (2, 0), (3, 0)]
    assert counter.hit("b", 10) == (1, 0)  # per key
    assert counter.hit("a", 11) == (1, 3)  # the next window sees this one's count
    assert counter.hit("a", 13) == (1, 0)  # a gap: nothing carried


@given(st.lists(st.tuples(st.sampled_from("abcd"), st.integers(0, 3)), max_size=60))
def test_agrees_with_counting_every_hit(hits):
    """Whatever the order of keys, with windows never going back: (this window's hits, the
    previous window's) as a full count says."""
    counter = LocalWindowCounter()
    seen: list[tuple[str, int]] = []
    window = 0
    for key, step in hits:
        window += step
        seen.append((key, window))
        expected = (seen.count((key, window)), seen.count((key, window - 1)))
        assert counter.hit(key, window) == expected


def test_the_table_stays_bounded():
    counter = LocalWindowCounter(max_keys=100)
    for i in range(1000):
        counter.hit(f"k{i}", 5)
    assert len(counter._rows) <= 100
    # Keys of older windows go first; current ones are kept while there is room.
    counter = LocalWindowCounter(max_keys=3)
    counter.hit("old", 1)
    counter.hit("x", 5)
    counter.hit("y", 5)
    assert counter.hit("z", 5) == (1, 0)
    assert set(counter._rows) == {"x", "y", "z"}
    assert counter.hit("x", 5) == (2, 0)


def test_a_block_lasts_until_its_time_then_is_forgotten():
    blocks = LocalBlocks()
    blocks.block("10.0.0.1", until=1_000.0)
    assert blocks.wait("10.0.0.1", now=990.0) == 10.0
    assert blocks.wait("10.0.0.2", now=990.0) is None
    assert blocks.wait("10.0.0.1", now=1_000.0) is None
    assert blocks._rows == {}


def test_the_blocks_stay_bounded_dropping_the_ones_over_first():
    blocks = LocalBlocks(max_keys=100)
    far = 10.0**12
    for i in range(1000):
        blocks.block(f"k{i}", until=far)
    assert len(blocks._rows) <= 100
    blocks = LocalBlocks(max_keys=3)
    blocks.block("over", until=1.0)  # already past
    blocks.block("x", until=far)
    blocks.block("y", until=far)
    blocks.block("z", until=far)
    assert set(blocks._rows) == {"x", "y", "z"}
    blocks.block("x", until=far + 1)  # a known key never makes room
    assert set(blocks._rows) == {"x", "y", "z"}
