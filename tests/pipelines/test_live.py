"""Live transcription (``Transcriber.live``, ``pipelines.live``) of espeak-ng sentences between pauses, fed
piece by piece: committed words never change and make the transcript, utterances close at the VAD's pauses,
a stream cut mid-word flushes, the buffer stays under its bound, silence and noise alone give no words, other
rates are resampled, falling behind is said once, and what is not audio is refused in one line."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from asr_fixtures import join_with_pauses, noise, random_speech_checkpoint, spoken_sentences

import multimodal_s2s as mms
from multimodal_s2s.data import espeak
from multimodal_s2s.pipelines import LiveOptions
from multimodal_s2s.pipelines.transcription_options import PLAIN_DECODING
from multimodal_s2s.preprocessing.audio import SAMPLE_RATE
from multimodal_s2s.speech.stream_audio import AudioStreamError

pytestmark = pytest.mark.skipif(not espeak.espeak_available(), reason="espeak-ng is not installed")

#: Random weights fail every check: these options keep each window's first decoding.
NO_CHECKS = replace(PLAIN_DECODING, windows="vad")
PIECE = 1600  # 0.1 s


@pytest.fixture(scope="module", params=["ctc", "attention"])
def transcriber(request, tmp_path_factory):
    """Random weights with a CTC head (words by forced alignment), and without one (by the decoder's attention)."""
    path = random_speech_checkpoint(tmp_path_factory.mktemp("ckpt") / "speech.ckpt", request.param == "ctc")
    return mms.Transcriber.from_checkpoint(path, device="cpu")


@pytest.fixture(scope="module")
def speech():
    """Three sentences between pauses under a -40 dBFS noise floor, and each sentence's speech (s)."""
    waveform, spoken = join_with_pauses(spoken_sentences(), [1.0, 1.2, 0.8, 1.0])
    return waveform + noise(len(waveform) / SAMPLE_RATE, -40.0), spoken


def feed_all(live, waveform: np.ndarray, piece: int = PIECE) -> list:
    updates = [live.feed(waveform[start : start + piece]) for start in range(0, len(waveform), piece)]
    return [*updates, live.finish()]


def test_committed_words_never_change_and_make_the_transcript(transcriber, speech):
    waveform, spoken = speech
    live = transcriber.live(options=NO_CHECKS)
    seen, committed = [], []
    for start in range(0, len(waveform), PIECE):
        update = live.feed(waveform[start : start + PIECE])
        committed += update.committed
        assert live.words[: len(seen)] == seen  # what was committed stays as it was
        seen = [replace(word) for word in live.words]
    committed += live.finish().committed
    transcript = live.transcript()
    assert committed == live.words == transcript.words and live.tail == []
    assert transcript.text == " ".join(word.word for word in committed) != ""
    assert [w.start for w in committed] == sorted(w.start for w in committed)
    assert len(transcript.segments) == len(spoken)  # one utterance per sentence, closed at the pauses
    for segment, (onset, offset) in zip(transcript.segments, spoken, strict=True):
        assert onset - 0.3 <= segment.start and segment.end <= offset + 0.5


def test_an_utterance_is_committed_once_its_pause_is_heard(transcriber, speech):
    waveform, spoken = speech
    live = transcriber.live(options=NO_CHECKS)
    first_end = spoken[0][1]
    heard = round((first_end + 1.0) * SAMPLE_RATE)  # the pause after it is 1.2 s long
    for start in range(0, heard, PIECE):
        live.feed(waveform[start : min(start + PIECE, heard)])
    assert live.words and live.words[-1].end <= first_end + 0.5
    assert len(live.transcript().segments) == 1


def test_a_stream_cut_mid_word_flushes(transcriber, speech):
    waveform, spoken = speech
    cut = round((spoken[0][0] + spoken[0][1]) / 2 * SAMPLE_RATE)
    live = transcriber.live(options=NO_CHECKS)
    updates = feed_all(live, waveform[:cut])
    assert live.words and live.tail == [] and updates[-1].tail == []
    assert live.words[-1].end <= cut / SAMPLE_RATE + 1e-3 and live.transcript().duration == round(cut / SAMPLE_RATE, 3)
    assert live.finish().committed == []  # finishing twice adds nothing


@pytest.mark.parametrize("piece", [PIECE, 10**7], ids=["pieces", "all-at-once"])
def test_the_buffer_never_exceeds_its_bound(transcriber, piece):
    waveform, _ = join_with_pauses(spoken_sentences(), [0.3, 0.1, 0.1, 0.3])  # one utterance of about 5 s
    live = transcriber.live(options=NO_CHECKS, live=LiveOptions(chunk_seconds=0.5, buffer_seconds=2.0))
    feed_all(live, waveform, piece)
    assert live.bound == 2 * SAMPLE_RATE and 0 < live.max_buffer <= live.bound
    assert live.words and live.transcript().words == live.words


def test_a_bound_shorter_than_the_preroll_still_holds(transcriber, speech):
    waveform, _ = speech
    live = transcriber.live(options=NO_CHECKS, live=LiveOptions(chunk_seconds=0.3, buffer_seconds=0.8))
    feed_all(live, np.r_[np.zeros(3 * SAMPLE_RATE, dtype=np.float32), waveform])
    assert live.bound == round(0.8 * SAMPLE_RATE) and live.max_buffer <= live.bound and live.words


def test_silence_and_noise_alone_give_no_words(transcriber):
    for waveform in (np.zeros(10 * SAMPLE_RATE, dtype=np.float32), noise(10.0, -40.0), noise(10.0, -50.0, seed=1)):
        live = transcriber.live(options=NO_CHECKS)
        updates = feed_all(live, waveform)
        assert live.words == [] and all(update.tail == [] for update in updates)
        assert live.max_buffer <= 2 * SAMPLE_RATE  # nothing but a second before the new chunk is kept


def test_other_rates_and_int16_pieces_are_resampled(transcriber, speech):
    waveform, spoken = speech
    stereo = (np.stack([waveform, waveform], axis=1) * 32767).astype(np.int16)  # (S, 2) int16
    reference = transcriber.live(options=NO_CHECKS)
    feed_all(reference, waveform)
    live = transcriber.live(sample_rate=SAMPLE_RATE, options=NO_CHECKS)
    feed_all(live, stereo)
    assert len(live.transcript().segments) == len(reference.transcript().segments) == len(spoken)
    high = transcriber.live(sample_rate=48000, options=NO_CHECKS)
    upsampled = np.repeat(waveform, 3)  # a crude 48 kHz version
    feed_all(high, upsampled, piece=3 * PIECE)
    assert abs(high.received - len(waveform)) <= 48 and len(high.transcript().segments) == len(spoken)


def test_falling_behind_is_said_once_and_goes_cheaper(transcriber, speech):
    waveform, _ = speech
    live = transcriber.live(options=replace(NO_CHECKS, temperature=(0.0, 0.5)), live=LiveOptions(max_lag=1e-9))
    warnings = [update.warning for update in feed_all(live, waveform) if update.warning]
    assert len(warnings) == 1 and "falling behind" in warnings[0]
    assert live.behind and live.chunk == 2 * SAMPLE_RATE
    assert live.options.beam_size == 1 and live.options.temperature == (0.0,)
    assert live.lag > 0


@pytest.mark.parametrize(
    ("piece", "message"),
    [
        (b"\x00\x01garbage", "audio pieces must be numpy arrays of samples, got bytes"),
        ([0.1, 0.2], "audio pieces must be numpy arrays of samples, got list"),
        (np.array(["a", "b"]), "audio pieces must be (samples,) or (samples, channels) integers or floats"),
        (np.zeros((2, 2, 2), dtype=np.float32), "audio pieces must be (samples,) or (samples, channels)"),
        (np.array([0.0, np.nan], dtype=np.float32), "audio piece holds NaN or infinite samples"),
    ],
)
def test_what_is_not_audio_is_refused_in_one_line(transcriber, piece, message):
    live = transcriber.live(options=NO_CHECKS)
    with pytest.raises(AudioStreamError) as error:
        live.feed(piece)
    assert str(error.value).startswith(message) and "\n" not in str(error.value)


@pytest.mark.parametrize("rate", [0, -16000, 16000.5, True, "16k", 10**9])
def test_an_impossible_rate_is_refused_in_one_line(transcriber, rate):
    with pytest.raises(AudioStreamError, match="^sample rate must be") as error:
        transcriber.live(sample_rate=rate)
    assert "\n" not in str(error.value)


def test_an_empty_stream_ends_with_an_empty_transcript_and_takes_no_more(transcriber):
    live = transcriber.live(options=NO_CHECKS)
    assert live.feed(np.zeros(0, dtype=np.float32)).committed == []
    assert live.finish().committed == [] and live.transcript().segments == [] and live.transcript().duration == 0
    with pytest.raises(AudioStreamError, match="the stream has ended"):
        live.feed(np.zeros(10, dtype=np.float32))


def test_live_options_are_checked():
    with pytest.raises(ValueError, match="chunk_seconds must be a finite number > 0, got 0"):
        LiveOptions(chunk_seconds=0)
    with pytest.raises(ValueError, match="close_silence_seconds must be a finite number >= 0"):
        LiveOptions(close_silence_seconds=float("nan"))


def test_a_chunk_longer_than_half_the_bound_is_refused(transcriber):
    with pytest.raises(ValueError, match=r"chunk_seconds \(5\) must be at most half the buffer's bound \(8 s"):
        transcriber.live(live=LiveOptions(chunk_seconds=5))
