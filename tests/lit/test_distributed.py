"""DDP at the unit level, in 2 gloo processes on the CPU: the length-bucketed training batches give every
rank its share and the same number of batches (no rank waits for another forever); evaluation splits the
examples between the ranks without repeating any, and every metric reduced over the ranks equals the
single-process figure on the same examples."""

from __future__ import annotations

import json
import random
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from lightning.fabric.utilities.data import _replace_dunder_methods, _set_sampler_epoch
from lightning.pytorch.trainer.connectors.data_connector import _get_distributed_sampler
from lightning.pytorch.utilities.data import _update_dataloader
from torch.utils.data import BatchSampler, DataLoader

from multimodal_s2s.data.loaders import evaluation_loader, training_loader
from multimodal_s2s.lit.predictions import merged_records, rank_file
from multimodal_s2s.metrics.segmentation import SegmentationMetrics
from multimodal_s2s.metrics.text import TEXT_METRICS

WORLD_SIZE = 2
TRAIN_SIZE, TRAIN_BATCH = 203, 8  # 102 indices a rank (one repeated to even them out), 12 full batches
EVAL_SIZE, EVAL_BATCH = 11, 2  # 6 examples on rank 0, 5 on rank 1
NUM_CLASSES = 4
WORDS = ["a", "red", "blue", "circle", "square", "left", "of", "above", "large", "small"]


def evaluation_examples() -> list[dict]:
    """EVAL_SIZE examples with a hypothesis, references and a (pred, target) label map, from a fixed seed."""
    rng, generator = random.Random(0), torch.Generator().manual_seed(0)
    examples = []
    for index in range(EVAL_SIZE):
        references = [" ".join(rng.choices(WORDS, k=rng.randint(3, 7))) for _ in range(2)]
        hypothesis = references[0] if index % 3 == 0 else " ".join(rng.choices(WORDS, k=rng.randint(2, 7)))
        labels = torch.randint(0, NUM_CLASSES, (2, 5, 6), generator=generator)
        examples.append({"index": index, "hypothesis": hypothesis, "references": references, "labels": labels})
    return examples


def collate(examples: list[dict]) -> dict:
    return {
        "index": [e["index"] for e in examples],
        "hypotheses": [e["hypothesis"] for e in examples],
        "references": [e["references"] for e in examples],
        "preds": torch.stack([e["labels"][0] for e in examples]),
        "target": torch.stack([e["labels"][1] for e in examples]),
    }


def evaluate(loader) -> tuple[list[int], dict[str, float]]:
    """Every text metric and the segmentation metrics over ``loader`` -> (indices seen, figures)."""
    text_metrics = [metric() for metric in TEXT_METRICS.values()]
    segmentation = SegmentationMetrics(NUM_CLASSES)
    seen = []
    for batch in loader:
        seen += batch["index"]
        for metric in text_metrics:
            metric.update(batch["hypotheses"], batch["references"])
        segmentation.update(batch["preds"], batch["target"])
    figures = {key: value for metric in text_metrics for key, value in metric.compute().items()}
    scores = segmentation.compute()
    figures.update({key: float(scores[key]) for key in ("global_acc", "class_avg_acc", "miou")})
    return seen, figures


def lightning_training_loader(lengths: list[int]) -> DataLoader:
    """``training_loader`` as Lightning's DDP fit makes it: built under Lightning's argument capture, then
    re-built with the DistributedSampler that Lightning puts under the batch sampler."""
    with _replace_dunder_methods(DataLoader, "dataset"), _replace_dunder_methods(BatchSampler):
        loader = training_loader(list(range(len(lengths))), TRAIN_BATCH, 0, lengths=lengths)
    sampler = _get_distributed_sampler(loader, shuffle=True, overfit_batches=0, seed=0)
    return _update_dataloader(loader, sampler)


def rank_main(rank: int, init_file: str, out_dir: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD_SIZE)
    try:
        lengths = [random.Random(index).randint(1, 50) for index in range(TRAIN_SIZE)]
        loader = lightning_training_loader(lengths)
        epochs = []
        for epoch in range(2):
            _set_sampler_epoch(loader, epoch)  # as Lightning's fit loop does each epoch
            share = list(loader.batch_sampler.sampler)  # this rank's indices in this epoch
            epochs.append({"share": share, "batches": [[int(i) for i in batch] for batch in loader]})
        seen, figures = evaluate(evaluation_loader(evaluation_examples(), EVAL_BATCH, 0, collate))
        result = {"train_epochs": epochs, "eval_seen": seen, "figures": figures}
        Path(out_dir, f"rank{rank}.json").write_text(json.dumps(result))
    finally:
        dist.destroy_process_group()


def test_two_gloo_ranks_share_training_batches_and_count_evaluation_once(tmp_path):
    mp.spawn(rank_main, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=WORLD_SIZE, join=True)
    ranks = [json.loads((tmp_path / f"rank{rank}.json").read_text()) for rank in range(WORLD_SIZE)]

    # Training: every rank the same number of full batches, drawn from its own share of the indices.
    per_rank = -(-TRAIN_SIZE // WORLD_SIZE)
    for epoch in range(2):
        shares = [rank["train_epochs"][epoch]["share"] for rank in ranks]
        for share, rank in zip(shares, ranks, strict=True):
            batches = rank["train_epochs"][epoch]["batches"]
            assert len(share) == per_rank
            assert len(batches) == per_rank // TRAIN_BATCH and all(len(b) == TRAIN_BATCH for b in batches)
            drawn = [index for batch in batches for index in batch]
            assert len(set(drawn)) == len(drawn) and set(drawn) <= set(share)
        assert set(shares[0]) | set(shares[1]) == set(range(TRAIN_SIZE))
        assert len(set(shares[0]) & set(shares[1])) == per_rank * WORLD_SIZE - TRAIN_SIZE  # only the padding
    for rank in ranks:  # set_epoch reached the sampler under the batch sampler: a new order each epoch
        assert rank["train_epochs"][0]["share"] != rank["train_epochs"][1]["share"]

    # Evaluation: each example on exactly one rank; reduced figures equal one process over all examples.
    seen = sorted(index for rank in ranks for index in rank["eval_seen"])
    assert seen == list(range(EVAL_SIZE))
    _, single = evaluate(DataLoader(evaluation_examples(), batch_size=EVAL_BATCH, collate_fn=collate))
    for rank in ranks:
        assert rank["figures"].keys() == single.keys()
        for key, value in single.items():
            assert abs(rank["figures"][key] - value) < 1e-6, (key, rank["figures"][key], value)


def test_predictions_of_the_ranks_merge_in_input_order(tmp_path):
    """Rank r of W predicted examples r, r + W, ... (Lightning's unrepeated split); the merged file has
    each record once, in the order of the examples."""
    records = [{"id": f"example-{index}", "prediction": str(index)} for index in range(EVAL_SIZE)]
    parts = [rank_file(tmp_path, rank) for rank in range(WORLD_SIZE)]
    for rank, part in enumerate(parts):
        lines = [f"{index}\t{json.dumps(records[index])}\n" for index in range(rank, EVAL_SIZE, WORLD_SIZE)]
        part.write_text("".join(lines))
    merged = [json.loads(line) for line in merged_records(parts)]
    assert merged == records
