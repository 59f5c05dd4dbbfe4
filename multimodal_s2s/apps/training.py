"""Training runs from YAML recipes through LightningCLI."""

from __future__ import annotations

import torch
from lightning.pytorch import LightningDataModule, LightningModule
from lightning.pytorch.cli import LightningCLI


def default_precision() -> str:
    """bf16 mixed precision on a GPU that supports it, full precision on the CPU."""
    if torch.cuda.is_available() and torch.cuda.is_bf16_supported():
        return "bf16-mixed"
    return "32-true"


class SuiteCLI(LightningCLI):
    """LightningCLI with the suite's defaults: all GPUs (DDP when several) in bf16, else the CPU."""

    def add_arguments_to_parser(self, parser) -> None:
        parser.set_defaults({"trainer.precision": default_precision(), "trainer.devices": "auto"})


def run_lightning_cli(argv: list[str]) -> None:
    """``argv`` = [fit|validate|test, --config RECIPE, overrides...]."""
    SuiteCLI(
        LightningModule,
        LightningDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        args=argv,
        save_config_kwargs={"overwrite": True},
    )
