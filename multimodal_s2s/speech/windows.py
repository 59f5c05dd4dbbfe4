"""Windows to decode from speech regions: the rules that both splitters (``vad``, ``energy``) follow.

A splitter finds speech regions on its own time grid (the VAD: samples; the energy splitter: 10 ms frames)
and ``join_regions`` makes the windows: a region longer than the longest window is cut, again and again,
inside the last third of the window that would start at its beginning (``SPLIT_SEARCH_FRACTION``), where
the splitter's ``Cut`` chooses (the VAD: its longest pause there; the energy splitter: its quietest frame);
then consecutive pieces are joined while the joined window spans at most the merge length. Windows are in
order and disjoint, and what lies between them is not decoded.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

#: (start, end) of a region or a window, end excluded: samples, or frames of the splitter's grid.
SampleRange = tuple[int, int]
#: ``cut(first, last)``: where a region too long for one window is cut, a point in [first, last].
Cut = Callable[[int, int], int]
SPLIT_SEARCH_FRACTION = 1 / 3  # an over-long region is cut in its window's last third


def window_lengths(
    max_seconds: float, merge_seconds: float | None, units_per_second: float, min_length: int
) -> tuple[int, int]:
    """The longest window (at least ``min_length``) and the longest joined window (at most the longest
    window; ``merge_seconds`` None: ``max_seconds``), in units of the splitter's grid."""
    max_length = max(int(max_seconds * units_per_second), min_length)
    merge_length = min(int((merge_seconds or max_seconds) * units_per_second), max_length)
    return max_length, merge_length


def split_long(region: SampleRange, max_length: int, cut: Cut) -> list[SampleRange]:
    """Cut a range into pieces of at most ``max_length``, each where ``cut`` chooses in its last third."""
    pieces, (start, end) = [], region
    while end - start > max_length:
        position = cut(start + int(max_length * (1 - SPLIT_SEARCH_FRACTION)), start + max_length)
        pieces.append((start, position))
        start = position
    return [*pieces, (start, end)]


def join_regions(regions: Iterable[SampleRange], max_length: int, merge_length: int, cut: Cut) -> list[SampleRange]:
    """Speech regions in order -> windows: each region split by ``split_long``, then consecutive pieces joined
    while the joined window spans at most ``merge_length`` (see the module docstring)."""
    windows: list[SampleRange] = []
    for region in regions:
        for start, end in split_long(region, max_length, cut):
            if windows and end - windows[-1][0] <= merge_length:
                windows[-1] = (windows[-1][0], end)
            else:
                windows.append((start, end))
    return windows
