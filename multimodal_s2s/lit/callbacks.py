"""Callbacks the CPU recipes use: a learning curve a person can look at, and checkpoint averaging.

``LearningCurve`` records every validation metric at each validation (step, epoch, wall seconds since the
fit began) and writes ``curve.json`` and ``curve.png`` into the run's ``version_N`` folder, so a user sees
where the budget went. Its points live in the checkpoints too: a resumed run goes on with its curve and clock.

``AverageCheckpoints`` keeps the weights at the end of the last ``last`` training epochs (CPU copies) and
writes their mean as ``checkpoints/averaged.ckpt`` when the fit ends (fairseq's ``average_checkpoints.py``
over its epoch checkpoints, without the files in between): a suite checkpoint that
``mms2s validate/test --ckpt_path`` and the pipelines read.
"""

from __future__ import annotations

import io
import json
import time
from collections import deque
from dataclasses import replace
from pathlib import Path
from typing import Any

import lightning.pytorch as L
import torch
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities import rank_zero_only
from torch import Tensor

from multimodal_s2s.checkpoint import save_suite_checkpoint
from multimodal_s2s.outputs import atomic_write, atomic_write_text

VALIDATION_PREFIX = "val/"
CURVE_NAME = "curve"
AVERAGED_NAME = "averaged.ckpt"


def fitting(trainer: L.Trainer) -> bool:
    """Whether a validation is one of a fit's (not its sanity check, nor ``mms2s validate``)."""
    return trainer.state.fn == TrainerFn.FITTING and not trainer.sanity_checking


class LearningCurve(L.Callback):
    """Each validation's metrics as a point ``{"step", "epoch", "wall_s", "val/<name>": value, ...}``, written
    to ``<log_dir>/curve.json`` (``{"points": [...]}``) and plotted to ``<log_dir>/curve.png`` (each metric
    against wall minutes and against steps)."""

    def __init__(self) -> None:
        self.points: list[dict[str, float]] = []
        self.started = time.monotonic()

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        resumed_at = self.points[-1]["wall_s"] if self.points else 0.0
        self.started = time.monotonic() - resumed_at

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not fitting(trainer):
            return
        metrics = {
            key: float(value)
            for key, value in trainer.callback_metrics.items()
            if key.startswith(VALIDATION_PREFIX) and value.numel() == 1
        }
        wall = round(time.monotonic() - self.started, 2)
        self.points.append({"step": trainer.global_step, "epoch": trainer.current_epoch, "wall_s": wall, **metrics})
        if trainer.log_dir is not None:
            self.write(Path(trainer.log_dir))

    @rank_zero_only
    def write(self, folder: Path) -> None:
        atomic_write_text(folder / f"{CURVE_NAME}.json", json.dumps({"points": self.points}, indent=1) + "\n")
        atomic_write(folder / f"{CURVE_NAME}.png", lambda file: file.write(plot_curve(self.points)))

    def state_dict(self) -> dict[str, Any]:
        return {"points": self.points}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.points = list(state_dict["points"])


def plot_curve(points: list[dict[str, float]]) -> bytes:
    """PNG bytes: one row per validation metric, against wall minutes (left) and optimizer steps (right)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = sorted({key for point in points for key in point if key.startswith(VALIDATION_PREFIX)})
    figure, axes = plt.subplots(max(len(names), 1), 2, figsize=(9, 2.6 * max(len(names), 1)), squeeze=False)
    for row, name in zip(axes, names, strict=False):
        measured = [point for point in points if name in point]
        for axis, x_key, label in ((row[0], "wall_s", "wall minutes"), (row[1], "step", "steps")):
            scale = 60 if x_key == "wall_s" else 1
            axis.plot([p[x_key] / scale for p in measured], [p[name] for p in measured], marker=".")
            axis.set_xlabel(label)
            axis.set_ylabel(name)
            axis.grid(alpha=0.3)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=80)
    plt.close(figure)
    return buffer.getvalue()


class AverageCheckpoints(L.Callback):
    """The mean of the module's weights at the end of its last ``last`` training epochs, written when the fit
    ends as ``<checkpoint dir>/averaged.ckpt`` with the module's header (no metrics: score it with ``mms2s test``).
    Integer buffers (counters) are the latest epoch's. Costs ``last`` CPU copies of the weights."""

    def __init__(self, last: int = 5) -> None:
        if isinstance(last, bool) or not isinstance(last, int) or last < 1:
            raise ValueError(f"AverageCheckpoints last must be an integer >= 1, got {last!r}")
        self.kept: deque[dict[str, Tensor]] = deque(maxlen=last)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.kept.append({key: value.detach().to("cpu", copy=True) for key, value in pl_module.state_dict().items()})

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self.kept or trainer.log_dir is None:
            return
        folder = Path(trainer.checkpoint_callback.dirpath) if trainer.checkpoint_callback else Path(trainer.log_dir)
        self.write(folder / AVERAGED_NAME, pl_module, trainer.global_step)

    @rank_zero_only
    def write(self, path: Path, pl_module: L.LightningModule, global_step: int) -> None:
        header = replace(pl_module.header, metrics={})
        save_suite_checkpoint(path, header, average(list(self.kept)), global_step)


def average(states: list[dict[str, Tensor]]) -> dict[str, Tensor]:
    """The element-wise mean of floating-point entries over ``states`` (in their dtype); other entries
    (integer counters) from the last state."""
    mean = {}
    for key, last in states[-1].items():
        if last.is_floating_point():
            mean[key] = torch.stack([state[key].float() for state in states]).mean(0).to(last.dtype)
        else:
            mean[key] = last
    return mean
