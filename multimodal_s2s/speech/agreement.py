"""LocalAgreement-2 (ufal's whisper_streaming): of a buffer decoded again and again as audio arrives, the
words that two consecutive passes agree on are final.

Words are compared by their normalized text (``metrics.text.normalize_transcript``: case and punctuation
do not count); the words committed are the later pass's (its times). A pass re-decodes audio whose first
words may be committed already: ``new_words`` drops them, by text where the pass repeats them, else by time
(and a repeat of the last committed words right after them).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from multimodal_s2s.metrics.text import normalize_transcript
from multimodal_s2s.speech.word_timing import Word

#: The most words at the end of the committed ones that a pass may repeat after them (whisper_streaming: 5).
MAX_OVERLAP_WORDS = 5


def same_words(first: Sequence[Word], second: Sequence[Word]) -> bool:
    return [normalize_transcript(w.word) for w in first] == [normalize_transcript(w.word) for w in second]


def agreed_prefix(previous: Sequence[Word], current: Sequence[Word]) -> list[Word]:
    """The longest prefix of ``current`` that ``previous`` starts with too (by normalized text)."""
    count = 0
    for before, now in zip(previous, current, strict=False):
        if normalize_transcript(before.word) != normalize_transcript(now.word):
            break
        count += 1
    return list(current[:count])


def new_words(words: Sequence[Word], utterance: Sequence[Word], committed: Sequence[Word]) -> list[Word]:
    """The words of a pass that come after the committed ones: after ``utterance`` (the words committed from
    the same stretch of audio) where the pass starts with them; otherwise the words whose middle lies after
    the last of ``committed`` (all the words committed so far), less a repeat of its last words (up to
    MAX_OVERLAP_WORDS: a pass that starts where the last cut was hears the end of the word before it)."""
    if utterance and same_words(words[: len(utterance)], utterance):
        return list(words[len(utterance) :])
    committed_end = committed[-1].end if committed else -math.inf
    later = [w for w in words if (w.start + w.end) / 2 > committed_end]
    for size in range(min(MAX_OVERLAP_WORDS, len(committed), len(later)), 0, -1):
        if same_words(later[:size], committed[-size:]):
            return later[size:]
    return later
