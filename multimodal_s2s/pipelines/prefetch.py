"""Work on the next items in a background thread while the caller uses the current ones.

``prefetch(items, work, size, budget)`` yields ``work(item)`` for each item, in order, computed by one
worker thread that runs ahead of the caller while the results waiting to be taken weigh less than
``budget`` (by ``size``; at least one result is always allowed to wait). Transcription uses it to read
recordings and run the VAD (onnxruntime and soundfile release the GIL) while the model decodes.

An exception in ``work`` is raised in the caller when its item's turn comes; a caller that stops early
stops the worker after its current item.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")
_DONE = object()


class _Failure:
    """An exception of ``work``, on its way to the caller."""

    def __init__(self, error: BaseException):
        self.error = error


class _Buffer:
    """Results handed from the worker to the caller, bounded by their total size."""

    def __init__(self, budget: float):
        self.budget = budget
        self.entries: deque[tuple[object, float]] = deque()  # (result, _Failure or _DONE; its size)
        self.held = 0.0
        self.closed = False
        self.condition = threading.Condition()

    def put(self, entry: object, size: float) -> bool:
        """Wait for room, then add ``entry``; False when the caller has gone."""
        with self.condition:
            self.condition.wait_for(lambda: self.closed or not self.entries or self.held + size <= self.budget)
            if self.closed:
                return False
            self.entries.append((entry, size))
            self.held += size
            self.condition.notify_all()
            return True

    def take(self) -> object:
        with self.condition:
            self.condition.wait_for(lambda: bool(self.entries))
            entry, size = self.entries.popleft()
            self.held -= size
            self.condition.notify_all()
            return entry

    def close(self) -> None:
        with self.condition:
            self.closed = True
            self.condition.notify_all()


def prefetch(
    items: Iterable[Item], work: Callable[[Item], Result], size: Callable[[Result], float], budget: float
) -> Iterator[Result]:
    """``work(item)`` of each item in order, computed ahead in one background thread (see the module)."""
    buffer = _Buffer(budget)

    def produce() -> None:
        try:
            for item in items:
                result = work(item)
                if not buffer.put(result, size(result)):
                    return
        except BaseException as error:  # handed to the caller, raised there
            buffer.put(_Failure(error), 0.0)
            return
        buffer.put(_DONE, 0.0)

    worker = threading.Thread(target=produce, name="prefetch", daemon=True)
    worker.start()
    try:
        while (entry := buffer.take()) is not _DONE:
            if isinstance(entry, _Failure):
                raise entry.error
            yield entry
    finally:
        buffer.close()
