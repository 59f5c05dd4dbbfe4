"""Where ``mms2s predict`` puts its outputs: one JSON record per example in the run's folder.

``PredictionWriter`` (a Lightning ``BasePredictionWriter``, added by ``mms2s predict``) appends each
batch's records to a temporary file and renames it to ``predictions.jsonl`` when the run ends, so an
interrupted run leaves no truncated file under the final name. Text tasks' records hold the id, the
prediction, its score and the references; segmentation records the id, a label PNG (palette
coloured, under ``labels/``) and the share of each class. Under DDP each rank writes its own file
(``predictions.rank<N>.jsonl``).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from lightning.pytorch.callbacks import BasePredictionWriter

from multimodal_s2s.outputs import atomic_write
from multimodal_s2s.pipelines.segmentation import class_fractions, label_image

PREDICTIONS_FILE = "predictions.jsonl"
LABELS_FOLDER = "labels"


class PredictionWriter(BasePredictionWriter):
    """Writes predict outputs into ``output_dir`` (default: the run's log folder)."""

    def __init__(self, output_dir: str | None = None):
        super().__init__(write_interval="batch")
        self.output_dir = output_dir
        self.folder: Path | None = None
        self.file = None
        self.temporary: str | None = None
        self.used_names: set[str] = set()

    def on_predict_start(self, trainer, pl_module) -> None:
        self.folder = Path(self.output_dir or trainer.log_dir or trainer.default_root_dir)
        self.folder.mkdir(parents=True, exist_ok=True)
        handle, self.temporary = tempfile.mkstemp(dir=self.folder, prefix=".predictions.", suffix=".partial")
        self.file = os.fdopen(handle, "w", encoding="utf-8")

    def write_on_batch_end(self, trainer, pl_module, prediction, batch_indices, batch, batch_idx, dataloader_idx):
        for record in prediction:
            if "labels" in record:
                record = self._label_record(record, np.asarray(pl_module.header.labels.palette, dtype=np.uint8),
                                            pl_module.header.labels.class_names)  # fmt: skip
            self.file.write(json.dumps(record, ensure_ascii=False) + "\n")

    def on_predict_end(self, trainer, pl_module) -> None:
        self.file.close()
        name = PREDICTIONS_FILE if trainer.world_size == 1 else f"predictions.rank{trainer.global_rank}.jsonl"
        target = self.folder / name
        os.replace(self.temporary, target)
        print(f"predictions: {target}")

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        if self.file is not None and not self.file.closed:
            self.file.close()
            Path(self.temporary).unlink(missing_ok=True)

    def _label_record(self, record: dict[str, Any], palette: np.ndarray, class_names) -> dict[str, Any]:
        """Save the label map as a PNG; the record names it and gives each class's share of the pixels."""
        labels = record["labels"]
        name = self._unique_name(Path(str(record["id"])).stem)
        relative = Path(LABELS_FOLDER) / f"{name}.png"
        image = label_image(labels, palette)
        atomic_write(self.folder / relative, lambda file: image.save(file, format="PNG"))
        fractions = {name: round(share, 5) for name, share in class_fractions(labels, list(class_names)).items()}
        return {"id": record["id"], "labels": str(relative), "class_fractions": fractions}

    def _unique_name(self, stem: str) -> str:
        name, number = stem, 1
        while name in self.used_names:
            number += 1
            name = f"{stem}-{number}"
        self.used_names.add(name)
        return name
