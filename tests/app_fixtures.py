"""Shared by the tests of the apps that process files: mixes of good, unreadable and missing inputs."""

from __future__ import annotations

#: (inputs by kind, files failed, files done): the closing count each mix must give.
COUNT_MIXES = [
    (["missing"], 1, 0),
    (["missing", "good"], 1, 1),
    (["good", "unreadable", "missing", "good2"], 2, 2),
]


def good_ones(inputs: list[str]) -> list[str]:
    """The inputs of a mix that the app must process."""
    return [name for name in inputs if name.startswith("good")]
