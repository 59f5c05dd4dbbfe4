"""DataLoaders shared by the data modules: shuffled training batches (optionally of similar lengths, or
of a token budget) and evaluation batches in order.

Under DDP, Lightning puts a DistributedSampler under the training loaders (inside
``LengthBucketBatchSampler`` too): every rank gets the same number of indices, hence the same number of
batches. Evaluation loaders split the examples between the ranks themselves, without the repeated
examples that a DistributedSampler pads with, so that metrics reduced over the ranks count each example
exactly once. Token-budget batches (``TokenBudgetBatchSampler``) differ in count between ranks, so each
epoch every rank keeps the smallest count of any rank. ``num_workers`` None: ``threads.default_num_workers()``."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler
from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler, Sampler

from multimodal_s2s.threads import default_num_workers

#: A length-bucketing pool holds this many batches: sorted by length inside, shuffled across.
BUCKET_POOL_BATCHES = 50
#: A token-budget pool holds this many examples (fairseq sorts the whole set; pools keep some randomness).
TOKEN_POOL_EXAMPLES = 4096


class LengthBucketBatchSampler(BatchSampler):
    """Batches of similar source lengths, in random order: the indices of ``sampler`` are cut into pools
    of ``pool_batches`` batches, each pool is sorted by length and cut into batches, and the batches are
    shuffled. Less padding, so RNNs run faster; the pools keep the randomness. A ``BatchSampler`` with a
    ``sampler`` argument, so that Lightning can put a DistributedSampler under it on several devices."""

    def __init__(
        self,
        sampler: Any,
        batch_size: int,
        drop_last: bool,
        lengths: Sequence[int],
        pool_batches: int = BUCKET_POOL_BATCHES,
    ):
        super().__init__(sampler, batch_size, drop_last)
        self.lengths, self.pool_batches = lengths, pool_batches

    def __iter__(self) -> Iterator[list[int]]:
        indices, pool_size = list(self.sampler), self.batch_size * self.pool_batches
        batches = []
        for start in range(0, len(indices), pool_size):  # only the last pool can end in a partial batch
            pool = sorted(indices[start : start + pool_size], key=self.lengths.__getitem__)
            batches += [pool[i : i + self.batch_size] for i in range(0, len(pool), self.batch_size)]
        if self.drop_last and batches and len(batches[-1]) < self.batch_size:
            batches.pop()
        for position in torch.randperm(len(batches)).tolist():
            yield batches[position]


class TokenBudgetBatchSampler(BatchSampler):
    """Batches of at most ``max_tokens`` padded tokens (fairseq's ``--max-tokens``): the indices of ``sampler``
    are cut into pools of ``pool_examples``, each pool is sorted by length and cut greedily into batches whose
    size times their longest example stays within the budget (an example longer than the budget is a batch
    of its own), and the batches are shuffled. Short sentences make big batches and long ones small, so every
    step sees about the same number of tokens. ``lengths``: one per example, in tokens (a pair's longer side).
    ``len()`` is the count of a plan drawn once with a fixed seed, and every epoch yields exactly that many:
    Lightning validates at an epoch's ``len()``-th batch, so an epoch one batch short would skip its
    validation. An epoch whose plan has more drops the surplus; one with fewer repeats some of its batches.
    Every DDP rank plans the same count from the same lengths, so the ranks step together."""

    def __init__(
        self, sampler: Any, max_tokens: int, lengths: Sequence[int], pool_examples: int = TOKEN_POOL_EXAMPLES
    ):
        super().__init__(sampler, batch_size=1, drop_last=False)
        self.max_tokens, self.lengths, self.pool_examples = max_tokens, lengths, pool_examples
        planned = torch.randperm(len(lengths), generator=torch.Generator().manual_seed(0)).tolist()
        self.planned_batches = len(self._batches(planned[: len(sampler)]))

    def _batches(self, indices: list[int]) -> list[list[int]]:
        batches: list[list[int]] = []
        for start in range(0, len(indices), self.pool_examples):
            batch: list[int] = []
            for index in sorted(indices[start : start + self.pool_examples], key=self.lengths.__getitem__):
                if batch and (len(batch) + 1) * self.lengths[index] > self.max_tokens:
                    batches.append(batch)
                    batch = []
                batch.append(index)
            batches += [batch] if batch else []
        return batches

    def __len__(self) -> int:
        return self.planned_batches

    def __iter__(self) -> Iterator[list[int]]:
        batches = self._batches(list(self.sampler))
        order = torch.randperm(len(batches)).tolist()
        while len(order) < self.planned_batches:
            order += torch.randperm(len(batches)).tolist()
        for position in order[: self.planned_batches]:
            yield batches[position]


def training_loader(
    dataset: Dataset,
    batch_size: int,
    num_workers: int | None,
    collate_fn: Callable | None = None,
    lengths: Sequence[int] | None = None,
    max_tokens: int | None = None,
) -> DataLoader:
    """Shuffled batches of ``batch_size``, the last partial one dropped; with ``lengths`` (one per
    example), batches of similar lengths (``LengthBucketBatchSampler``), which cuts padding; with
    ``max_tokens`` too, batches of at most that many padded tokens instead (``TokenBudgetBatchSampler``)."""
    common = _common(num_workers, collate_fn)
    if lengths is None:
        return DataLoader(dataset, batch_size=batch_size, shuffle=True, drop_last=True, **common)
    if max_tokens is not None:
        batches = TokenBudgetBatchSampler(RandomSampler(dataset), max_tokens, lengths)
    else:
        batches = LengthBucketBatchSampler(RandomSampler(dataset), batch_size, drop_last=True, lengths=lengths)
    return DataLoader(dataset, batch_sampler=batches, **common)


def evaluation_loader(
    dataset: Dataset, batch_size: int, num_workers: int | None, collate_fn: Callable | None = None
) -> DataLoader:
    """Every example once, in order; under torch.distributed, each rank its own examples (rank r of W:
    r, r + W, ...), none repeated, so the ranks may get one batch more or less than each other."""
    sampler = evaluation_sampler(dataset)
    common = _common(num_workers, collate_fn)
    return DataLoader(dataset, batch_size=batch_size, shuffle=False, sampler=sampler, **common)


def evaluation_sampler(dataset: Dataset) -> Sampler | None:
    """Lightning's unrepeated split when a process group of several ranks is running, else None (in order)."""
    distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
    if not distributed or torch.distributed.get_world_size() == 1:
        return None
    return UnrepeatedDistributedSampler(dataset, shuffle=False)


def _common(num_workers: int | None, collate_fn: Callable | None) -> dict[str, Any]:
    num_workers = default_num_workers() if num_workers is None else num_workers
    return {
        "collate_fn": collate_fn,
        "num_workers": num_workers,
        "persistent_workers": num_workers > 0,
        "pin_memory": torch.cuda.is_available(),
    }
