"""Where ``mms2s predict`` puts its outputs: one JSON record per example in the run's folder.

``PredictionWriter`` (a Lightning ``BasePredictionWriter``, added by ``mms2s predict``) appends each
batch's records to a hidden file and writes ``predictions.jsonl`` from it atomically when the run ends, so
an interrupted run leaves no truncated file under the final name. Text tasks' records hold the id, the
prediction, its score and the references; segmentation records the id, a label PNG (palette
coloured, under ``labels/``) and the share of each class. Under DDP each rank writes its share, with
each example's index in the predict set, into a hidden file of its own; when all are done, rank 0 merges
them into one ``predictions.jsonl`` in input order and removes them (the ranks must share the run's
folder: one machine, or a file system the nodes share).
"""

from __future__ import annotations

import json
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
        self.used_names: set[str] = set()

    def on_predict_start(self, trainer, pl_module) -> None:
        self.folder = Path(self.output_dir or trainer.log_dir or trainer.default_root_dir)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.file = rank_file(self.folder, trainer.global_rank).open("w", encoding="utf-8")

    def write_on_batch_end(self, trainer, pl_module, prediction, batch_indices, batch, batch_idx, dataloader_idx):
        if len(batch_indices) != len(prediction):
            raise RuntimeError(f"predict batch {batch_idx}: {len(prediction)} records but {len(batch_indices)} indices")
        for index, record in zip(batch_indices, prediction, strict=True):
            if "labels" in record:
                record = self._label_record(record, np.asarray(pl_module.header.labels.palette, dtype=np.uint8),
                                            pl_module.header.labels.class_names)
            self.file.write(f"{index}\t{json.dumps(record, ensure_ascii=False)}\n")

    def on_predict_end(self, trainer, pl_module) -> None:
        self.file.close()
        trainer.strategy.barrier("predictions written")
        if trainer.is_global_zero:
            parts = [rank_file(self.folder, rank) for rank in range(trainer.world_size)]
            target = self.folder / PREDICTIONS_FILE
            atomic_write(target, lambda file: file.writelines(merged_records(parts)))
            for part in parts:
                part.unlink()
            print(f"predictions: {target}")
        trainer.strategy.barrier("predictions merged")

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        if self.file is not None and not self.file.closed:
            self.file.close()
            rank_file(self.folder, trainer.global_rank).unlink(missing_ok=True)

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


def rank_file(folder: Path, rank: int) -> Path:
    """The hidden file where ``rank`` writes its predictions, one ``index<TAB>record`` line each."""
    return folder / f".predictions.rank{rank}.partial"


def merged_records(parts: list[Path]) -> list[bytes]:
    """The records of every rank's file as JSON lines, in the order of their indices in the predict set."""
    indexed = []
    for part in parts:
        for line in part.read_text(encoding="utf-8").splitlines(keepends=True):
            index, record = line.split("\t", 1)
            indexed.append((int(index), record.encode("utf-8")))
    return [record for _index, record in sorted(indexed, key=lambda pair: pair[0])]
