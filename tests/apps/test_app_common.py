"""``apps.common``: one closing count and one way to fail for every app, and the common arguments."""

from __future__ import annotations

import argparse
import importlib

import pytest

from multimodal_s2s.apps.cli import APPS
from multimodal_s2s.apps.common import (
    DEVICE_HELP,
    EXIT_BAD_SETUP,
    EXIT_FAILED,
    FileCount,
    add_batch_size_argument,
    add_checkpoint_arguments,
    add_output_arguments,
    fail,
)
from multimodal_s2s.errors import first_line


def test_file_count_counts_each_input_once_and_closes_with_one_line(capsys):
    count = FileCount("segmented", ["missing.png: file not found"])
    count.succeeded()
    count.failed("bad.png: not an image file")
    count.succeeded(2)
    written = []
    count.failed("late.png: cut short", written.append)
    assert count.finish() == EXIT_FAILED
    assert capsys.readouterr().err.splitlines() == [
        "error: missing.png: file not found",
        "error: bad.png: not an image file",
        "3 file(s) failed, 3 segmented",
    ]
    assert written == ["error: late.png: cut short"]


def test_file_count_says_nothing_when_all_went_well(capsys):
    count = FileCount("captioned")
    count.succeeded(4)
    assert count.finish() == 0 and capsys.readouterr().err == ""
    assert count.closing_line() == "0 file(s) failed, 4 captioned"


def test_fail_is_one_line_with_the_common_prefix(capsys):
    assert fail("x.ckpt: checkpoint not found") == EXIT_BAD_SETUP
    assert fail("out.onnx: cannot write", EXIT_FAILED) == EXIT_FAILED
    assert capsys.readouterr().err == "error: x.ckpt: checkpoint not found\nerror: out.onnx: cannot write\n"


def test_first_line_of_an_error():
    assert first_line(ValueError("  shapes differ\n  in layer 3\n")) == "shapes differ"
    assert first_line(RuntimeError("")) == "RuntimeError"


def test_common_arguments():
    parser = argparse.ArgumentParser()
    add_checkpoint_arguments(parser, "a captioning checkpoint (.ckpt)")
    add_output_arguments(parser, "the PNGs")
    add_batch_size_argument(parser, 16, "images")
    args = parser.parse_args(["--checkpoint", "c.ckpt"])
    assert (args.checkpoint, args.device, args.batch_size) == ("c.ckpt", "auto", 16)
    assert (args.output_dir, args.overwrite) == (".", False)
    with pytest.raises(SystemExit):
        parser.parse_args([])  # --checkpoint is required


@pytest.mark.parametrize("name", sorted(set(APPS) - {"import"}))  # import writes a checkpoint from another's
def test_every_app_takes_its_checkpoint_and_device_from_the_common_arguments(name):
    parser = argparse.ArgumentParser()
    importlib.import_module(APPS[name][0]).add_arguments(parser)
    actions = {action.dest: action for action in parser._actions}
    assert actions["checkpoint"].required
    if name != "export":  # the export runs on the CPU
        assert (actions["device"].default, actions["device"].help) == ("auto", DEVICE_HELP)
