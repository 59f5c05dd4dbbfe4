"""Training runs from YAML recipes through LightningCLI."""

from __future__ import annotations

import argparse
import importlib
import itertools
import re
import sys
import traceback
import warnings
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.plugins import CheckpointIO
from lightning.pytorch import LightningDataModule, LightningModule, Trainer
from lightning.pytorch.cli import LightningCLI
from lightning.pytorch.utilities import rank_zero_info

from multimodal_s2s.apps.common import EXIT_BAD_SETUP, EXIT_FAILED
from multimodal_s2s.checkpoint import CheckpointError, Task, read_checkpoint
from multimodal_s2s.lit.optim import check_gradient_clipping
from multimodal_s2s.lit.predictions import PredictionWriter
from multimodal_s2s.lit.runs import AtomicCheckpointIO, RunLogger, resolve_checkpoint
from multimodal_s2s.outputs import check_writable_folder
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
    """LightningCLI with the suite's defaults and run lifecycle.

    - All GPUs (DDP when several) in bf16, else the CPU.
    - One key places a run: outputs go to ``trainer.default_root_dir``/version_N (``lit.runs.RunLogger``).
    - ``--ckpt_path`` may be a file, ``last`` (resume the latest run of the recipe), ``best`` or a URL
      (downloaded); it is checked before anything else (one line when missing, truncated, not this
      suite's or of another task), read weights-only, and handed to the trainer as ``trainer.ckpt_path``
      so that the model and the data take their tokenizers and preprocessing from it.
    - Checkpoints are written atomically (``lit.runs.AtomicCheckpointIO``); ``predict`` writes
      ``predictions.jsonl`` in the run's folder (``lit.predictions.PredictionWriter``).
    """

    def add_arguments_to_parser(self, parser) -> None:
        parser.set_defaults(
            {
                "trainer.precision": default_precision(),
                "trainer.devices": "auto",
                "trainer.logger": {"class_path": f"{RunLogger.__module__}.{RunLogger.__name__}"},
            }
        )

    def _parse_ckpt_path(self) -> None:
        """Resolve and check ``--ckpt_path`` before Lightning reads the hyper-parameters stored in it."""
        config = self.config.get(self.config.get("subcommand") or "", None)
        if config is not None and config.get("ckpt_path") is not None:
            path = resolve_checkpoint(str(config.ckpt_path), config.trainer.default_root_dir)
            _check_task(read_checkpoint(path).header.task, config.data)
            config.ckpt_path = str(path)
        super()._parse_ckpt_path()

    def before_instantiate_classes(self) -> None:
        config = self.config.get(self.subcommand, self.config) if self.subcommand else self.config
        configure_threads(_configured_workers(config.get("data")))
        if config.get("weights_only") is False:
            raise CheckpointError("--weights_only false is refused: checkpoints are read with weights only")
        if "weights_only" in config:
            config.weights_only = True
        if self.subcommand == "predict":
            config.return_predictions = False  # PredictionWriter writes them as they come
        check_writable_folder(config.trainer.default_root_dir or ".", "trainer.default_root_dir")
        check_gradient_clipping(config.trainer.get("gradient_clip_val"), config.trainer.get("gradient_clip_algorithm"))
        for logger in _as_list(config.trainer.get("logger")):
            if getattr(logger, "class_path", "").endswith(RunLogger.__name__):
                logger.init_args.save_dir = config.trainer.default_root_dir or "."

    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        trainer_config = self._get(self.config_init, "trainer", default={})
        plugins = _as_list(kwargs.pop("plugins", None) or trainer_config.get("plugins"))
        if not any(isinstance(plugin, CheckpointIO) for plugin in plugins):
            plugins.append(AtomicCheckpointIO())
        if self.subcommand == "predict":
            callbacks = _as_list(trainer_config.get("callbacks"))
            kwargs["callbacks"] = [*callbacks, PredictionWriter()]
        return super().instantiate_trainer(plugins=plugins, **kwargs)

    def before_fit(self) -> None:
        self._hand_checkpoint_to_trainer()

    def before_validate(self) -> None:
        self._hand_checkpoint_to_trainer()

    def before_test(self) -> None:
        self._hand_checkpoint_to_trainer()

    def before_predict(self) -> None:
        self._hand_checkpoint_to_trainer()

    def _hand_checkpoint_to_trainer(self) -> None:
        """``trainer.ckpt_path`` is set before the run (so that ``setup`` can read the header); the method
        itself then gets no ckpt_path, and Lightning loads the one the trainer holds, weights only."""
        config = self.config_init[self.subcommand]
        if config.get("ckpt_path") is not None:
            self.trainer.ckpt_path = config["ckpt_path"]
            rank_zero_info(f"starting from {config['ckpt_path']}; this run's outputs: {self.trainer.log_dir}")
            config["ckpt_path"] = None


def _as_list(value: Any) -> list[Any]:
    if value is None or value is False or value is True:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


def _configured_workers(data: Any) -> int | None:
    """The recipe's ``data.num_workers`` (None where it leaves the count to the suite or has none)."""
    init_args = getattr(data, "init_args", None)
    return None if init_args is None else init_args.get("num_workers")


def _check_task(task: Task, data: Any) -> None:
    """A checkpoint of another task than the recipe's data module is one line, before anything is built."""
    class_path = getattr(data, "class_path", None)
    module_name, _, class_name = (class_path or "").rpartition(".")
    data_class = getattr(importlib.import_module(module_name), class_name, None) if module_name else None
    expected = getattr(data_class, "task", None)
    if expected is not None and expected != task:
        raise CheckpointError(f"the checkpoint's task is {task.value}, but the recipe's data is for {expected.value}")


def suite_cli(args: list[str], run: bool = True, **kwargs: Any) -> SuiteCLI:
    """SuiteCLI over whichever LightningModule and LightningDataModule the recipe names; the resolved
    config is saved with the run. ``run=False``: parse and build only (``args`` without a sub-command).
    Torch's threads are set once the recipe is read: the cores less its data loaders' workers."""
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


def run_lightning_cli(argv: list[str], trainer_defaults: dict[str, Any] | None = None) -> int:
    """``argv`` = [fit|validate|test|predict, --config RECIPE, overrides...] -> exit code.
    ``trainer_defaults`` as LightningCLI takes them (callback instances there join the recipe's).

    A bad recipe, key or value is one line on stderr (exit code 2) instead of the parser's usage text;
    a bad data set or file that the suite's code reports (``input_error``) is one line too (exit code 1).
    """
    with warnings.catch_warnings():  # ``args`` are sys.argv here, which is what LightningCLI warns about
        warnings.filterwarnings("ignore", message="LightningCLI's args parameter is intended")
        try:
            suite_cli(argv, parser_kwargs={"exit_on_error": False}, trainer_defaults=trainer_defaults or {})
        except argparse.ArgumentError as error:
            sources = ", ".join(config_files(argv)) or "no --config"
            print(f"mms2s {argv[0]}: bad configuration ({sources}): {config_error_line(str(error))}", file=sys.stderr)
            return EXIT_BAD_SETUP
        except Exception as error:
            cause = input_error(error)
            if cause is None:
                raise
            print(f"mms2s {argv[0]}: {cause}", file=sys.stderr)
            return EXIT_FAILED
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
    text = re.sub(r"^unrecognized arguments: (fit|validate|test|predict) ", "unrecognized arguments: ", text)
    return f"{'.'.join(keys)}: {text}" if keys else text
