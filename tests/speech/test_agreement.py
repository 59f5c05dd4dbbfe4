"""LocalAgreement-2's word matching (``speech.agreement``): the prefix two passes agree on, and the words of a
pass that come after the committed ones (by text where the pass repeats them, else by time)."""

from __future__ import annotations

from multimodal_s2s.speech.agreement import agreed_prefix, new_words
from multimodal_s2s.speech.word_timing import Word


def words(text: str, start: float = 0.0) -> list[Word]:
    """One word every 0.5 s from ``start``, each 0.4 s long."""
    return [Word(word, start + 0.5 * n, start + 0.5 * n + 0.4, 0.9) for n, word in enumerate(text.split())]


def test_agreed_prefix_compares_normalized_text_and_keeps_the_later_pass():
    previous, current = words("Open the red"), words("open the, red door", start=0.1)
    agreed = agreed_prefix(previous, current)
    assert [w.word for w in agreed] == ["open", "the,", "red"] and agreed[0].start == 0.1
    assert [w.word for w in agreed_prefix(words("open a"), words("open the door"))] == ["open"]
    assert agreed_prefix([], current) == [] and agreed_prefix(previous, []) == []


def test_new_words_skips_a_repeated_committed_prefix_by_text():
    committed = words("please open")
    assert [w.word for w in new_words(words("please open the door"), committed, committed)] == ["the", "door"]


def test_new_words_falls_back_on_time_and_drops_a_repeated_ending():
    committed = words("please open")  # ends at 0.9 s
    changed = words("peas open the door")  # the first word changed: the words after 0.9 s are new
    assert [w.word for w in new_words(changed, committed, committed)] == ["the", "door"]
    repeated = [Word("open", 1.0, 1.3, 0.9), *words("the door", start=1.4)]  # "open" again, after the end
    assert [w.word for w in new_words(repeated, committed, committed)] == ["the", "door"]
    assert [w.word for w in new_words(repeated, [], committed)] == ["the", "door"]  # after a cut: a new utterance
    assert [w.word for w in new_words(words("a b"), [], [])] == ["a", "b"]
