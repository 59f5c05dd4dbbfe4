"""The inference API: ``load_pipeline`` picks the task's pipeline; each pipeline takes every input kind a
user holds (paths, PIL images, arrays, tensors, strings) with the same answer; the apps print and write
what the pipelines return; a suite checkpoint's encoder starts another task's model."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import soundfile
import soxr
import torch
from asr_fixtures import TONE_TRANSCRIBE_FLAGS, tone_utterance
from checkpoint_helpers import random_checkpoint, segmentation_header, text_header, write_checkpoint
from PIL import Image

import multimodal_s2s as mms
from multimodal_s2s.apps.cli import main
from multimodal_s2s.checkpoint import CHECKPOINT_KEY, CheckpointHeader, LabelSet, Task
from multimodal_s2s.encoders.weights import WeightsError
from multimodal_s2s.lit.segmentation import SegmentationModule
from multimodal_s2s.models import ModelConfig
from multimodal_s2s.pipelines import PIPELINES
from multimodal_s2s.pipelines.transcription_options import PLAIN_DECODING, TranscriptionOptions
from multimodal_s2s.preprocessing.audio import SAMPLE_RATE, AudioLoadError
from multimodal_s2s.preprocessing.images import ImageLoadError
from multimodal_s2s.speech.vad import VADOptions
from multimodal_s2s.speech.word_timing import AlignmentError

LINES = ["abc def", "", "ghi abc"]


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict[Task, object]:
    folder = tmp_path_factory.mktemp("pipelines")
    paths = {task: random_checkpoint(folder / f"{task.value}.ckpt", text_header(task))
             for task in (Task.CAPTIONING, Task.ASR, Task.TRANSLATION)}
    paths[Task.SEGMENTATION] = random_checkpoint(folder / "segmentation.ckpt", segmentation_header())
    return paths


@pytest.fixture(scope="module")
def photo(tmp_path_factory):
    pixels = np.random.default_rng(0).integers(0, 256, (30, 40, 3), dtype=np.uint8)
    path = tmp_path_factory.mktemp("images") / "photo.png"
    Image.fromarray(pixels).save(path)
    return path, pixels


def test_load_pipeline_picks_the_pipeline_of_the_checkpoints_task(checkpoints):
    for task, path in checkpoints.items():
        pipeline = mms.load_pipeline(path, device="cpu")
        assert type(pipeline) is PIPELINES[task] and pipeline.header.task == task
        card = pipeline.model_card()
        assert card.task == task and card.parameters > 0 and card.data.name == "test"


def test_captioner_takes_every_image_kind_with_the_same_answer(checkpoints, photo):
    path, pixels = photo
    captioner = mms.Captioner.from_checkpoint(checkpoints[Task.CAPTIONING], device="cpu")
    kinds = [path, str(path), Image.fromarray(pixels), pixels, torch.from_numpy(pixels).permute(2, 0, 1),
             pixels.astype(np.float32) / 255]
    captions = captioner(kinds, beam_size=2, n_best=2, batch_size=4)
    assert len({(c.text, round(c.score, 4)) for c in captions}) == 1
    assert len(captions[0].n_best) == 2 and captions[0].n_best[0].text == captions[0].text
    with pytest.raises(ImageLoadError, match=r"an image array must be \(H, W\) or \(H, W, 3\|4\)"):
        captioner([np.zeros((2, 3, 5, 5))])


def test_transcriber_takes_paths_arrays_and_tensors_at_any_rate(checkpoints, tmp_path):
    transcriber = mms.Transcriber.from_checkpoint(checkpoints[Task.ASR], device="cpu")
    waveform = tone_utterance(["up", "left"])
    path = tmp_path / "clip.wav"
    soundfile.write(path, waveform, SAMPLE_RATE)
    eight_khz = soxr.resample(waveform, SAMPLE_RATE, 8000)
    kinds = [path, waveform, torch.from_numpy(waveform)[None], (waveform * 32767).astype(np.int16)]
    tones = replace(PLAIN_DECODING, windows="energy")  # tones are not speech to the VAD; random weights fail checks
    transcripts = transcriber(kinds, options=tones)
    assert len({t.text for t in transcripts}) == 1 and transcripts[0].segments
    duration = transcriber([eight_khz], sample_rate=8000, options=tones)[0].duration
    assert duration == pytest.approx(len(waveform) / SAMPLE_RATE, 1e-3)
    assert transcriber([np.zeros(SAMPLE_RATE, dtype=np.float32)])[0].segments == []  # silence: no windows
    with pytest.raises(AudioLoadError, match="missing.wav: no such audio file"):
        transcriber([tmp_path / "missing.wav"])


@pytest.mark.parametrize(("training_silence", "pad_after"), [(0.0, 0.1), (0.05, 0.1), (0.3, 0.3)])
def test_transcriber_pads_after_speech_as_much_as_training_did(tmp_path, training_silence, pad_after):
    header = text_header(Task.ASR)
    header = replace(header, preprocessing=replace(header.preprocessing, silence_pad_seconds=training_silence))
    transcriber = mms.Transcriber.from_checkpoint(random_checkpoint(tmp_path / "asr.ckpt", header), device="cpu")
    assert transcriber.resolve_options().vad == VADOptions(speech_pad_after_seconds=pad_after)
    for chosen in (0.1, 0.2):  # an explicit pad wins, the default's value included
        vad = VADOptions(speech_pad_after_seconds=chosen)
        assert transcriber.resolve_options(vad=vad).vad == vad
        assert transcriber.resolve_options(TranscriptionOptions(vad=vad)).vad == vad


def test_ctc_alignment_needs_a_ctc_head_and_with_one_times_words_as_auto_does(checkpoints, tmp_path):
    options = replace(PLAIN_DECODING, windows="energy", word_timestamps=True)  # tones: the energy splitter
    waveform = tone_utterance(["up", "left", "down"])
    plain = mms.Transcriber.from_checkpoint(checkpoints[Task.ASR], device="cpu")
    with pytest.raises(AlignmentError, match="asr.ckpt: alignment 'ctc' needs a CTC head and this checkpoint has none"):
        plain.stream([waveform], options=options, alignment="ctc")  # refused before any input is read
    assert plain([waveform], options=options)[0].words  # "auto" without a CTC head: the cross-attention
    raw = torch.load(checkpoints[Task.ASR], weights_only=True)
    vocab, width = plain.header.tokenizer.vocab_size, plain.header.model.decoder_args["d_model"]
    torch.manual_seed(0)
    head = {"ctc_head.project.weight": torch.randn(vocab, width), "ctc_head.project.bias": torch.zeros(vocab)}
    raw["state_dict"] |= head
    raw[CHECKPOINT_KEY]["ctc_weight"] = 0.3  # the header says the model has a CTC head
    torch.save(raw, tmp_path / "ctc.ckpt")
    with_head = mms.Transcriber.from_checkpoint(tmp_path / "ctc.ckpt", device="cpu")
    by_ctc, by_auto = (with_head([waveform], options=options, alignment=way)[0].words for way in ("ctc", "auto"))
    assert by_ctc and by_ctc == by_auto


def test_segmenter_gives_label_maps_at_each_images_size(checkpoints, photo):
    path, pixels = photo
    segmenter = mms.Segmenter.from_checkpoint(checkpoints[Task.SEGMENTATION], device="cpu")
    results = segmenter([path, Image.fromarray(pixels).resize((64, 20)), pixels])
    assert [r.labels.shape for r in results] == [(30, 40), (20, 64), (30, 40)]
    assert np.array_equal(results[0].labels, results[2].labels)
    assert sum(results[0].class_fractions().values()) == pytest.approx(1.0)
    assert results[0].label_image().mode == "P" and results[0].overlay(0.3, legend=False).size == (40, 30)


def test_translator_keeps_order_and_blank_lines(checkpoints):
    translator = mms.Translator.from_checkpoint(checkpoints[Task.TRANSLATION], device="cpu")
    translations = translator(LINES, beam_size=2, batch_size=1, return_attention=True)
    assert translations[1].text == "" and translations[1].tokens == []
    assert [t.text for t in translator(LINES, beam_size=2, batch_size=3)] == [t.text for t in translations]
    assert translations[0].attention.shape == (len(translations[0].tokens), len(translations[0].source_tokens))
    with pytest.raises(TypeError, match="a list of lines"):
        translator("abc")


def test_apps_print_and_write_what_the_pipelines_return(checkpoints, photo, tmp_path, capsys, monkeypatch):
    path, _ = photo
    assert main(["caption", str(path), "--checkpoint", str(checkpoints[Task.CAPTIONING]), "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    caption = mms.Captioner.from_checkpoint(checkpoints[Task.CAPTIONING])([path])[0]
    assert record["caption"] == caption.text and len(record["n_best"]) == len(caption.n_best)
    audio = tmp_path / "clip.wav"
    soundfile.write(audio, tone_utterance(["down"]), SAMPLE_RATE)
    assert main(["transcribe", str(audio), "--checkpoint", str(checkpoints[Task.ASR]),
                 "--output-dir", str(tmp_path), *TONE_TRANSCRIBE_FLAGS]) == 0
    tones = replace(PLAIN_DECODING, windows="energy")
    expected = mms.Transcriber.from_checkpoint(checkpoints[Task.ASR])([audio], options=tones)[0].text
    assert expected
    assert (tmp_path / "clip.txt").read_text() == expected + "\n"
    assert main(["segment", str(path), "--checkpoint", str(checkpoints[Task.SEGMENTATION]),
                 "--output-dir", str(tmp_path)]) == 0
    labels = mms.Segmenter.from_checkpoint(checkpoints[Task.SEGMENTATION])([path])[0].labels
    assert np.array_equal(np.asarray(Image.open(tmp_path / "photo_labels.png")), labels)
    source = tmp_path / "lines.txt"
    source.write_text("\n".join(LINES) + "\n")
    capsys.readouterr()
    assert main(["translate", str(source), "--checkpoint", str(checkpoints[Task.TRANSLATION])]) == 0
    expected = [t.text for t in mms.Translator.from_checkpoint(checkpoints[Task.TRANSLATION])(LINES)]
    assert capsys.readouterr().out.splitlines() == expected


def test_a_suite_checkpoints_encoder_starts_a_model_of_another_task(tmp_path):
    encoder, encoder_args = "cnn", {"backbone": "test_resnet", "out_indices": [1, 2]}
    segmentation = segmentation_header()
    labels = LabelSet(segmentation.labels.class_names, segmentation.labels.palette, 255)
    header = CheckpointHeader(Task.SEGMENTATION, ModelConfig(encoder, "segnet", encoder_args, num_classes=3),
                              segmentation.data, segmentation.preprocessing, labels=labels)
    source = random_checkpoint(tmp_path / "segmentation.ckpt", header)
    trained = mms.load_pipeline(source).model.encoder.state_dict()
    captioner = mms.create_model(encoder, "transformer_tiny", {**encoder_args, "pretrained_path": str(source)},
                                 vocab_size=20)
    assert all(torch.equal(value, trained[key]) for key, value in captioner.encoder.state_dict().items())
    with pytest.raises(WeightsError, match=r"segmentation\.ckpt lacks \d+ of the \d+ entries the encoder needs"):
        mms.create_model(encoder, "transformer_tiny", {"backbone": "test_resnet", "stem_width": 8,
                                                       "pretrained_path": str(source)}, vocab_size=20)
    with pytest.raises(WeightsError, match="decoder pretrained_path .*: not a multimodal_s2s checkpoint"):
        write_checkpoint(tmp_path / "plain.pt", header)
        torch.save({"weight": torch.zeros(1)}, tmp_path / "plain.pt")
        mms.create_model(encoder, "transformer_tiny", encoder_args, {"pretrained_path": str(tmp_path / "plain.pt")},
                         vocab_size=20)


def test_a_model_started_from_a_file_no_longer_needs_it(tmp_path):
    source = random_checkpoint(tmp_path / "first.ckpt", segmentation_header())
    module = SegmentationModule("segnet_basic", encoder_args={"channels": 4, "kernel_size": 3,
                                                              "pretrained_path": str(source)})
    header = segmentation_header()
    header.model.encoder_args["pretrained_path"] = str(source)
    module.use_header(header)
    second = write_checkpoint(tmp_path / "second.ckpt", header, module.state_dict())
    source.unlink()
    assert mms.load_pipeline(second).header.model.encoder_args["pretrained_path"] == str(source)
