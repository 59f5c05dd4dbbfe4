"""Background prefetching: results in order, the worker never further ahead than its budget, an exception
raised at its item's turn, and a caller that stops early stops the worker."""

from __future__ import annotations

import itertools
import threading
import time

import pytest

from multimodal_s2s.pipelines.prefetch import prefetch


def test_results_come_in_order():
    assert list(prefetch(range(20), lambda x: x * x, size=lambda _: 1, budget=3)) == [x * x for x in range(20)]
    assert list(prefetch([], lambda x: x, size=lambda _: 1, budget=3)) == []


def test_the_worker_stays_within_its_budget():
    produced = []
    for taken, result in enumerate(prefetch(range(12), lambda x: produced.append(x) or x, lambda x: 2, budget=6)):
        time.sleep(0.01)  # the worker runs ahead meanwhile
        assert result == taken and len(produced) <= taken + 1 + 3 + 1  # taken, 3 waiting (6 / 2), 1 in hand
    assert produced == list(range(12))


def test_an_error_is_raised_at_its_items_turn():
    def work(x: int) -> int:
        if x == 3:
            raise ValueError("item 3 is bad")
        return x

    results = prefetch(range(10), work, size=lambda _: 1, budget=100)
    assert [next(results) for _ in range(3)] == [0, 1, 2]
    with pytest.raises(ValueError, match="item 3 is bad"):
        next(results)


def test_stopping_early_stops_the_worker():
    calls, before = [], set(threading.enumerate())
    results = prefetch(itertools.count(), lambda x: calls.append(x) or x, size=lambda _: 1, budget=2)
    assert next(results) == 0
    results.close()
    time.sleep(0.05)
    assert len(calls) <= 5 and set(threading.enumerate()) <= before  # the worker thread has ended
