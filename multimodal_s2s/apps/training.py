"""Training runs from YAML recipes through LightningCLI."""

from __future__ import annotations

import argparse
import itertools
import re
import sys
import traceback
import warnings
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import LightningDataModule, LightningModule
from lightning.pytorch.cli import LightningCLI

from multimodal_s2s.threads import configure_threads

PACKAGE_DIR = Path(__file__).resolve().parents[1]
#: jsonargparse's explanation lines that say nothing about the mistake itself.
CONFIG_ERROR_NOISE = (
    "Does not validate against",
    "Subtypes:",
    "Errors:",
    "Expected a <class 'NoneType'>",
    "Given value",
    "Problem with given class_path",
)


def default_precision() -> str:
    """bf16 mixed precision on a GPU that supports it, full precision on the CPU."""
    if torch.cuda.is_available() and torch.cuda.is_bf16_supported():
        return "bf16-mixed"
    return "32-true"


class SuiteCLI(LightningCLI):
    """LightningCLI with the suite's defaults: all GPUs (DDP when several) in bf16, else the CPU."""

    def add_arguments_to_parser(self, parser) -> None:
        parser.set_defaults({"trainer.precision": default_precision(), "trainer.devices": "auto"})


def suite_cli(args: list[str], run: bool = True, **kwargs: Any) -> SuiteCLI:
    """SuiteCLI over whichever LightningModule and LightningDataModule the recipe names; the resolved
    config is saved with the run. ``run=False``: parse and build only (``args`` without a sub-command)."""
    configure_threads()
    return SuiteCLI(
        LightningModule,
        LightningDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        args=args,
        run=run,
        save_config_kwargs={"overwrite": True},
        **kwargs,
    )


def max_time(minutes: float) -> str:
    """A budget in minutes as Lightning's ``trainer.max_time`` ("DD:HH:MM:SS")."""
    total_minutes, seconds = divmod(round(minutes * 60), 60)
    days_hours, minutes_left = divmod(total_minutes, 60)
    days, hours = divmod(days_hours, 24)
    return f"{days:02d}:{hours:02d}:{minutes_left:02d}:{seconds:02d}"


def run_lightning_cli(argv: list[str]) -> int:
    """``argv`` = [fit|validate|test, --config RECIPE, overrides...] -> exit code.

    A bad recipe, key or value is one line on stderr (exit code 2) instead of the parser's usage text;
    a bad data set or file that the suite's code reports (``input_error``) is one line too (exit code 1).
    """
    with warnings.catch_warnings():  # ``args`` are sys.argv here, which is what LightningCLI warns about
        warnings.filterwarnings("ignore", message="LightningCLI's args parameter is intended")
        try:
            suite_cli(argv, parser_kwargs={"exit_on_error": False})
        except argparse.ArgumentError as error:
            sources = ", ".join(config_files(argv)) or "no --config"
            print(f"mms2s {argv[0]}: bad configuration ({sources}): {config_error_line(str(error))}", file=sys.stderr)
            return 2
        except Exception as error:
            cause = input_error(error)
            if cause is None:
                raise
            print(f"mms2s {argv[0]}: {cause}", file=sys.stderr)
            return 1
    return 0


def input_error(error: BaseException) -> BaseException | None:
    """The outermost exception in ``error``'s chain that the suite's own code raised about its input (a
    ValueError, which the suite's error types are, or FileNotFoundError, with a one-line message naming
    the file or value); None when there is none: other errors keep their traceback."""
    current, seen = error, set()
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ValueError | FileNotFoundError) and current.__traceback__ is not None:
            raised_in = Path(traceback.extract_tb(current.__traceback__)[-1].filename).resolve()
            if raised_in.is_relative_to(PACKAGE_DIR):
                return current
        current = current.__cause__ or current.__context__
    return None


def config_files(argv: list[str]) -> list[str]:
    """The files given with --config / -c (either ``--config F`` or ``--config=F``)."""
    files = [value for flag, value in itertools.pairwise(argv) if flag in ("--config", "-c")]
    return files + [arg.split("=", 1)[1] for arg in argv if arg.startswith("--config=")]


def config_error_line(message: str) -> str:
    """jsonargparse's multi-line error -> one line: the dotted key and what is wrong with it.

    'Parser key "model": ... Parser key "lr": Expected a float. Got value: abc'
    -> 'model.lr: Expected a float. Got value: abc'
    """
    keys, details = [], []
    for line in message.splitlines():
        line = line.strip().removeprefix("- ")
        if match := re.fullmatch(r'Parser key "([^"]+)":\s*(.*)', line):
            keys.append(match.group(1))
            line = match.group(2)
        if line and not line.startswith(CONFIG_ERROR_NOISE):
            details.append(line)
    text = "; ".join(details)
    text = re.sub(r"^unrecognized arguments: (fit|validate|test) ", "unrecognized arguments: ", text)
    return f"{'.'.join(keys)}: {text}" if keys else text
