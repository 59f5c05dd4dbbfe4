"""The example images the page offers: scenes of the test split of the suite's shapes generator (never
seen in training), bundled as small PNGs with their reference captions in ``examples/examples.json``.

``write_examples(EXAMPLES_DIR)`` writes them again from the generator (a test checks that they match).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

EXAMPLES_DIR = Path(__file__).with_name("examples")
MANIFEST = "examples.json"
EXAMPLE_COUNT = 4


@dataclass(frozen=True)
class Example:
    """One bundled image: its file name (in EXAMPLES_DIR) and the captions it was generated with."""

    file: str
    references: tuple[str, ...]


def bundled_examples(folder: Path = EXAMPLES_DIR) -> list[Example]:
    """The examples listed in ``folder``'s manifest."""
    entries = json.loads((folder / MANIFEST).read_text())
    return [Example(entry["file"], tuple(entry["references"])) for entry in entries]


def write_examples(folder: Path, count: int = EXAMPLE_COUNT) -> list[Example]:
    """Render ``count`` test-split scenes into ``folder`` with their manifest."""
    from multimodal_s2s.apps.quickstart import write_scenes  # imports the data modules; the server needs none

    examples = [Example(path.name, tuple(references)) for path, references in write_scenes(count, folder)]
    (folder / MANIFEST).write_text(json.dumps([asdict(example) for example in examples], indent=1) + "\n")
    return examples
