"""What ``Transcriber`` returns: segments (with their words), transcripts, and stream items."""

from __future__ import annotations

from dataclasses import dataclass, field

from multimodal_s2s.speech.word_timing import Word


@dataclass
class Segment:
    """A decoded window's transcript; start and end in seconds from the start of the recording.

    ``words`` (with ``word_timestamps``): the words with their start, end and probability, in order,
    inside the segment; empty otherwise."""

    start: float
    end: float
    text: str
    words: list[Word] = field(default_factory=list)


@dataclass
class Transcript:
    """One recording's transcript: its duration (s), its spoken segments in order, and where it came from.

    ``unheard_windows``: windows of speech (not dropped as silence) that gave no text, as each of their
    decodings failed the checks (``TranscriptionOptions.drop_failed``) or the model wrote nothing. No segments
    (an empty ``text``): no speech was found (``unheard_windows`` 0), or what was found gave no text."""

    duration: float
    segments: list[Segment]
    source: str = ""
    unheard_windows: int = 0

    @property
    def text(self) -> str:
        return " ".join(segment.text for segment in self.segments if segment.text)

    @property
    def words(self) -> list[Word]:
        return [word for segment in self.segments for word in segment.words]


@dataclass
class TranscriptionItem:
    """One input of ``Transcriber.stream``: its transcript, or the one-line reason it has none."""

    index: int
    source: str
    transcript: Transcript | None = None
    error: str | None = None
