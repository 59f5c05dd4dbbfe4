"""Translation end to end: a short Seq2SeqModule run on the dates task lowers the loss and writes a
self-contained checkpoint; ``mms2s translate`` keeps line order with batching, reads files and stdin,
plots attention as a PNG, and refuses checkpoints of other tasks."""

from __future__ import annotations

import io
import struct
import zlib

import lightning as L
import pytest
import torch
from checkpoint_helpers import text_header, write_checkpoint
from lightning.pytorch.callbacks import Callback

from multimodal_s2s.apps.attention_plot import readable_label, save_attention_plot
from multimodal_s2s.apps.cli import main
from multimodal_s2s.checkpoint import CheckpointError, Task, read_checkpoint
from multimodal_s2s.data.translation import TranslationDataModule
from multimodal_s2s.lit.seq2seq import Seq2SeqModule
from multimodal_s2s.pipelines import Translator

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
STEPS, BATCH = 60, 32  # one epoch, validated at its end
SENTENCES = ["3/21/1999", "the fifth of May, eighteen oh seven", "", "July 2020", "12.10.1955", "in 1999", "Jan 3 2001"]


class LossRecorder(Callback):
    def __init__(self):
        self.losses: list[float] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.losses.append(float(outputs["loss"]))


def train_dates(tmp_path, decoder: str, steps: int) -> tuple[L.Trainer, LossRecorder]:
    module = Seq2SeqModule(
        encoder="text_lstm_tiny", decoder=decoder, encoder_args={"embed_dim": 32, "hidden_size": 32},
        decoder_args={"embed_dim": 16, "hidden_size": 64}, lr=0.01, warmup_steps=10, label_smoothing=0.0,
        metrics=["exact_match", "sacrebleu"], beam_size=2, max_length=12,
    )
    data = TranslationDataModule(format="dates", dates_train_size=steps * BATCH, dates_val_size=64, batch_size=BATCH)
    recorder = LossRecorder()
    trainer = L.Trainer(
        max_steps=steps, limit_val_batches=1, num_sanity_val_steps=0, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, callbacks=[recorder], default_root_dir=tmp_path,
    )
    trainer.fit(module, datamodule=data)
    return trainer, recorder


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    torch.manual_seed(0)
    tmp_path = tmp_path_factory.mktemp("translation")
    trainer, recorder = train_dates(tmp_path, "rnn_attention", STEPS)
    checkpoint = tmp_path / "dates.ckpt"
    trainer.save_checkpoint(checkpoint)
    return trainer, recorder, checkpoint


def is_png(path) -> tuple[int, int]:
    """(width, height) of a valid PNG: signature, IHDR first, every chunk's CRC right, IEND last."""
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    position, chunks = 8, []
    while position < len(data):
        (length,) = struct.unpack(">I", data[position : position + 4])
        kind, body = data[position + 4 : position + 8], data[position + 8 : position + 8 + length]
        (crc,) = struct.unpack(">I", data[position + 8 + length : position + 12 + length])
        assert zlib.crc32(kind + body) == crc
        chunks.append(kind)
        position += 12 + length
    assert chunks[0] == b"IHDR" and chunks[-1] == b"IEND" and b"IDAT" in chunks
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_short_run_lowers_the_loss_and_logs_metrics(trained):
    trainer, recorder, _ = trained
    losses = recorder.losses
    assert len(losses) == STEPS
    first, last = sum(losses[:10]) / 10, sum(losses[-10:]) / 10
    assert last < 0.6 * first, (first, last)
    assert {"val/loss", "val/exact_match", "val/bleu"} <= set(trainer.callback_metrics)


def test_checkpoint_is_self_contained(trained):
    _, _, checkpoint = trained
    header = read_checkpoint(checkpoint).header
    assert header.task == Task.TRANSLATION and header.data.name == "dates" and header.preprocessing is None
    assert header.source_tokenizer.to_dict()["type"] == "char" and header.model.decoder == "rnn_attention"


def test_translate_keeps_line_order_with_batching(trained):
    translator = Translator.from_checkpoint(trained[2], device="cpu")
    batched = [t.text for t in translator(SENTENCES, beam_size=1, batch_size=3)]
    one_by_one = [translator([line], beam_size=1, batch_size=1)[0].text for line in SENTENCES]
    assert batched == one_by_one
    assert batched[2] == "" and len(set(batched)) > 3  # distinct outputs, so order is really tested
    assert translator(SENTENCES, beam_size=3, batch_size=2)[2].text == ""


def test_translate_cli_file_and_stdin(trained, tmp_path, capsys, monkeypatch):
    _, _, checkpoint = trained
    source = tmp_path / "dates.txt"
    source.write_text("\n".join(SENTENCES) + "\n", encoding="utf-8")
    assert main(["translate", "--checkpoint", str(checkpoint), str(source), "--batch-size", "2"]) == 0
    from_file = capsys.readouterr().out.splitlines()
    assert len(from_file) == len(SENTENCES) and from_file[2] == ""
    monkeypatch.setattr("sys.stdin", io.StringIO("\n".join(SENTENCES)))
    command = ["translate", "--checkpoint", str(checkpoint), "--beam-size", "1", "--batch-size", "4", "--device", "cpu"]
    assert main(command) == 0
    expected = [t.text for t in Translator.from_checkpoint(checkpoint, device="cpu")(SENTENCES, beam_size=1)]
    assert capsys.readouterr().out.splitlines() == expected


def test_attention_plot_is_a_png(trained, tmp_path, capsys, monkeypatch):
    _, _, checkpoint = trained
    plot = tmp_path / "plots" / "attention.png"
    monkeypatch.setattr("sys.stdin", io.StringIO("the fifth of May, eighteen oh seven\n"))
    assert main(["translate", "--checkpoint", str(checkpoint), "--attention-plot", str(plot), "--device", "cpu"]) == 0
    width, height = is_png(plot)
    assert width > height  # 37 source characters across, at most 12 output characters down
    translator = Translator.from_checkpoint(checkpoint, device="cpu")
    result = translator(["the fifth of May, eighteen oh seven"], return_attention=True)[0]
    assert result.attention.shape == (len(result.words), len(result.source_tokens))
    assert result.source_tokens[0] == "<bos>" and result.source_tokens[-1] == "<eos>"
    assert torch.allclose(result.attention.sum(-1), torch.ones(len(result.words)), atol=1e-4)
    source = tmp_path / "line.txt"
    source.write_text("March 1999\n")
    assert main(["translate", "--checkpoint", str(checkpoint), str(source), "--attention-plot", str(source)]) == 2
    assert "is an input of this run" in capsys.readouterr().err and source.read_text() == "March 1999\n"
    before = plot.read_bytes()
    monkeypatch.setattr("sys.stdin", io.StringIO("in 1999\n"))
    assert main(["translate", "--checkpoint", str(checkpoint), "--attention-plot", str(plot)]) == 2
    assert "exists (use --overwrite" in capsys.readouterr().err and plot.read_bytes() == before


def test_attention_plot_needs_one_sentence(trained, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO("3/21/1999\n4/1/2000\n"))
    command = ["translate", "--checkpoint", str(trained[2]), "--attention-plot", str(tmp_path / "a.png")]
    assert main(command) == 2
    assert "exactly one sentence, got 2" in capsys.readouterr().err
    assert not (tmp_path / "a.png").exists()


def test_refuses_other_tasks_and_missing_files(trained, tmp_path, capsys):
    other = write_checkpoint(tmp_path / "other.ckpt", text_header(Task.CAPTIONING))
    with pytest.raises(CheckpointError, match="task is captioning, but this needs translation"):
        Translator.from_checkpoint(other, device="cpu")
    assert main(["translate", "--checkpoint", str(other), str(tmp_path / "none.txt")]) == 2
    assert "other.ckpt" in capsys.readouterr().err
    assert main(["translate", "--checkpoint", str(trained[2]), str(tmp_path / "none.txt")]) == 2
    assert capsys.readouterr().err == f"error: {tmp_path / 'none.txt'}: file not found\n"


def test_plot_labels_and_shape_check(tmp_path):
    assert readable_label(" man") == "\u2423man" and readable_label("") == "''" and readable_label("\n") == "\\n"
    assert readable_label("x" * 40).endswith("\u2026") and len(readable_label("x" * 40)) == 16
    with pytest.raises(ValueError, match=r"do not match \(outputs, sources\) = \(2, 3\)"):
        save_attention_plot(torch.rand(3, 2), ["a", "b", "c"], ["x", "y"], tmp_path / "bad.png")
    path = save_attention_plot(torch.eye(3), ["a", "b", "c"], ["x", "y", "z"], tmp_path / "eye.png", title="t")
    assert is_png(path)[0] > 0
