"""Word-level timestamps of a decoded window: from the decoder's cross-attention (dynamic time warping, as
whisper does) or from CTC forced alignment with the checkpoint's CTC head.

Memory row r of a window starts ``r * seconds_per_row`` after the window's first sample, where
``seconds_per_row`` comes from the encoder's declared ``EncoderInfo.frames_per_row`` (its time
subsampling) and the 100 log-mel frames per second of ``audio``.

Cross-attention (``attention_word_timestamps``): one teacher-forced decoder pass over BOS and the decoded
tokens gives, for the step predicting each token and the EOS, the cross-attention over the valid memory
rows (last layer, mean over heads) and the token's probability. As in whisper, the weights are
standardized over tokens for each row, median-filtered along time, and the cheapest monotonic path
through their negative (DTW) assigns rows to tokens: a token starts at its first row. A word spans from
its first token's start to the start of the token after it (the EOS row takes trailing silence).

CTC (``ctc_word_timestamps``): ``torchaudio.functional.forced_align`` aligns the tokens to the CTC head's
log-probabilities (blank = PAD); a word spans its tokens' frames.

Tokens are grouped into words by decoding growing prefixes, so that characters (with space tokens),
byte-level BPE pieces and whole words all work. A word's probability is the mean of its tokens'.
Words are in order, do not overlap, and lie inside their window.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from scipy.ndimage import median_filter
from torch import Tensor
from torchaudio.functional import forced_align, merge_tokens

from multimodal_s2s.decoding.stepper import TextModel
from multimodal_s2s.preprocessing.audio import FRAMES_PER_SECOND
from multimodal_s2s.tokenizers import Tokenizer
from multimodal_s2s.types import BOS_ID, CTC_BLANK_ID, PAD_ID, EncoderInfo, SequenceOutput

#: whisper's median filter width over memory rows.
MEDIAN_FILTER_WIDTH = 7
MIN_STD = 1e-6
#: Times (s) of words, segments and durations are rounded to milliseconds.
TIME_DIGITS = 3


class AlignmentError(ValueError):
    """Word timestamps cannot be computed (an encoder whose rows are not time steps)."""


@dataclass
class Word:
    """A word of a transcript; start and end in seconds from the start of the recording."""

    word: str
    start: float
    end: float
    probability: float


@dataclass(frozen=True)
class WindowTokens:
    """A decoded window: its tokens (no BOS / EOS) and its place in the recording, in seconds."""

    tokens: list[int]
    start: float
    end: float


def seconds_per_row(info: EncoderInfo) -> float:
    """Seconds of audio per memory row, from the encoder's declared time subsampling."""
    if info.frames_per_row is None:
        raise AlignmentError(
            f"word timestamps need an encoder whose memory rows are time steps; this {info.modality.value} "
            "encoder does not declare frames_per_row"
        )
    return info.frames_per_row / FRAMES_PER_SECOND


def word_groups(tokens: Sequence[int], tokenizer: Tokenizer) -> list[tuple[str, list[int]]]:
    """The words of ``tokenizer.decode(tokens)``, each with the positions of the tokens that spell it
    (a token that only adds white space belongs to no word)."""
    groups: list[tuple[str, list[int]]] = []
    for position in range(len(tokens)):
        prefix = tokenizer.decode(tokens[: position + 1])
        if not prefix or prefix[-1].isspace():
            continue
        words = prefix.split()
        if len(words) > len(groups):
            groups.append((words[-1], [position]))
        else:
            groups[-1] = (words[-1], [*groups[-1][1], position])
    return groups


@torch.no_grad()
def attention_and_probabilities(
    model: TextModel, encoded: SequenceOutput, token_lists: Sequence[list[int]]
) -> list[tuple[Tensor, Tensor]]:
    """One teacher-forced pass over the B windows of ``encoded`` (B, T, D): for each window, the cross-attention
    (L + 1, T_valid) of the steps predicting its L tokens and the EOS, and the probabilities (L,) of its tokens."""
    width = max(len(tokens) for tokens in token_lists) + 1
    inputs = torch.full((len(token_lists), width), PAD_ID, dtype=torch.long, device=encoded.memory.device)
    inputs[:, 0] = BOS_ID
    for row, tokens in enumerate(token_lists):
        inputs[row, 1 : len(tokens) + 1] = torch.as_tensor(tokens, dtype=torch.long)
    output = model.step(inputs, encoded, None, return_attention=True)
    if output.attention is None:
        raise AlignmentError("word timestamps from attention need a decoder that attends to the encoder")
    probabilities = output.logits.float().softmax(dim=-1)  # (B, W, V)
    results = []
    for row, tokens in enumerate(token_lists):
        length = len(tokens)
        valid = encoded.mask[row]
        attention = output.attention[row, : length + 1][:, valid].float().cpu()  # (L + 1, T_valid)
        targets = inputs[row, 1 : length + 1]
        token_probabilities = probabilities[row, torch.arange(length, device=targets.device), targets].cpu()  # (L,)
        results.append((attention, token_probabilities))
    return results


def dtw_path(cost: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The cheapest monotonic path from (0, 0) to (N - 1, M - 1) through ``cost`` (N, M), with steps
    (1, 1), (1, 0) and (0, 1): its row and column indices, in order.

    Each row of the accumulated cost is computed at once: ``D[i, j] = min over k <= j of
    (min(D[i-1, k-1], D[i-1, k]) + sum of cost[i, k..j])``, a running minimum over prefix sums.
    """
    rows, columns = cost.shape
    accumulated = np.empty((rows, columns))
    from_above = np.full(columns, np.inf)
    from_above[0] = 0.0
    for i in range(rows):
        prefix = np.cumsum(cost[i])
        before = np.r_[0.0, prefix[:-1]]
        accumulated[i] = prefix + np.minimum.accumulate(from_above - before)
        from_above = np.minimum(accumulated[i], np.r_[np.inf, accumulated[i, :-1]])
    return _backtrack(accumulated)


def _backtrack(accumulated: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    i, j = accumulated.shape[0] - 1, accumulated.shape[1] - 1
    path = [(i, j)]
    while i > 0 or j > 0:
        steps = [(i - 1, j - 1), (i - 1, j), (i, j - 1)]
        i, j = min((s for s in steps if s[0] >= 0 and s[1] >= 0), key=lambda s: accumulated[s])
        path.append((i, j))
    indices = np.array(path[::-1])
    return indices[:, 0], indices[:, 1]


def token_start_rows(attention: Tensor, filter_width: int = MEDIAN_FILTER_WIDTH) -> np.ndarray:
    """attention (L + 1, T) -> (L + 1,) the first memory row of each token (and of the EOS), non-decreasing."""
    weights = attention.double().numpy()
    std, mean = weights.std(axis=0, keepdims=True), weights.mean(axis=0, keepdims=True)
    weights = (weights - mean) / np.maximum(std, MIN_STD)  # standardized over tokens, as in whisper
    weights = median_filter(weights, size=(1, filter_width), mode="nearest")
    token_index, row_index = dtw_path(-weights)
    first = np.r_[True, np.diff(token_index) > 0]  # each token's first step on the path
    return row_index[first]


def attention_word_timestamps(
    model: TextModel,
    encoded: SequenceOutput,
    windows: Sequence[WindowTokens],
    tokenizer: Tokenizer,
    row_seconds: float,
) -> list[list[Word]]:
    """Words with timestamps of each window of ``encoded`` (B windows) from the decoder's cross-attention."""
    results: list[list[Word]] = [[] for _ in windows]
    spoken = [index for index, window in enumerate(windows) if window.tokens]
    if not spoken:
        return results
    rows = torch.tensor(spoken, device=encoded.memory.device)
    subset = SequenceOutput(memory=encoded.memory[rows], mask=encoded.mask[rows])
    aligned = attention_and_probabilities(model, subset, [windows[index].tokens for index in spoken])
    for index, (attention, probabilities) in zip(spoken, aligned, strict=True):
        starts = token_start_rows(attention) * row_seconds  # (L + 1,) seconds from the window's start
        spans = [(float(starts[i]), float(starts[i + 1])) for i in range(len(starts) - 1)]
        results[index] = _words(windows[index], tokenizer, spans, probabilities.tolist())
    return results


def ctc_word_timestamps(
    log_probs: Tensor, window: WindowTokens, tokenizer: Tokenizer, row_seconds: float
) -> list[Word] | None:
    """Words of one window from CTC forced alignment: log_probs (T_valid, V) of the CTC head over the window's
    valid memory rows. None when the tokens cannot fit the rows (CTC needs a row per token and repeat)."""
    if not window.tokens:
        return []
    targets = torch.tensor([window.tokens], dtype=torch.int32)
    try:
        alignment, scores = forced_align(log_probs[None].float().cpu(), targets, blank=CTC_BLANK_ID)
    except RuntimeError:
        return None
    token_spans = merge_tokens(alignment[0], scores[0].exp(), blank=CTC_BLANK_ID)  # one span per token
    spans = [(span.start * row_seconds, span.end * row_seconds) for span in token_spans]
    return _words(window, tokenizer, spans, [span.score for span in token_spans])


def _words(
    window: WindowTokens, tokenizer: Tokenizer, spans: list[tuple[float, float]], probabilities: list[float]
) -> list[Word]:
    """Words of ``window`` from each token's (start, end) seconds after the window's start and probability;
    clipped to the window, in order and not overlapping."""
    words, previous_end = [], window.start
    for text, positions in word_groups(window.tokens, tokenizer):
        start = min(max(window.start + spans[positions[0]][0], previous_end), window.end)
        end = min(max(window.start + spans[positions[-1]][1], start), window.end)
        probability = float(np.mean([probabilities[p] for p in positions]))
        words.append(Word(text, round(start, TIME_DIGITS), round(end, TIME_DIGITS), round(probability, TIME_DIGITS)))
        previous_end = end
    return words
