"""Deploying an export: the pipelines and apps on a folder give the PyTorch pipelines' answers, the runtime
imports no torch (checked where importing it fails), the folder is written whole or not at all, and a folder
of other versions is refused in one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from asr_fixtures import spoken_sentences
from checkpoint_helpers import random_checkpoint
from onnx_fixtures import TASKS, tiny_header
from PIL import Image

import multimodal_s2s as mms
from multimodal_s2s.apps.cli import main
from multimodal_s2s.checkpoint import Task
from multimodal_s2s.onnx_runtime import ExportFormatError, OnnxCaptioner, OnnxTranslator, load_export
from multimodal_s2s.onnx_runtime.features import log_mel
from multimodal_s2s.pipelines.onnx_transcription import OnnxTranscriber
from multimodal_s2s.preprocessing.audio import AudioFeatures

ROOT = Path(mms.__file__).parents[1]
LINES = ["abc def", "", "ghi abc", "fed"]
#: Every window's first decoding kept, so that the two transcribers are compared on decoding alone.
NO_CHECKS = {"temperature": 0.0, "compression_ratio_threshold": None, "logprob_threshold": None,
             "no_speech_threshold": None, "max_ngram_repeats": None}


@pytest.fixture(scope="module")
def image(tmp_path_factory) -> Path:
    """A 48x32 image: the captioner's own size, so that neither pipeline resizes it."""
    path = tmp_path_factory.mktemp("image") / "scene.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (32, 48, 3), dtype=np.uint8)).save(path)
    return path


def test_pipelines_on_an_export_answer_as_the_checkpoints_do(exports, image):
    checkpoint, folder = exports[Task.CAPTIONING]
    onnx_captioner = mms.load_pipeline(folder)
    assert isinstance(onnx_captioner, OnnxCaptioner)
    for beam in (1, 3):
        expected = mms.Captioner.from_checkpoint(checkpoint, device="cpu")([image], beam_size=beam)[0]
        got = onnx_captioner([image], beam_size=beam)[0]
        assert (got.text, [h.text for h in got.n_best]) == (expected.text, [h.text for h in expected.n_best])
    checkpoint, folder = exports[Task.TRANSLATION]
    expected = mms.Translator.from_checkpoint(checkpoint, device="cpu")(LINES, beam_size=2, return_attention=True)
    got = load_export(folder)(LINES, beam_size=2, return_attention=True, batch_size=2)
    assert [t.text for t in got] == [t.text for t in expected] and got[1].text == ""
    assert got[0].source_tokens == expected[0].source_tokens
    np.testing.assert_allclose(got[0].attention, expected[0].attention.numpy(), atol=1e-5)


def test_the_transcriber_on_an_export_cuts_with_the_vad_and_decodes_as_the_checkpoint(exports):
    checkpoint, folder = exports[Task.ASR]
    pauses = np.zeros(8000, dtype=np.float32)
    recording = np.concatenate([pauses, *[np.r_[clip, pauses] for clip in spoken_sentences()[:2]]])
    transcriber = load_export(folder)
    assert isinstance(transcriber, OnnxTranscriber)
    got = transcriber([recording], **NO_CHECKS)[0]
    expected = mms.Transcriber.from_checkpoint(checkpoint, device="cpu")([recording], **NO_CHECKS)[0]
    assert len(got.segments) == 2  # the VAD's windows: one per sentence
    assert [(s.start, s.end, s.text) for s in got.segments] == [(s.start, s.end, s.text) for s in expected.segments]
    with pytest.raises(ValueError, match="word timestamps are not offered on an ONNX export"):
        transcriber([recording], word_timestamps=True)


def test_numpy_log_mel_is_the_suite_frontends():
    waveforms = [np.random.default_rng(seed).standard_normal(length).astype(np.float32) * 0.1
                 for seed, length in enumerate((16000, 9000))]
    frontend = AudioFeatures(80).eval()
    filters = frontend.frontend.melspec.mel_scale.fb.T.numpy()
    features, lengths = log_mel(waveforms, filters)
    padded = torch.zeros(2, 16000)
    padded[1, :9000] = torch.from_numpy(waveforms[1])
    padded[0] = torch.from_numpy(waveforms[0])
    expected, expected_lengths = frontend(padded, torch.tensor([16000, 9000]))
    assert lengths.tolist() == expected_lengths.tolist()
    np.testing.assert_allclose(features, expected.numpy(), atol=1e-3)


BLOCK_TORCH = """
import sys
class BlockTorch:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('torch', 'torchvision', 'torchaudio', 'lightning'):
            raise ImportError(f'{name} is blocked in this test')
sys.meta_path.insert(0, BlockTorch())
"""


def test_the_runtime_and_mms2s_caption_on_an_export_import_no_torch(exports, image, tmp_path):
    caption_folder, translation_folder = exports[Task.CAPTIONING][1], exports[Task.TRANSLATION][1]
    expected = [OnnxCaptioner(caption_folder)([image])[0].text, OnnxTranslator(translation_folder)(LINES)[0].text]
    code = BLOCK_TORCH + textwrap.dedent(f"""
        import json
        from multimodal_s2s.apps.cli import main
        from multimodal_s2s.onnx_runtime import OnnxCaptioner, OnnxTranslator
        try:
            import torch
        except ImportError:
            pass
        else:
            raise SystemExit('torch was not blocked')
        caption = OnnxCaptioner({str(caption_folder)!r})([{str(image)!r}])[0].text
        translation = OnnxTranslator({str(translation_folder)!r})({LINES!r})[0].text
        code = main(['caption', {str(image)!r}, '--checkpoint', {str(caption_folder)!r}, '--json'])
        print(json.dumps([caption, translation, code, sorted(m for m in sys.modules if m.startswith('torch'))]))
    """)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    *cli_lines, last = done.stdout.strip().splitlines()
    caption, translation, code, torch_modules = json.loads(last)
    assert [caption, translation, code, torch_modules] == [*expected, 0, []]
    assert json.loads(cli_lines[0])["caption"] == expected[0]


def test_a_folder_of_another_version_is_refused_in_one_line(exports, tmp_path, image, capsys):
    folder = tmp_path / "old"
    folder.mkdir()
    source = exports[Task.CAPTIONING][1]
    for path in source.iterdir():
        (folder / path.name).write_bytes(path.read_bytes())
    manifest = json.loads((folder / "manifest.json").read_text())
    for key, value, message in [("suite", "99.1.0", "exported by multimodal_s2s 99.1.0"),
                                ("opset", None, "no ONNX opset version recorded")]:
        changed = {**manifest, "versions": {**manifest["versions"], key: value}}
        (folder / "manifest.json").write_text(json.dumps(changed))
        with pytest.raises(ExportFormatError, match=message) as error:
            OnnxCaptioner(folder)
        assert "\n" not in str(error.value)
        assert main(["caption", str(image), "--checkpoint", str(folder)]) == 2
        assert message in capsys.readouterr().err
    (folder / "manifest.json").write_text(json.dumps({**manifest, "format_version": 7}))
    with pytest.raises(ExportFormatError, match="format version 7, this runtime reads 1: re-export it"):
        OnnxCaptioner(folder)
    (folder / "manifest.json").write_text(json.dumps(manifest))
    (folder / "decoder.onnx").write_bytes(b"not onnx")
    with pytest.raises(ExportFormatError, match="onnxruntime .* cannot load it") as error:
        OnnxCaptioner(folder)
    assert "\n" not in str(error.value)


def test_export_writes_a_whole_folder_or_none_and_replaces_only_with_overwrite(exports, tmp_path, capsys):
    checkpoint, _ = exports[Task.CAPTIONING]
    out = tmp_path / "captioner"
    command = ["export", "--checkpoint", str(checkpoint), "--format", "onnx", "--out", str(out)]
    out.mkdir()
    assert main(command) == 2 and "exists (use --overwrite to replace it)" in capsys.readouterr().err
    assert main([*command, "--overwrite", "--quantize", "int8"]) == 0
    printed = capsys.readouterr().out
    assert "onnxruntime vs PyTorch: max |logit difference|" in printed and "int8: max |logit difference|" in printed
    assert json.loads((out / "manifest.json").read_text())["quantization"] == "int8"
    assert OnnxCaptioner(out)([np.zeros((32, 48, 3), dtype=np.uint8)])[0].tokens is not None
    assert sorted(path.name for path in tmp_path.iterdir()) == ["captioner"]  # no partial folder left
    rnn = tiny_header(Task.CAPTIONING)
    rnn = random_checkpoint(tmp_path / "rnn.ckpt", type(rnn)(**{**vars(rnn), "model": type(rnn.model)(
        "cnn", "rnn_attention", rnn.model.encoder_args, {"embed_dim": 8, "hidden_size": 16},
        vocab_size=rnn.model.vocab_size)}))
    assert main(["export", "--checkpoint", str(rnn), "--out", str(tmp_path / "rnn")]) == 1
    assert "ONNX export supports the Transformer decoder only" in capsys.readouterr().err
    assert sorted(path.name for path in tmp_path.iterdir()) == ["captioner", "rnn.ckpt"]


def test_every_task_exports(exports):
    assert {load_export(folder).manifest.task if hasattr(load_export(folder), "manifest") else "asr"
            for _, folder in exports.values()} == {task.value for task in TASKS}
