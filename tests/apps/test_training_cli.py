"""``mms2s fit|validate|test``: a bad recipe, key, value or data set is one line naming it, not a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from multimodal_s2s.apps.cli import main
from multimodal_s2s.apps.training import config_error_line, input_error, max_time
from multimodal_s2s.data.asr import ASRDataModule

TASKS = Path(__file__).resolve().parents[2] / "tasks"
SHAPES_RECIPE = TASKS / "segmentation" / "shapes.yaml"


def test_a_wrong_recipe_key_is_one_line_naming_the_recipe_and_key(capsys):
    assert main(["fit", "--config", str(SHAPES_RECIPE), "--data.init_args.imag_size", "[8, 8]"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"mms2s fit: bad configuration ({SHAPES_RECIPE}): ") and "imag_size" in line


def test_a_bad_value_in_a_second_config_names_that_file_and_the_dotted_key(tmp_path, capsys):
    override = tmp_path / "override.yaml"
    override.write_text("model:\n  init_args:\n    lr: fast\n")
    assert main(["fit", "--config", str(SHAPES_RECIPE), "--config", str(override)]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert str(override) in line and line.endswith("model.lr: Expected a <class 'float'>. Got value: fast")


def test_a_missing_data_set_is_one_line(tmp_path, capsys):
    missing = tmp_path / "fsdd"
    assert main(["fit", "--config", str(TASKS / "asr" / "fsdd.yaml"), "--data.init_args.root", str(missing)]) == 1
    last_line = capsys.readouterr().err.strip().splitlines()[-1]
    assert last_line == f"mms2s fit: {missing}: dataset not found (format 'fsdd' needs root)"


def test_config_error_line_keeps_the_key_path_and_the_reason():
    message = (
        'Parser key "model":\n  Does not validate against any of the Union subtypes\n  Errors:\n'
        "    - Problem with given class_path 'x.Module':\n        Parser key \"lr\":\n"
        "          Expected a <class 'float'>. Got value: abc\n    - Expected a <class 'NoneType'>\n"
        "  Given value type: <class 'dict'>"
    )
    assert config_error_line(message) == "model.lr: Expected a <class 'float'>. Got value: abc"
    assert config_error_line("unrecognized arguments: fit --x 1") == "unrecognized arguments: --x 1"


def test_only_errors_the_suite_raised_about_its_input_are_shortened():
    try:
        try:
            ASRDataModule(format="fsdd", root="/no/such/folder")
        except FileNotFoundError as ours:
            raise ValueError("a wrapper, as jsonargparse raises") from ours
    except ValueError as wrapped:
        assert isinstance(input_error(wrapped), FileNotFoundError)
    with pytest.raises(ValueError) as foreign:
        int("not a number")
    assert input_error(foreign.value) is None  # raised outside the suite: the traceback stays


def test_max_time_formats_minutes_as_days_hours_minutes_seconds():
    assert [max_time(minutes) for minutes in (8, 9.5, 90, 1500)] == [
        "00:00:08:00",
        "00:00:09:30",
        "00:01:30:00",
        "01:01:00:00",
    ]
