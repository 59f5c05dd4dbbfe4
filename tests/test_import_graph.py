"""The package's import picture: its floors (the subpackages and root modules) import each other without a
circle, so each floor can be read, tested and imported without the ones above it; the root holds at most
eight modules besides ``__init__``. Read from the source (module-level imports; imports inside functions
and under ``TYPE_CHECKING`` are the lazy ones and do not count)."""

from __future__ import annotations

import ast
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import pytest

import multimodal_s2s

PACKAGE = Path(multimodal_s2s.__file__).parent
MAX_ROOT_MODULES = 8


def _floor(module: str) -> str:
    """multimodal_s2s.speech.vad -> speech; multimodal_s2s.types -> types."""
    return module.split(".")[1]


def _imported_modules(path: Path) -> set[str]:
    """The suite modules ``path`` imports at module level."""
    found = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("multimodal_s2s."):
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("multimodal_s2s."))
    return found


def floor_graph() -> dict[str, set[str]]:
    """floor -> the other floors its modules import at module level."""
    graph: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        relative = path.relative_to(PACKAGE)
        if relative.name == "__init__.py" and len(relative.parts) == 1:
            continue  # the root __init__ names everything, lazily
        floor = relative.parts[0].removesuffix(".py")
        imported = {_floor(module) for module in _imported_modules(path)}
        graph.setdefault(floor, set()).update(imported - {floor})
    return graph


def import_order(graph: dict[str, set[str]]) -> list[str]:
    """The floors from the lowest up; AssertionError naming the circle when there is one."""
    try:
        return list(TopologicalSorter(graph).static_order())
    except CycleError as error:
        raise AssertionError(f"import circle between floors: {' -> '.join(error.args[1])}") from None


def test_the_floors_import_each_other_without_a_circle():
    graph = floor_graph()
    assert {"speech", "preprocessing", "checkpoint", "pipelines", "lit"} <= set(graph)
    below = import_order(graph).index
    assert below("types") < below("checkpoint") < below("models") < below("pipelines") < below("apps")
    assert below("preprocessing") < below("data") and below("preprocessing") < below("pipelines")


def test_a_circle_is_named():
    with pytest.raises(AssertionError, match="import circle between floors: (a|b|c) -> "):
        import_order({"a": {"b"}, "b": {"c"}, "c": {"a"}})


def test_the_root_holds_few_modules():
    modules = sorted(path.name for path in PACKAGE.glob("*.py") if path.name != "__init__.py")
    assert len(modules) <= MAX_ROOT_MODULES, modules
