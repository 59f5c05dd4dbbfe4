"""The window rules both splitters share (``speech.windows``): lengths on the splitter's grid, a long region cut
where the splitter chooses inside its window's last third, consecutive pieces joined while the window is short."""

from __future__ import annotations

from multimodal_s2s.speech.windows import join_regions, split_long, window_lengths


def test_window_lengths_on_the_splitters_grid():
    assert window_lengths(30.0, 5.0, units_per_second=100, min_length=1) == (3000, 500)
    assert window_lengths(30.0, None, units_per_second=16000, min_length=512) == (480000, 480000)  # None: the max
    assert window_lengths(0.01, 60.0, units_per_second=16000, min_length=512) == (512, 512)  # at least min_length


def test_a_long_region_is_cut_where_the_splitter_chooses_in_the_last_third():
    asked = []

    def cut(first: int, last: int) -> int:
        asked.append((first, last))
        return first + 1

    assert split_long((0, 100), 30, cut) == [(0, 21), (21, 42), (42, 63), (63, 84), (84, 100)]
    assert asked[:2] == [(20, 30), (41, 51)]  # the last third of the window starting at each piece
    assert split_long((5, 35), 30, cut) == [(5, 35)]  # short enough: not cut


def test_pieces_are_joined_while_the_window_spans_at_most_the_merge_length():
    regions = [(0, 10), (12, 20), (40, 45), (46, 100)]
    windows = join_regions(regions, max_length=60, merge_length=25, cut=lambda first, last: last)
    assert windows == [(0, 20), (40, 45), (46, 100)]  # (46, 100) spans more than 25 alone: not joined to (40, 45)
    assert join_regions(regions, max_length=60, merge_length=60, cut=lambda first, last: last) == [(0, 45), (46, 100)]
    assert join_regions([], max_length=60, merge_length=60, cut=lambda first, last: last) == []
