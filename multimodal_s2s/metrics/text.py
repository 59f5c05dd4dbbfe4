"""Text-output metrics over well-kept libraries: BLEU (torchmetrics / sacreBLEU), CIDEr-D
(pycocoevalcap), WER/CER (torchmetrics, after ``normalize_transcript``) and exact match.

Every metric here takes ``update(hypotheses: list[str], references: list[list[str]])``
(several references per hypothesis), ``compute() -> dict[str, float]`` on a 0-100 scale
(CIDEr x 100, WER/CER as percentages) and ``reset()``. Each is an ``nn.Module`` so that a
LightningModule that holds them (``nn.ModuleList``) moves their states to its device, where the
process group reduces them (NCCL reduces GPU tensors only). Under torch.distributed, ``compute()``
returns the figure over every rank's examples: the torchmetrics inside sum their states across
processes themselves, CIDEr-D gathers its pairs (its document frequencies need the whole corpus).
"""

from __future__ import annotations

import re
import unicodedata

import torch.distributed as dist
from torch import nn
from torchmetrics import MeanMetric
from torchmetrics.text import BLEUScore, CharErrorRate, SacreBLEUScore, WordErrorRate


def normalize_transcript(text: str) -> str:
    """The text normalization behind WER/CER: Unicode NFKC, lower case, apostrophes kept,
    other punctuation removed, white space collapsed."""
    text = unicodedata.normalize("NFKC", text).lower()
    text = re.sub(r"[^\w\s']", " ", text)
    return " ".join(text.split())


def normalize_caption(text: str) -> str:
    """Lower case, punctuation split off as in the usual caption evaluation."""
    text = re.sub(r"([.,!?;:\"()])", r" \1 ", text.lower())
    return " ".join(text.split())


class CaptionBLEU(nn.Module):
    """BLEU-1..4 over all references (torchmetrics BLEUScore), keys bleu1..bleu4."""

    def __init__(self):
        super().__init__()
        self.scorers = nn.ModuleList([BLEUScore(n_gram=n) for n in range(1, 5)])

    def update(self, hypotheses: list[str], references: list[list[str]]) -> None:
        hyps = [normalize_caption(h) for h in hypotheses]
        refs = [[normalize_caption(r) for r in rs] for rs in references]
        for scorer in self.scorers:
            scorer.update(hyps, refs)

    def compute(self) -> dict[str, float]:
        return {f"bleu{n}": 100 * float(s.compute()) for n, s in enumerate(self.scorers, start=1)}

    def reset(self) -> None:
        for scorer in self.scorers:
            scorer.reset()


class CIDErD(nn.Module):
    """CIDEr-D (Vedantam et al. 2015; pycocoevalcap's Cider, with clipping and the length
    penalty), document frequencies from the evaluated references. Key ``cider`` (x100)."""

    def __init__(self):
        super().__init__()
        self.pairs: list[tuple[str, list[str]]] = []

    def update(self, hypotheses: list[str], references: list[list[str]]) -> None:
        for hyp, refs in zip(hypotheses, references, strict=True):
            self.pairs.append((normalize_caption(hyp), [normalize_caption(r) for r in refs]))

    def compute(self) -> dict[str, float]:
        from pycocoevalcap.cider.cider import Cider

        pairs = self.pairs
        if dist.is_available() and dist.is_initialized():
            gathered: list = [None] * dist.get_world_size()
            dist.all_gather_object(gathered, pairs)
            pairs = [p for part in gathered for p in part]
        if not pairs:
            return {"cider": 0.0}
        gts = {i: refs for i, (_, refs) in enumerate(pairs)}
        res = {i: [hyp] for i, (hyp, _) in enumerate(pairs)}
        score, _ = Cider().compute_score(gts, res)
        return {"cider": 100 * float(score)}

    def reset(self) -> None:
        self.pairs = []


class CorpusBLEU(nn.Module):
    """sacreBLEU corpus BLEU (13a tokenization) on detokenized text, key ``bleu``."""

    def __init__(self):
        super().__init__()
        self.scorer = SacreBLEUScore(tokenize="13a")

    def update(self, hypotheses: list[str], references: list[list[str]]) -> None:
        self.scorer.update(hypotheses, references)

    def compute(self) -> dict[str, float]:
        return {"bleu": 100 * float(self.scorer.compute())}

    def reset(self) -> None:
        self.scorer.reset()


class ErrorRates(nn.Module):
    """WER and CER in percent after ``normalize_transcript``, against the first reference."""

    def __init__(self):
        super().__init__()
        self.wer, self.cer = WordErrorRate(), CharErrorRate()

    def update(self, hypotheses: list[str], references: list[list[str]]) -> None:
        hyps = [normalize_transcript(h) for h in hypotheses]
        refs = [normalize_transcript(r[0]) for r in references]
        self.wer.update(hyps, refs)
        self.cer.update(hyps, refs)

    def compute(self) -> dict[str, float]:
        return {"wer": 100 * float(self.wer.compute()), "cer": 100 * float(self.cer.compute())}

    def reset(self) -> None:
        self.wer.reset()
        self.cer.reset()


class ExactMatch(nn.Module):
    """Share of hypotheses equal to one of their references (white space normalized), key ``exact_match``."""

    def __init__(self):
        super().__init__()
        self.mean = MeanMetric()

    def update(self, hypotheses: list[str], references: list[list[str]]) -> None:
        for hyp, refs in zip(hypotheses, references, strict=True):
            self.mean.update(float(" ".join(hyp.split()) in {" ".join(r.split()) for r in refs}))

    def compute(self) -> dict[str, float]:
        return {"exact_match": 100 * float(self.mean.compute())}

    def reset(self) -> None:
        self.mean.reset()


TEXT_METRICS = {
    "bleu": CaptionBLEU,
    "cider": CIDErD,
    "sacrebleu": CorpusBLEU,
    "wer": ErrorRates,
    "exact_match": ExactMatch,
}
